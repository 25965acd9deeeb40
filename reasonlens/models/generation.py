"""Sample K responses per prompt with transformers ``generate``, batched and reproducible, and score them.

The sampling draw is ours, not HF's: a logits processor applies temperature and top-p and samples
each row with its own ``torch.Generator`` seeded from ``(seed, prompt_index, sample_id)``, then returns
one-hot scores so HF's greedy step picks that token. A response therefore depends on its seed and
identity, not on which rows share its batch. With the same settings (batch_size included) outputs are
identical run to run. Across different ``batch_size`` values they agree in fp32 (tested); in bf16,
left padding changes the rounding of the forward pass, which flips some draw in most long responses,
so keep ``batch_size`` fixed when you need bit-identical reruns.

Token scores come for free: a first logits processor takes, at each step, the full-vocabulary
entropy and the sampled token's log-probability (at ``score_temperature``) from the very logits the
token is drawn from, so no second, teacher-forced forward pass is needed. They equal
`models.scoring.score_tokens` on the same tokens up to float rounding (tested).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from reasonlens.errors import ReasonlensError
from reasonlens.models.offsets import token_offsets
from reasonlens.options import BATCH, FRACTION, SAMPLES, TEMPERATURE, TOKENS, check_value


@dataclass(frozen=True)
class Generation:
    """One sampled response; ``token_ids`` exclude padding and the stop token.

    ``text`` and ``offsets`` come from `models.offsets.token_offsets`: the tokens' text and each
    token's [start, end) span in it, computed once here for grading and tagging alike.
    """

    prompt_index: int
    sample_id: int
    prompt_token_ids: list[int]
    token_ids: list[int]
    text: str
    offsets: list[tuple[int, int]]
    truncated: bool  # True = no stop token within max_new_tokens
    logprobs: np.ndarray | None = None   # (T,) float32, nats: log p(token) at the scoring temperature
    entropies: np.ndarray | None = None  # (T,) float32, nats: full-vocabulary entropy before each token


def row_seed(seed: int, prompt_index: int, sample_id: int) -> int:
    """A well-mixed 63-bit seed for one (prompt, sample) row."""
    state = np.random.SeedSequence([seed, prompt_index, sample_id]).generate_state(1, np.uint64)[0]
    return int(state) & (2**63 - 1)


def top_p_filter(logits, top_p: float):
    """Set logits outside the top-p nucleus to -inf (the most likely token is always kept).

    logits: (B, V) float. A token is kept when the probability mass strictly before it (in
    descending order) is below ``top_p``.
    """
    import torch

    if top_p >= 1.0:
        return logits
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)  # (B, V)
    probs = torch.softmax(sorted_logits, dim=-1)
    mass_before = torch.cumsum(probs, dim=-1) - probs  # (B, V)
    drop_sorted = mass_before >= top_p
    drop_sorted[:, 0] = False
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)  # back to vocabulary order
    return logits.masked_fill(drop, float("-inf"))


def sample_rows(scores, generators: Sequence, *, temperature: float, top_p: float):
    """Draw one token per row of ``scores`` (B, V) with row i's own generator -> (B,) long."""
    import torch

    logits = top_p_filter(scores.float() / temperature, top_p)
    probs = torch.softmax(logits, dim=-1)  # (B, V)
    draws = [torch.multinomial(probs[i], 1, generator=gen) for i, gen in enumerate(generators)]
    return torch.cat(draws)


class _SeededSampler:
    """Logits processor: sample each row with its own generator, return one-hot scores for greedy."""

    def __init__(self, seeds: list[int], temperature: float, top_p: float):
        self.seeds, self.temperature, self.top_p = seeds, temperature, top_p
        self.generators = None

    def __call__(self, input_ids, scores):
        import torch

        if self.generators is None:  # created on the scores' device on the first step
            self.generators = [torch.Generator(device=scores.device).manual_seed(s) for s in self.seeds]
        chosen = sample_rows(scores, self.generators, temperature=self.temperature, top_p=self.top_p)
        onehot = torch.full_like(scores, float("-inf"))
        return onehot.scatter(-1, chosen[:, None], 0.0)


