"""Per-token log-probability of the sampled token and full-vocabulary entropy, without full logits.

The decoder body runs once per batch; the lm_head then runs over chunks of *response* rows only, and
each chunk of logits is reduced, as soon as it exists, to four quantities per row (max, sum of exp, sum
of exp * logit, target logit). Full-sequence float32 logits, which cost ~9x the forward pass's memory
(40 vs 4.4 GiB for a 1.5B model on 16k tokens, measured on an H200), never exist. Two reducers share that contract, chosen by ``score_tokens(reducer=...)``:
``logprob_entropy_chunked`` here (torch: a few rows at a time, in place in the lm_head's own output
buffer, so its memory is the floor's, decoder + one chunk of logits, plus a few MiB) and
``fused_scoring.logprob_entropy_fused`` (one Triton pass per chunk, CUDA).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from reasonlens.errors import ReasonlensError
from reasonlens.models.generation import pad_rows
from reasonlens.options import BATCH, POSITIVE_INT, SCORE_TEMPERATURE, check_value

# Rows per lm_head chunk when the caller gives none. CPU (SmolLM2, fp32, one AVX2 thread, 448 rows): the
# chunked lm_head + reduction took 0.49 / 0.50 / 0.47 s of CPU time at 128 / 256 / 448 rows, so 256 rows
# (48 MiB of logits at V=49152) it is. GPU: 4096 rows keep the matmul busy for the torch reducer; the fused
# reducer (fused_scoring.py) streams bf16 logits, so 8192 rows cost it 2.4 GiB at V=151936.
CPU_CHUNK_ROWS = 256
GPU_CHUNK_ROWS = 4096
FUSED_CHUNK_ROWS = 8192
# Each chunk is reduced a block of rows at a time, so the only (C, V) buffer is the lm_head's own output,
# as in the floor. CPU: 8 x V float64 (3 MiB at V=49152) stays in cache across the reduction's passes.
# GPU (the torch reducer, the fused one's fallback): 512 rows keep each op large, 0.6 GiB at V=151936.
CPU_BLOCK_ROWS = 8
GPU_BLOCK_ROWS = 512
REDUCERS = ("auto", "torch", "triton")


def logprob_entropy_chunked(hidden, weight, targets, *, bias=None, temperature: float = 1.0,
                            chunk_rows: int = 4096, softcap: float | None = None):
    """Log-probability of ``targets`` and entropy of softmax(lm_head(hidden) / temperature), row-wise.

    Parameters
    ----------
    hidden : (N, H) final hidden states (after the final norm), any float dtype.
    weight : (V, H) lm_head weight, same dtype as ``hidden``; bias : (V,) or None, added in float32 to
        the lm_head's output in the model's dtype.
    targets : (N,) long, the token each row predicts.
    temperature : logits are divided by it before the softmax (> 0).
    chunk_rows : rows per lm_head chunk. Extra memory: the chunk's logits in the model's dtype
        (chunk_rows * V * itemsize bytes) plus float64 scratch for the rows reduced at once (8 on CPU,
        512 on a GPU: b * V * 8 bytes), and b * V * 4 more for the float32 upcast of a non-float32 model.
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

    n_rows, vocab, device = hidden.shape[0], weight.shape[0], hidden.device
    logp = torch.empty(n_rows, dtype=torch.float32, device=device)
    entropy = torch.empty_like(logp)
    size = min(chunk_rows, n_rows)
    block = min(CPU_BLOCK_ROWS if device.type == "cpu" else GPU_BLOCK_ROWS, size)
    # Buffers reused by every chunk: no per-chunk allocation (on CPU, fresh pages cost as much as a pass).
    raw = torch.empty(size, vocab, dtype=hidden.dtype, device=device)  # (C, V) model dtype
    upcast = None if hidden.dtype == torch.float32 else torch.empty(block, vocab, device=device)  # (b, V)
    work = torch.empty(block, vocab, dtype=torch.float64, device=device)  # (b, V)
    targets = targets.to(device)
    for start in range(0, n_rows, chunk_rows):
        stop = min(start + chunk_rows, n_rows)
        torch.matmul(hidden[start:stop], weight.t(), out=raw[:stop - start])  # the lm_head, in the model's dtype
        for first in range(start, stop, block):
            last = min(first + block, stop)
            logits = raw[first - start:last - start]  # (b, V); float32 models are reduced in place
            if upcast is not None:
                logits = upcast[:last - first].copy_(logits)
            if bias is not None:
                logits.add_(bias)  # in float32, as the fused reducer does
            logp[first:last], entropy[first:last] = _reduce_rows(
                logits, work[:last - first], targets[first:last], temperature, softcap)
    return logp, entropy


