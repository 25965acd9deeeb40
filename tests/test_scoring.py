"""Token scoring: hand-computed cases, a float64 full-logits reference, chunking invariance, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from reasonlens.errors import ReasonlensError
from reasonlens.models.scoring import logprob_entropy_chunked, score_tokens


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


def _float64_reference(model, prompt, response, temperature):
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
            ref_logp, ref_entropy = _float64_reference(tiny, prompt, response, temperature)
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
    (([[1]], [[2]]), {"temperature": 0.0}, "temperature=0.0 is invalid; expected > 0"),
    (([[1]], [[2]]), {"chunk_rows": 0}, "chunk_rows=0 is invalid"),
], ids=["lengths", "empty-prompt", "temperature", "chunk-rows"])
def test_invalid_arguments(tiny, args, kwargs, message):
    with pytest.raises(ReasonlensError, match=message):
        score_tokens(tiny, *args, **kwargs)


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