class _StepScorer:
    """Logits processor placed first: each row's full-vocabulary entropy at every step and, one step later
    (once the token is in ``input_ids``), the sampled token's log-probability; the scores pass unchanged."""

    def __init__(self, temperature: float):
        self.temperature = temperature
        self.previous = None  # (B, V) float32 log-softmax of the last step
        self.logprobs: list = []  # per step, (B,)
        self.entropies: list = []  # per step, (B,)

    def __call__(self, input_ids, scores):
        import torch

        if self.previous is not None:
            self.logprobs.append(self.previous.gather(1, input_ids[:, -1:]).squeeze(1))
        logp = torch.log_softmax(scores.float() / self.temperature, dim=-1)  # (B, V)
        self.entropies.append(-(logp.exp() * logp).sum(dim=-1))
        self.previous = logp
        return scores

    def result(self, new_tokens):
        """(logprobs, entropies), each (B, T) numpy float32, for the generated ``new_tokens`` (B, T)."""
        import torch

        steps = len(self.entropies)
        if steps == 0:
            empty = np.zeros((new_tokens.shape[0], 0), dtype=np.float32)
            return empty, empty
        last = self.previous.gather(1, new_tokens[:, steps - 1:steps].to(self.previous.device)).squeeze(1)
        logprobs = torch.stack(self.logprobs + [last], dim=1)  # (B, T)
        return logprobs.cpu().numpy(), torch.stack(self.entropies, dim=1).cpu().numpy()


def _check_args(prompts, samples, max_new_tokens, temperature, top_p, batch_size) -> None:
    if isinstance(prompts, str) or not all(isinstance(p, str) for p in prompts):
        raise ReasonlensError("prompts must be a list of strings (chat-templated prompts); "
                              f"got {type(prompts).__name__}.")
    for name, value, allowed in (("samples", samples, SAMPLES), ("max_new_tokens", max_new_tokens, TOKENS),
                                 ("temperature", temperature, TEMPERATURE), ("top_p", top_p, FRACTION),
                                 ("batch_size", batch_size, BATCH)):
        check_value(name, value, allowed)


def stop_token_ids(generation_config, tokenizer) -> set[int]:
    """EOS ids of a model's generation config (``model.generation_config``, or None) plus the tokenizer's EOS."""
    configured = getattr(generation_config, "eos_token_id", None)
    ids = set(configured if isinstance(configured, (list, tuple)) else [configured])
    ids.add(tokenizer.eos_token_id)
    ids.discard(None)
    if not ids:
        raise ReasonlensError("The tokenizer and model define no EOS token; set tokenizer.eos_token so "
                              "generation knows where a response ends.")
    return ids


def pad_rows(rows: list[list[int]], pad_id: int, *, left: bool):
    """Pad token lists on the left (generation) or right (scoring) -> input_ids (B, L) and
    attention_mask (B, L), 1 = real token."""
    import torch

    width = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        span = slice(width - len(row), width) if left else slice(0, len(row))
        input_ids[i, span] = torch.tensor(row, dtype=torch.long)
        mask[i, span] = 1
    return input_ids, mask


def split_response(new_tokens: list[int], stop_ids: set[int]) -> tuple[list[int], bool]:
    """Cut a generated row at its first stop token -> (token_ids, truncated)."""
    for pos, token in enumerate(new_tokens):
        if token in stop_ids:
            return new_tokens[:pos], False
    return new_tokens, True


