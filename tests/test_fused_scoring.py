"""The fused Triton reducer, run on CPU tensors by Triton's interpreter, against the float64 reference.

``TRITON_INTERPRET=1`` must be set before ``@triton.jit`` decorates the kernel, i.e. before
reasonlens.models.fused_scoring is first imported; this module sets it for its pytest process (only
triton reads it) and re-imports the module if something imported it earlier without it.
"""

from __future__ import annotations

import importlib
import math
import os

import numpy as np
import pytest

os.environ["TRITON_INTERPRET"] = "1"
pytest.importorskip("triton", reason="triton is not installed (pip install 'reasonlens[dev]'); the fused "
                                     "reducer's interpreter tests need it")

from test_scoring import (LOGIT_CASE_IDS, LOGIT_CASES, assert_matches_reference,  # noqa: E402
                          float64_reference, lm_head_case, reference_rows)
from triton.runtime.interpreter import InterpretedFunction  # noqa: E402

from reasonlens.models import fused_scoring  # noqa: E402
from reasonlens.models.scoring import FUSED_CHUNK_ROWS, score_tokens, select_reducer  # noqa: E402

if not isinstance(fused_scoring._reduce_rows_kernel, InterpretedFunction):
    fused_scoring = importlib.reload(fused_scoring)


def test_auto_reducer_on_cuda_is_triton():
    import torch

    assert select_reducer("auto", torch.device("cuda")) == (fused_scoring.logprob_entropy_fused, FUSED_CHUNK_ROWS)


def test_uniform_logits_by_hand():
    import torch

    # 1000 equal logits over 8 tiles of 128 (the last one 104 wide): p = 1/1000, log p = -H = -log 1000.
    logits, logp, entropy = torch.zeros(3, 1000), torch.empty(3), torch.empty(3)
    fused_scoring.reduce_logits(logits, torch.tensor([0, 500, 999]), logp, entropy, block=128)
    np.testing.assert_allclose(logp.numpy(), [-math.log(1000)] * 3, rtol=1e-6)
    np.testing.assert_allclose(entropy.numpy(), [math.log(1000)] * 3, rtol=1e-6)


def test_two_tokens_by_hand():
    import torch

    # logits [0, ln 3] -> p = [1/4, 3/4]: log p(1) = -0.287682, H = 0.562335 (as in test_scoring.py).
    logp, entropy = torch.empty(1), torch.empty(1)
    fused_scoring.reduce_logits(torch.tensor([[0.0, math.log(3)]]), torch.tensor([1]), logp, entropy)
    assert (logp.item(), entropy.item()) == pytest.approx((-0.287682, 0.562335), rel=1e-5)


@pytest.mark.parametrize("order", ["ascending", "descending"], ids=["max-last", "max-first"])
def test_online_rescaling_across_tiles(order):
    import torch

    # logits 0.05 * j over 1000 columns: ascending, every tile brings a new max (each rescales Z and S);
    # descending, the first tile holds it. Both must equal one softmax over the whole row.
    row = torch.arange(1000, dtype=torch.float32) * 0.05
    logits = (row if order == "ascending" else row.flip(0))[None].repeat(2, 1)
    targets = torch.tensor([0, 999])
    logp, entropy = torch.empty(2), torch.empty(2)
    fused_scoring.reduce_logits(logits, targets, logp, entropy, block=128)
    ref_logp, ref_entropy = reference_rows(logits.double(), torch.eye(1000, dtype=torch.float64), targets)
    np.testing.assert_allclose(logp.numpy(), ref_logp, rtol=1e-6)
    np.testing.assert_allclose(entropy.numpy(), ref_entropy, rtol=1e-6)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"], ids=["fp32", "bf16", "fp16"])
@pytest.mark.parametrize("temperature, with_bias, softcap", LOGIT_CASES, ids=LOGIT_CASE_IDS)
def test_reduce_logits_matches_float64_reference(dtype, temperature, with_bias, softcap):
    import torch

    # The test_scoring.py case (sharp rows, top-token targets) over 3 tiles of 128 columns (300 wide).
    hidden, weight, bias, targets = lm_head_case(getattr(torch, dtype), with_bias)
    logits = hidden @ weight.t()  # (40, 300) in the inputs' dtype, as the lm_head leaves it
    logp, entropy = torch.empty(len(targets)), torch.empty(len(targets))
    fused_scoring.reduce_logits(logits, targets, logp, entropy, bias=bias, temperature=temperature,
                                softcap=softcap, block=128)
    ref_logp, ref_entropy = reference_rows(hidden, weight, targets, bias=bias, temperature=temperature,
                                           softcap=softcap)
    assert_matches_reference(logp.numpy(), entropy.numpy(), ref_logp, ref_entropy)


@pytest.mark.parametrize("chunk_rows", [7, 8192], ids=["chunk7", "chunk8192"])
def test_fused_matches_float64_reference(chunk_rows):
    import torch

    hidden, weight, bias, targets = lm_head_case(torch.float32, True)
    logp, entropy = fused_scoring.logprob_entropy_fused(hidden, weight, targets, bias=bias, temperature=0.7,
                                                        softcap=2.0, chunk_rows=chunk_rows)
    ref_logp, ref_entropy = reference_rows(hidden, weight, targets, bias=bias, temperature=0.7, softcap=2.0)
    assert logp.dtype == entropy.dtype == torch.float32
    assert_matches_reference(logp.numpy(), entropy.numpy(), ref_logp, ref_entropy)


@pytest.mark.parametrize("temperature", [1.0, 0.7], ids=["t1", "t0.7"])
def test_score_tokens_with_triton_matches_float64_reference(tiny_model_dir, temperature):
    import torch

    from reasonlens.models.loading import load_model

    model, _ = load_model(tiny_model_dir, device="cpu", dtype="fp32")
    assert select_reducer("triton", torch.device("cpu"))[0] is fused_scoring.logprob_entropy_fused
    rng = np.random.default_rng(0)
    prompts = [rng.integers(0, model.config.vocab_size, n).tolist() for n in (5, 1, 9)]
    responses = [rng.integers(0, model.config.vocab_size, n).tolist() for n in (6, 11, 0)]
    scored = score_tokens(model, prompts, responses, temperature=temperature, batch_size=2, chunk_rows=5,
                          reducer="triton")
    for prompt, response, (logp, entropy) in zip(prompts, responses, scored):
        assert len(logp) == len(entropy) == len(response)
        if response:
            ref_logp, ref_entropy = float64_reference(model, prompt, response, temperature)
            np.testing.assert_allclose(logp, ref_logp, rtol=1e-5)
            np.testing.assert_allclose(entropy, ref_entropy, rtol=1e-5)