def _reduce_rows(logits, work, targets, temperature, softcap):
    """Overwrite float32 ``logits`` (b, V) with shifted logits; return (log p(target), entropy), each (b,).

    Per row it keeps what a streaming reducer would: max m, Z = sum exp(l - m), S = sum exp(l - m)(l - m)
    and the target's logit; then log p = (l_t - m) - log Z and H = log Z - S / Z. The exps land in the
    float64 ``work`` (b, V), so Z and S are summed in float64: Z is 1 + R with R the mass off the top token,
    and in float32 log(1 + R) loses R below ~6e-8, which for a confident row is the whole entropy. On one
    AVX2 core this costs ~0.5 ns per logit (+40% on this reduction, <1% of scoring); summing in float64
    from float32 exps allocates a float64 copy per call, and masking the top entry (the Triton kernel's
    way) runs 5x slower than the whole reduction there.
    """
    import torch

    if softcap is not None:
        logits.div_(softcap).tanh_().mul_(softcap)
    logits.sub_(logits.amax(dim=-1, keepdim=True))  # <= 0, the max at 0
    if temperature != 1.0:
        logits.div_(temperature)  # max(l / T) = max(l) / T: shifting first is the same
    target = logits.gather(1, targets[:, None]).squeeze(1)  # (b,)
    torch.exp(logits, out=work)  # float32 exps, stored in float64
    sum_exp = work.sum(dim=-1)  # (b,) float64
    sum_exp_logit = work.mul_(logits).sum(dim=-1)  # (b,) float64, every term <= 0: no cancellation
    log_z = sum_exp.log()
    return target - log_z, log_z - sum_exp_logit / sum_exp


def _check_args(prompt_token_ids, token_ids, temperature, batch_size, chunk_rows, reducer) -> None:
    if len(prompt_token_ids) != len(token_ids):
        raise ReasonlensError(f"prompt_token_ids has {len(prompt_token_ids)} rows but token_ids has "
                              f"{len(token_ids)}; pass one prompt per response.")
    for index, prompt in enumerate(prompt_token_ids):
        if len(prompt) == 0:
            raise ReasonlensError(f"prompt_token_ids[{index}] is empty; the first response token needs "
                                  "at least one prompt token to be predicted from.")
    check_value("temperature", temperature, SCORE_TEMPERATURE)
    check_value("batch_size", batch_size, BATCH)
    if chunk_rows is not None:
        check_value("chunk_rows", chunk_rows, POSITIVE_INT)
    if reducer not in REDUCERS:
        raise ReasonlensError(f"reducer={reducer!r} is invalid; expected {' or '.join(map(repr, REDUCERS))}.")


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


def select_reducer(reducer: str, device) -> tuple:
    """``(logprob_entropy function, default chunk rows)`` for ``reducer`` on a torch ``device``.

    "auto" is the fused Triton pass on CUDA when triton imports, else torch; "triton" is refused, with the
    fix, where it cannot run (no triton, or a CPU device outside Triton's interpreter).
    """
    import os

    torch_default = (logprob_entropy_chunked, CPU_CHUNK_ROWS if device.type == "cpu" else GPU_CHUNK_ROWS)
    if reducer == "torch" or (reducer == "auto" and device.type != "cuda"):
        return torch_default
    from reasonlens.models import fused_scoring

    if not fused_scoring.TRITON_AVAILABLE:
        if reducer == "auto":
            return torch_default
        raise ReasonlensError("reducer='triton' needs the triton package, which is not installed; install it "
                              "(pip install 'reasonlens[gpu]') or use reducer='torch'.")
    if device.type != "cuda" and os.environ.get("TRITON_INTERPRET", "").lower() not in ("1", "true", "on", "yes"):
        raise ReasonlensError(f"reducer='triton' needs a CUDA device but the model is on {device.type!r}; use "
                              "reducer='torch' (or set TRITON_INTERPRET=1 before importing triton, to test).")
    return fused_scoring.logprob_entropy_fused, FUSED_CHUNK_ROWS


def _score_batch(parts, prompts, responses, *, temperature, chunk_rows, device, reduce):
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
    logp, entropy = reduce(selected, weight, targets, bias=bias, temperature=temperature, chunk_rows=chunk_rows,
                           softcap=softcap)
    bounds = np.cumsum([len(r) for r in responses])[:-1]
    return list(zip(np.split(logp.cpu().numpy(), bounds), np.split(entropy.cpu().numpy(), bounds)))


def score_tokens(model, prompt_token_ids: Sequence[Sequence[int]], token_ids: Sequence[Sequence[int]], *,
                 temperature: float = 1.0, batch_size: int = 8, chunk_rows: int | None = None,
                 reducer: str = "auto") -> list[tuple[np.ndarray, np.ndarray]]:
    """Log-probability and entropy (nats) of every response token under ``model``.

    Parameters
    ----------
    prompt_token_ids : per response, its prompt's token ids (non-empty).
    token_ids : per response, its token ids (may be empty).
    temperature : scoring temperature (1 = the model's own distribution).
    batch_size : sequences per decoder pass (sorted by length to limit padding).
    chunk_rows : response rows per lm_head chunk (results don't depend on it); None = 256 on CPU, 4096
        on a GPU with the torch reducer, 8192 with the Triton one.
    reducer : how each chunk of logits becomes log p and entropy: "torch" (``logprob_entropy_chunked``),
        "triton" (``fused_scoring.logprob_entropy_fused``, one Triton pass, CUDA only) or "auto" (Triton on
        CUDA when triton is installed, else torch).

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
    _check_args(prompt_token_ids, token_ids, temperature, batch_size, chunk_rows, reducer)
    reduce, default_rows = select_reducer(reducer, device)
    chunk_rows = chunk_rows or default_rows
    order = sorted(range(len(token_ids)), key=lambda i: len(prompt_token_ids[i]) + len(token_ids[i]))
    results: list = [None] * len(token_ids)
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            batch = order[start:start + batch_size]
            scored = _score_batch(parts, [prompt_token_ids[i] for i in batch], [token_ids[i] for i in batch],
                                  temperature=temperature, chunk_rows=chunk_rows, device=device, reduce=reduce)
            for i, pair in zip(batch, scored):
                results[i] = pair  # float32 already (both reducers)
    return results