def _generation_config(pad_id: int, stop_ids: set[int], max_new_tokens: int):
    """Greedy decoding over our sampler's one-hot scores, the same for every batch."""
    from transformers import GenerationConfig

    # Explicit neutral values: HF fills unset ones from the model's generation_config.json, and a
    # repetition penalty or minimum length there would make samples disagree with scored logprobs.
    return GenerationConfig(max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
                            pad_token_id=pad_id, eos_token_id=sorted(stop_ids), repetition_penalty=1.0,
                            no_repeat_ngram_size=0, min_length=0, min_new_tokens=0)


def _generate_batch(model, jobs, prompt_ids, config, *, temperature, top_p, seed, score_temperature):
    """One ``generate`` call over a batch of (prompt_index, sample_id) jobs -> rows of new tokens and their
    (logprobs, entropies), each (B, <= max_new_tokens)."""
    import torch
    from transformers import LogitsProcessorList

    input_ids, mask = pad_rows([prompt_ids[p] for p, _ in jobs], config.pad_token_id, left=True)  # (B, L)
    scorer = _StepScorer(score_temperature)
    processors = LogitsProcessorList([scorer])
    if temperature > 0:
        processors.append(_SeededSampler([row_seed(seed, p, k) for p, k in jobs], temperature, top_p))
    with torch.inference_mode():
        out = model.generate(input_ids=input_ids.to(model.device), attention_mask=mask.to(model.device),
                             generation_config=config, logits_processor=processors)
    new = out[:, input_ids.shape[1]:]  # (B, T)
    return new.tolist(), scorer.result(new)


def generate(model, tokenizer, prompts: list[str], *, samples: int = 4, max_new_tokens: int = 256,
             temperature: float = 1.0, top_p: float = 1.0, seed: int = 0, batch_size: int = 8,
             score_temperature: float = 1.0, progress: Callable[[int], None] | None = None) -> list[Generation]:
    """Sample ``samples`` responses for each chat-templated prompt.

    Parameters
    ----------
    prompts : chat-templated strings (tokenized without adding special tokens again).
    samples : K responses per prompt; ``temperature=0`` gives greedy decoding (all K identical).
    batch_size : sequences (not prompts) per ``generate`` call.
    score_temperature : temperature of the distribution whose entropy and log-probabilities are recorded.
    progress : called after each batch with the number of sequences that batch finished
        (an increment, like ``tqdm.update`` or rich's ``advance``).

    Returns
    -------
    list[Generation], ordered by prompt_index then sample_id, with ``logprobs`` and ``entropies``.

    Examples
    --------
    >>> gens = generate(model, tokenizer, ["<|im_start|>user\\nHi<|im_end|>\\n"], samples=2)  # doctest: +SKIP
    """
    _check_args(prompts, samples, max_new_tokens, temperature, top_p, batch_size)
    prompt_ids = tokenizer(list(prompts), add_special_tokens=False)["input_ids"]
    for index, ids in enumerate(prompt_ids):
        if not ids:
            raise ReasonlensError(f"Prompt {index} is empty; every prompt needs at least one token.")
    stop_ids = stop_token_ids(getattr(model, "generation_config", None), tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(stop_ids)
    config = _generation_config(pad_id, stop_ids, max_new_tokens)
    jobs = [(p, k) for p in range(len(prompts)) for k in range(samples)]
    results: list[Generation] = []
    for start in range(0, len(jobs), batch_size):
        batch = jobs[start:start + batch_size]
        rows, (logprobs, entropies) = _generate_batch(model, batch, prompt_ids, config, temperature=temperature,
                                                      top_p=top_p, seed=seed, score_temperature=score_temperature)
        for (p, k), row, logp, ent in zip(batch, rows, logprobs, entropies):
            token_ids, truncated = split_response(row, stop_ids)
            text, offsets = token_offsets(tokenizer, token_ids)
            n = len(token_ids)
            results.append(Generation(p, k, list(prompt_ids[p]), token_ids, text, offsets, truncated,
                                      logp[:n].copy(), ent[:n].copy()))
        if progress is not None:
            progress(len(batch))
    return results
