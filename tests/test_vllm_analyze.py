"""`analyze --backend vllm` / `vllm-server`: vLLM samples, our scorer scores, the same rollout table.

Server mode runs from this environment against `.venv-vllm/bin/vllm` (built by `make install-vllm`);
the in-process mode runs where vLLM imports (`make test-vllm` runs this file in `.venv-vllm`).
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from reasonlens import columns as C
from reasonlens.cli import app

pytestmark = pytest.mark.slow  # starts vLLM

VLLM_CLI = Path(__file__).resolve().parents[1] / ".venv-vllm" / "bin" / "vllm"
runner = CliRunner()
SMALL = ["--task", "basic_arithmetic", "--num-prompts", "2", "--samples", "2", "--max-new-tokens", "10",
         "--temperature", "1.0", "--device", "cpu", "--dtype", "fp32", "--vllm-eager", "--no-report"]


@pytest.fixture(scope="module")
def vllm_series(tiny_tokenizer_dir, tmp_path_factory):
    """checkpoint-1..2 of a random Llama with head_dim 64 (vLLM's CPU attention rejects the suite's 16)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    root = tmp_path_factory.mktemp("vllm-series")
    for step in (1, 2):
        torch.manual_seed(step)
        model = LlamaForCausalLM(LlamaConfig(
            vocab_size=len(tokenizer), hidden_size=128, intermediate_size=256, num_hidden_layers=2,
            num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=512, tie_word_embeddings=True,
            initializer_range=0.1, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id))
        model.save_pretrained(root / f"checkpoint-{step}")
        tokenizer.save_pretrained(root / f"checkpoint-{step}")
    return root


def _analyze(series, out, *backend):
    result = runner.invoke(app, ["analyze", str(series), "--out", str(out), *SMALL, *backend])
    assert result.exit_code == 0, result.output
    return pd.read_parquet(out / "rollouts.parquet"), json.loads((out / "summary.json").read_text())


def _check(rollouts, summary, backend):
    assert summary["runtime"]["backend"] == backend and summary["runtime"]["scoring"] == "teacher-forced"
    assert summary["runtime"]["vllm"]["vllm"]
    assert sorted(rollouts[C.STEP].unique()) == [1, 2] and len(rollouts) == 2 * 2 * 2
    for _, row in rollouts.iterrows():
        n = len(row[C.TOKEN_IDS])
        assert n == row[C.N_TOKENS] == len(row[C.LOGPROBS]) == len(row[C.ENTROPIES]) == len(row[C.TOKEN_OFFSETS])
        assert all(lp <= 0 for lp in row[C.LOGPROBS])


@pytest.mark.skipif(not VLLM_CLI.exists(), reason="no .venv-vllm/bin/vllm: run `make install-vllm`")
@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="tested from the main environment")
def test_server_backend_from_another_environment(vllm_series, tmp_path):
    rollouts, summary = _analyze(vllm_series, tmp_path / "server", "--backend", "vllm-server",
                                 "--vllm-command", str(VLLM_CLI))
    _check(rollouts, summary, "vllm-server")
    # our scorer on the sampled tokens: the same numbers the transformers path computes for them
    from reasonlens.models.loading import load_model
    from reasonlens.models.scoring import score_tokens

    row = rollouts[rollouts[C.STEP] == 2].iloc[0]
    model, _ = load_model(str(vllm_series / "checkpoint-2"), device="cpu", dtype="fp32")
    (logp, ent), = score_tokens(model, [list(row[C.PROMPT_TOKEN_IDS])], [list(row[C.TOKEN_IDS])])
    np.testing.assert_allclose(row[C.LOGPROBS], logp, rtol=1e-5)
    np.testing.assert_allclose(row[C.ENTROPIES], ent, rtol=1e-5)


@pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vLLM is not installed here (see make test-vllm)")
def test_in_process_backend_equals_the_server(vllm_series, tmp_path):
    rollouts, summary = _analyze(vllm_series, tmp_path / "inproc", "--backend", "vllm")
    _check(rollouts, summary, "vllm")
    cli = shutil.which("vllm")
    if cli is None:
        pytest.skip("no vllm CLI on PATH for the server comparison")
    served, _ = _analyze(vllm_series, tmp_path / "served", "--backend", "vllm-server", "--vllm-command", cli)
    assert served[C.TOKEN_IDS].map(list).tolist() == rollouts[C.TOKEN_IDS].map(list).tolist()


def test_vllm_backend_without_vllm_is_refused_before_any_model(vllm_series, tmp_path):
    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vLLM is installed here")
    result = runner.invoke(app, ["analyze", str(vllm_series), "--out", str(tmp_path / "o"), *SMALL, "--backend", "vllm"])
    assert result.exit_code == 1 and "make install-vllm" in result.output
    result = runner.invoke(app, ["analyze", str(vllm_series), "--out", str(tmp_path / "o"), *SMALL,
                                 "--backend", "vllm-server", "--vllm-command", str(tmp_path / "no-vllm")])
    assert result.exit_code == 1 and "is not an executable" in result.output
