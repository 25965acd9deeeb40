"""Token scoring: hand-computed cases, a float64 full-logits reference, chunking invariance, errors.

The lm_head cases, their float64 references and the tolerance check are shared with
test_fused_scoring.py (the Triton reducer).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from reasonlens.errors import ReasonlensError
from reasonlens.models.scoring import GPU_CHUNK_ROWS, logprob_entropy_chunked, score_tokens, select_reducer

# (temperature, with a bias, softcap): every transformation the reducers apply, alone and together.
LOGIT_CASES = [(1.0, False, None), (0.7, False, None), (1.0, True, None), (1.5, False, 2.0), (0.7, True, 2.0)]
LOGIT_CASE_IDS = ["plain", "t0.7", "bias", "softcap-t1.5", "all"]


def test_uniform_logits_by_hand():
    import torch

    # Zero hidden states -> all 4 logits 0 -> p = 1/4 each: log p = -log 4, entropy = log 4 = 1.386294.
    logp, entropy = logprob_entropy_chunked(torch.zeros(3, 2), torch.randn(4, 2), torch.tensor([0, 1, 3]))
    np.testing.assert_allclose(logp.numpy(), [-math.log(4)] * 3, rtol=1e-6)
    np.testing.assert_allclose(entropy.numpy(), [math.log(4)] * 3, rtol=1e-6)


def test_two_tokens_by_hand_with_temperature_bias_and_softcap():
    import torch

    hidden, weight = torch.tensor([[1.0]]), torch.tensor([[0.0], [math.log(3)]])
    # logits [0, ln 3] -> p = [1/4, 3/4]: log p(1) = ln 0.75 = -0.287682;
    # H = -(0.25 ln 0.25 + 0.75 ln 0.75) = 0.346574 + 0.215762 = 0.562335.
    logp, entropy = logprob_entropy_chunked(hidden, weight, torch.tensor([1]))
    assert logp.item() == pytest.approx(-0.287682, rel=1e-5)
    assert entropy.item() == pytest.approx(0.562335, rel=1e-5)
    # temperature 2: logits [0, ln 3 / 2] -> p = [1, sqrt 3] / (1 + sqrt 3) = [0.366025, 0.633975];
    # log p(0) = -1.005053; H = 0.366025 * 1.005053 + 0.633975 * 0.455746 = 0.367875 + 0.288932 = 0.656806.
    logp, entropy = logprob_entropy_chunked(hidden, weight, torch.tensor([0]), temperature=2.0)
    assert logp.item() == pytest.approx(-1.005053, rel=1e-5)
    assert entropy.item() == pytest.approx(0.656806, rel=1e-5)
    # bias [ln 3, 0] cancels the weight: logits [ln 3, ln 3] -> uniform over 2: log p = -ln 2, H = ln 2.
    logp, entropy = logprob_entropy_chunked(hidden, weight, torch.tensor([0]), bias=torch.tensor([math.log(3), 0]))
    assert (logp.item(), entropy.item()) == pytest.approx((-math.log(2), math.log(2)), rel=1e-6)
    # softcap 1: logits [0, tanh(ln 3)] = [0, 0.8] -> p(1) = e^0.8 / (1 + e^0.8) = 0.689974.
    logp, _ = logprob_entropy_chunked(hidden, weight, torch.tensor([1]), softcap=1.0)
    assert logp.item() == pytest.approx(math.log(0.689974), rel=1e-5)


def lm_head_case(dtype, with_bias, rows=40, vocab=300, width=16):
    """Seeded (hidden (N, H), weight (V, H), bias (V,) or None, targets (N,)).

    Every 4th row is 6x sharper (logits up to ~60, entropies down to ~1e-10 nats: there log Z = log(1 + R)
    with R ~ 1e-10, which float32 rounds to 0), and every 8th row's target is its top token (log p = -R).
    """
    import torch

    gen = torch.Generator().manual_seed(0)
    hidden = torch.randn(rows, width, generator=gen)
    hidden[::4] *= 6
    weight = torch.randn(vocab, width, generator=gen) * 0.5
    bias = torch.randn(vocab, generator=gen) if with_bias else None
    targets = torch.randint(0, vocab, (rows,), generator=gen)
    targets[::8] = (hidden @ weight.t() + (0 if bias is None else bias))[::8].argmax(-1)
    return hidden.to(dtype), weight.to(dtype), None if bias is None else bias.to(dtype), targets


def reference_rows(hidden, weight, targets, *, bias=None, temperature=1.0, softcap=None):
    """float64 log p(target) and entropy (N,) of lm_head rows: the matmul in the inputs' dtype (float32
    inputs: in float64), then bias, softcap and temperature in float64 on the full (N, V) logits."""
    import torch

    if hidden.dtype == torch.float32:
        logits = hidden.double() @ weight.double().t()
    else:  # the lm_head output in the model's dtype is the contract; what follows must be exact
        logits = (hidden @ weight.t()).double()
    if bias is not None:
        logits = logits + bias.double()
    if softcap is not None:
        logits = softcap * torch.tanh(logits / softcap)
    logp_all = torch.log_softmax(logits / temperature, dim=-1)  # (N, V) float64
    entropy = -(logp_all.exp() * logp_all).sum(-1)
    return logp_all.gather(1, targets[:, None]).squeeze(1).numpy(), entropy.numpy()


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"], ids=["fp32", "bf16"])
@pytest.mark.parametrize("chunk_rows", [7, 64], ids=["chunk7", "chunk64"])
@pytest.mark.parametrize("temperature, with_bias, softcap", LOGIT_CASES, ids=LOGIT_CASE_IDS)
def test_chunked_matches_float64_reference(dtype, chunk_rows, temperature, with_bias, softcap):
    import torch

    # chunk 7: chunks smaller than the 8-row CPU reduction block; chunk 64: all 40 rows in one chunk, 5 blocks.
    hidden, weight, bias, targets = lm_head_case(getattr(torch, dtype), with_bias)
    logp, entropy = logprob_entropy_chunked(hidden, weight, targets, bias=bias, temperature=temperature,
                                            chunk_rows=chunk_rows, softcap=softcap)
    ref_logp, ref_entropy = reference_rows(hidden, weight, targets, bias=bias, temperature=temperature,
                                           softcap=softcap)
    assert_matches_reference(logp.numpy(), entropy.numpy(), ref_logp, ref_entropy)


def assert_matches_reference(logp, entropy, ref_logp, ref_entropy):
    """1e-5 relative, and 1e-15 nats absolute: a top token's log p is -R, R = 3e-12 here, and float32 logits
    of size ~60 (the matmul's error ~1e-5) move such tail masses by ~1e-4 relative in any float32 reducer."""
    np.testing.assert_allclose(logp, ref_logp, rtol=1e-5, atol=1e-15)
    np.testing.assert_allclose(entropy, ref_entropy, rtol=1e-5, atol=1e-15)


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    from reasonlens.models.loading import load_model

    model, _ = load_model(tiny_model_dir, device="cpu", dtype="fp32")
    return model


@pytest.fixture(scope="module")
def sequences(tiny):
    rng = np.random.default_rng(0)
    vocab = tiny.config.vocab_size
    prompts = [rng.integers(0, vocab, n).tolist() for n in (5, 1, 9, 3, 7)]
    responses = [rng.integers(0, vocab, n).tolist() for n in (6, 11, 2, 0, 8)]
    return prompts, responses


def float64_reference(model, prompt, response, temperature):
    """Each sequence alone, the whole model in float64, full logits, log_softmax."""
    import copy

    import torch

    model64 = copy.deepcopy(model).double()
    ids = torch.tensor([prompt + response])
    with torch.no_grad():
        logits = model64(ids).logits[0, len(prompt) - 1:-1] / temperature  # (n, V) float64
    logp_all = torch.log_softmax(logits, dim=-1)
    logp = logp_all.gather(1, torch.tensor(response)[:, None]).squeeze(1)
    entropy = -(logp_all.exp() * logp_all).sum(-1)
    return logp.numpy(), entropy.numpy()


@pytest.mark.parametrize("temperature", [1.0, 0.7], ids=["t1", "t0.7"])
def test_matches_float64_reference(tiny, sequences, temperature):
    prompts, responses = sequences
    scored = score_tokens(tiny, prompts, responses, temperature=temperature, batch_size=3, chunk_rows=5)
    for prompt, response, (logp, entropy) in zip(prompts, responses, scored):
        assert logp.dtype == entropy.dtype == np.float32
        assert len(logp) == len(entropy) == len(response)
        if response:
            ref_logp, ref_entropy = float64_reference(tiny, prompt, response, temperature)
            np.testing.assert_allclose(logp, ref_logp, rtol=1e-5)
            np.testing.assert_allclose(entropy, ref_entropy, rtol=1e-5)


def test_chunk_rows_and_batch_size_do_not_change_results(tiny, sequences):
    prompts, responses = sequences
    base = score_tokens(tiny, prompts, responses, batch_size=8, chunk_rows=4096)
    for batch_size, chunk_rows in [(1, 1), (2, 3), (5, 7), (8, None)]:
        other = score_tokens(tiny, prompts, responses, batch_size=batch_size, chunk_rows=chunk_rows)
        for (a_logp, a_ent), (b_logp, b_ent) in zip(base, other):
            np.testing.assert_allclose(a_logp, b_logp, rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(a_ent, b_ent, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("args, kwargs, message", [
    (([[1]], [[2], [3]]), {}, "prompt_token_ids has 1 rows but token_ids has 2"),
    (([[]], [[2]]), {}, r"prompt_token_ids\[0\] is empty"),
    (([[1]], [[2]]), {"temperature": 0.0}, r"temperature=0.0 is invalid; expected a finite number in \(0, 100\]"),
    (([[1]], [[2]]), {"chunk_rows": 0}, "chunk_rows=0 is invalid"),
    (([[1]], [[2]]), {"reducer": "numpy"}, "reducer='numpy' is invalid; expected 'auto' or 'torch' or 'triton'"),
], ids=["lengths", "empty-prompt", "temperature", "chunk-rows", "reducer"])
def test_invalid_arguments(tiny, args, kwargs, message):
    with pytest.raises(ReasonlensError, match=message):
        score_tokens(tiny, *args, **kwargs)


def test_auto_reducer_is_torch_on_cpu(tiny, sequences):
    prompts, responses = sequences
    assert select_reducer("auto", tiny.device)[0] is logprob_entropy_chunked
    auto = score_tokens(tiny, prompts, responses)
    for (a_logp, a_ent), (t_logp, t_ent) in zip(auto, score_tokens(tiny, prompts, responses, reducer="torch")):
        np.testing.assert_array_equal(a_logp, t_logp)
        np.testing.assert_array_equal(a_ent, t_ent)


@pytest.mark.parametrize("installed, message", [
    (False, r"reducer='triton' needs the triton package, which is not installed; install it \(pip install "
            r"'reasonlens\[gpu\]'\) or use reducer='torch'"),
    (True, "reducer='triton' needs a CUDA device but the model is on 'cpu'; use reducer='torch'"),
], ids=["no-triton", "cpu"])
def test_triton_reducer_is_refused_where_it_cannot_run(tiny, monkeypatch, installed, message):
    from reasonlens.models import fused_scoring

    monkeypatch.delenv("TRITON_INTERPRET", raising=False)  # test_fused_scoring.py sets it for this process
    monkeypatch.setattr(fused_scoring, "TRITON_AVAILABLE", installed)
    with pytest.raises(ReasonlensError, match=message):
        score_tokens(tiny, [[1]], [[2]], reducer="triton")


def test_auto_reducer_on_cuda_without_triton_is_torch(monkeypatch):
    import torch

    from reasonlens.models import fused_scoring

    monkeypatch.setattr(fused_scoring, "TRITON_AVAILABLE", False)
    assert select_reducer("auto", torch.device("cuda")) == (logprob_entropy_chunked, GPU_CHUNK_ROWS)


def test_bf16_model_is_scored_close_to_its_naive_logits(tiny_model_dir, sequences):
    """bf16 weights: our chunks vs the naive path (full bf16 logits -> float -> log_softmax)."""
    import torch

    from reasonlens.models.loading import load_model

    model, _ = load_model(tiny_model_dir, device="cpu", dtype="bf16")
    prompts, responses = sequences
    [(logp, entropy)] = score_tokens(model, prompts[:1], responses[:1])
    with torch.no_grad():
        logits = model(torch.tensor([prompts[0] + responses[0]])).logits[0, len(prompts[0]) - 1:-1].float()
    logp_all = torch.log_softmax(logits, dim=-1)
    np.testing.assert_allclose(logp, logp_all.gather(1, torch.tensor(responses[0])[:, None]).squeeze(1),
                               rtol=2e-2)
    np.testing.assert_allclose(entropy, -(logp_all.exp() * logp_all).sum(-1), rtol=2e-2)
