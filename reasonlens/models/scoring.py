"""Per-token log-probability of the sampled token and full-vocabulary entropy, without full logits.

The decoder body runs once per batch; the lm_head then runs over chunks of *response* rows only,
and each chunk of logits is reduced at once to four running quantities per row (max, sum of exp,
sum of exp * logit, target logit). Full-sequence float32 logits, which cost ~9x the forward pass's
memory (environment.md), never exist. ``logprob_entropy_chunked`` is the single boundary a fused GPU
reducer (lm_head in bf16 + one Triton pass per chunk over the same four quantities) can replace.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from reasonlens.errors import ReasonlensError
from reasonlens.models.generation import pad_rows

# Rows per lm_head chunk when the caller gives none. On CPU, 256-row chunks scored 4 x 512 tokens of
# SmolLM2 1.4x faster than 4096-row ones, with 120 instead of 840 MiB of buffers
# (benchmarks/bench_scoring.py); on a GPU, 4096 rows keep the matmul busy (environment.md).
CPU_CHUNK_ROWS = 256
GPU_CHUNK_ROWS = 4096


def logprob_entropy_chunked(hidden, weight, targets, *, bias=None, temperature: float = 1.0,
                            chunk_rows: int = 4096, softcap: float | None = None):
    """Log-probability of ``targets`` and entropy of softmax(lm_head(hidden) / temperature), row-wise.

    Parameters
    ----------
    hidden : (N, H) final hidden states (after the final norm), any float dtype.
    weight : (V, H) lm_head weight, same dtype as ``hidden``; bias : (V,) or None.
    targets : (N,) long, the token each row predicts.
    temperature : logits are divided by it before the softmax (> 0).
    chunk_rows : rows per lm_head chunk; extra memory ~ chunk_rows * V * (8 + model dtype) bytes.
    softcap : Gemma-style final logit soft-capping ``softcap * tanh(logits / softcap)``, or None.

    Returns
    -------
    (logp (N,), entropy (N,)) float32 tensors in nats, on ``hidden``'s device.

    Examples
    --------
    >>> import torch
    >>> logp, ent = logprob_entropy_chunked(torch.zeros(1, 2), torch.zeros(4, 2), torch.tensor([3]))
    >>> round(float(ent[0]), 4)  # uniform over 4 tokens: log 4
    1.3863
    """
    import torch

    n_rows, vocab = hidden.shape[0], weight.shape[0]
    logp = torch.empty(n_rows, dtype=torch.float32, device=hidden.device)
    entropy = torch.empty_like(logp)
    size = min(chunk_rows, n_rows)
    # Buffers reused by every chunk: no per-chunk allocation (on CPU, fresh pages cost as much as a pass).
    raw = torch.empty(size, vocab, dtype=hidden.dtype, device=hidden.device)  # (C, V) model dtype
    logits = torch.empty(size, vocab, dtype=torch.float32, device=hidden.device)  # (C, V)
    work = torch.empty_like(logits)  # (C, V)
    for start in range(0, n_rows, chunk_rows):
        stop = min(start + chunk_rows, n_rows)
        rows = stop - start
        torch.matmul(hidden[start:stop], weight.t(), out=raw[:rows])  # the lm_head, in the model's dtype
        if bias is not None:
            raw[:rows].add_(bias)
        logits[:rows].copy_(raw[:rows])  # upcast to float32
        logp[start:stop], entropy[start:stop] = _reduce_chunk(
            logits[:rows], work[:rows], targets[start:stop].to(hidden.device), temperature, softcap)
    return logp, entropy


def _reduce_chunk(logits, work, targets, temperature, softcap):
    """Overwrite float32 ``logits`` (C, V) with shifted logits; return (log p(target), entropy), each (C,).

    Per row it keeps what a streaming reducer would: max m, Z = sum exp(l - m), S = sum exp(l - m)(l - m)
    and the target's logit; then log p = (l_t - m) - log Z and H = log Z - S / Z.
    """
    import torch

    if softcap is not None:
        torch.tanh(logits.div_(softcap), out=logits).mul_(softcap)
    if temperature != 1.0:
        logits.div_(temperature)
    logits.sub_(logits.amax(dim=-1, keepdim=True))  # <= 0, the max at 0
    target = logits.gather(1, targets[:, None]).squeeze(1)  # (C,)
    torch.exp(logits, out=work)
    sum_exp = work.sum(dim=-1)  # (C,)
    sum_exp_logit = work.mul_(logits).sum(dim=-1)  # (C,)
    log_z = sum_exp.log()
    return target - log_z, log_z - sum_exp_logit / sum_exp


def _check_args(prompt_token_ids, token_ids, temperature, batch_size, chunk_rows) -> None:
    if len(prompt_token_ids) != len(token_ids):
        raise ReasonlensError(f"prompt_token_ids has {len(prompt_token_ids)} rows but token_ids has "
                              f"{len(token_ids)}; pass one prompt per response.")
    for index, prompt in enumerate(prompt_token_ids):
        if len(prompt) == 0:
            raise ReasonlensError(f"prompt_token_ids[{index}] is empty; the first response token needs "
                                  "at least one prompt token to be predicted from.")
    checks = [("temperature", temperature, temperature > 0, "> 0"),
              ("batch_size", batch_size, batch_size >= 1, "an integer >= 1"),
              ("chunk_rows", chunk_rows, chunk_rows >= 1, "an integer >= 1")]
    for name, value, ok, expected in checks:
        if not ok:
            raise ReasonlensError(f"{name}={value!r} is invalid; expected {expected}.")


def lm_head_parts(model):
    """(decoder body, weight (V, H), bias or None, softcap or None) of a causal LM."""
    body = model.get_decoder() if hasattr(model, "get_decoder") else model.base_model
    head = model.get_output_embeddings()
    if body is model or head is None:
        raise ReasonlensError(f"Cannot split {type(model).__name__} into a decoder body and an lm_head; "
                              "token scoring supports causal LMs with get_decoder() and an output embedding.")
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    softcap = getattr(config, "final_logit_softcapping", None)
    return body, head.weight, getattr(head, "bias", None), softcap


def _score_batch(parts, prompts, responses, *, temperature, chunk_rows, device):
    """Score one batch: decoder once, then chunked lm_head on the response rows only."""
    import torch

    body, weight, bias, softcap = parts
    input_ids, mask = pad_rows([list(p) + list(r) for p, r in zip(prompts, responses)], 0, left=False)
    hidden = body(input_ids=input_ids.to(device), attention_mask=mask.to(device),
                  use_cache=False).last_hidden_state  # (B, L, H); right padding keeps positions 0..len-1
    # Row i's token at position t is predicted by the hidden state at t - 1.
    rows = [torch.full((len(r),), i, dtype=torch.long) for i, r in enumerate(responses)]
    cols = [torch.arange(len(p) - 1, len(p) + len(r) - 1) for p, r in zip(prompts, responses)]
    targets = torch.tensor([t for r in responses for t in r], dtype=torch.long, device=device)  # (N,)
    selected = hidden[torch.cat(rows).to(device), torch.cat(cols).to(device)]  # (N, H)
    logp, entropy = logprob_entropy_chunked(selected, weight, targets, bias=bias, temperature=temperature,
                                            chunk_rows=chunk_rows, softcap=softcap)
    bounds = np.cumsum([len(r) for r in responses])[:-1]
    return list(zip(np.split(logp.cpu().numpy(), bounds), np.split(entropy.cpu().numpy(), bounds)))


def score_tokens(model, prompt_token_ids: Sequence[Sequence[int]], token_ids: Sequence[Sequence[int]], *,
                 temperature: float = 1.0, batch_size: int = 8, chunk_rows: int | None = None
                 ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Log-probability and entropy (nats) of every response token under ``model``.

    Parameters
    ----------
    prompt_token_ids : per response, its prompt's token ids (non-empty).
    token_ids : per response, its token ids (may be empty).
    temperature : scoring temperature (1 = the model's own distribution).
    batch_size : sequences per decoder pass (sorted by length to limit padding).
    chunk_rows : response rows per lm_head chunk (results don't depend on it); None = 4096 on a GPU,
        256 on CPU.

    Returns
    -------
    list of (logprobs (n_i,), entropies (n_i,)) float32 arrays, aligned with ``token_ids``.

    Examples
    --------
    >>> scores = score_tokens(model, [[1, 2, 3]], [[4, 5]])  # doctest: +SKIP
    """
    import torch

    parts = lm_head_parts(model)
    device = parts[1].device
    if chunk_rows is None:
        chunk_rows = CPU_CHUNK_ROWS if device.type == "cpu" else GPU_CHUNK_ROWS
    _check_args(prompt_token_ids, token_ids, temperature, batch_size, chunk_rows)
    order = sorted(range(len(token_ids)), key=lambda i: len(prompt_token_ids[i]) + len(token_ids[i]))
    results: list = [None] * len(token_ids)
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            batch = order[start:start + batch_size]
            scored = _score_batch(parts, [prompt_token_ids[i] for i in batch], [token_ids[i] for i in batch],
                                  temperature=temperature, chunk_rows=chunk_rows, device=device)
            for i, pair in zip(batch, scored):
                results[i] = pair  # float32 already (logprob_entropy_chunked)
    return results
