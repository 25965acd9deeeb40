"""`reasonlens analyze` through the CLI: checkpoints, text-only logs, a training run, and bad input."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from reasonlens import columns as C
from reasonlens.cli import app

runner = CliRunner()
SMALL = ["--task", "basic_arithmetic", "--num-prompts", "2", "--samples", "2", "--max-new-tokens", "6",
         "--device", "cpu", "--dtype", "fp32"]


def test_analyze_series_writes_every_artifact(tiny_series, tmp_path):
    out = tmp_path / "analysis"
    result = runner.invoke(app, ["analyze", str(tiny_series), "--out", str(out), *SMALL])
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1] == str(out / "report.html")
    for name in ("rollouts.parquet", "dynamics.csv", "dynamics.parquet", "summary.json", "report.html"):
        assert (out / name).is_file(), name
    assert sorted(p.name for p in (out / "figures").glob("*.png"))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config"]["samples"] == 2
    assert summary["tokenizer"] == str(tiny_series / "checkpoint-3")

    import reasonlens  # the notebook path: per-token highlighting with the recorded tokenizer

    shown = reasonlens.load_analysis(out).show_response(0)
    assert 'title="' in shown.data and "entropy" in shown.data


def test_analyze_text_only_log_leaves_token_metrics_empty(tmp_path):
    log = tmp_path / "log.jsonl"
    rows = [{"step": s, "prompt": f"q{p}", "response": r, "correct": c}
            for s in (0, 10) for p in range(2)
            for r, c in (("But wait, let's try a different approach. \\boxed{4}", True), ("It is 5.", False))]
    log.write_text("\n".join(json.dumps(r) for r in rows))
    result = runner.invoke(app, ["analyze", "--rollouts", str(log), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    dynamics = pd.read_csv(tmp_path / "out" / "dynamics.csv")
    assert dynamics["accuracy"].tolist() == [0.5, 0.5]
    assert dynamics["planning_ratio"].gt(0).all()
    assert dynamics[["entropy_all", "ppl_execution", "rel_ppl_execution"]].isna().all().all()
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["mode"] == "text-only"


def test_analyze_missing_path_is_one_clear_error(tmp_path):
    result = runner.invoke(app, ["analyze", str(tmp_path / "nope")])
    assert result.exit_code == 1
    assert "does not exist" in result.output and "checkpoint-N" in result.output
    assert not (tmp_path / "nope").exists()  # nothing written for a failed run


def test_analyze_needs_an_input():
    result = runner.invoke(app, ["analyze"])
    assert result.exit_code == 1
    assert "analyze needs an input" in result.output


@pytest.mark.slow  # a second full analyze re-proving what faster tests prove (review 12-06, 4.2)
def test_analyze_rollout_rows_cover_token_arrays(tiny_series, tmp_path):
    out = tmp_path / "a"
    runner.invoke(app, ["analyze", str(tiny_series), "--out", str(out), "--no-report", *SMALL])
    rollouts = pd.read_parquet(out / "rollouts.parquet")
    assert (rollouts[C.N_TOKENS] == rollouts[C.ENTROPIES].map(len)).all()
    assert not (out / "report.html").exists()


@pytest.mark.slow
def test_analyze_bundled_smollm2_end_to_end(tmp_path):
    """The real embedded default: generation, scoring, math-verify grading and the report, small settings."""
    out = tmp_path / "smollm2"
    result = runner.invoke(app, ["analyze", "smollm2", "--out", str(out), "--task", "gsm_symbolic",
                                 "--num-prompts", "1", "--samples", "2", "--max-new-tokens", "24"])
    assert result.exit_code == 0, result.output
    rollouts = pd.read_parquet(out / "rollouts.parquet")
    assert len(rollouts) == 2 and rollouts[C.STEP].tolist() == [0, 0]
    assert all(0 < n <= 24 for n in rollouts[C.N_TOKENS])
    # every token's entropy is within [0, log V] for SmolLM2's 49152-token vocabulary
    entropies = [e for row in rollouts[C.ENTROPIES] for e in row]
    assert all(0 <= e <= 10.81 for e in entropies)
    from reasonlens.models.loading import load_tokenizer
    from reasonlens.models.offsets import DECODE_KWARGS

    tokenizer = load_tokenizer("smollm2")
    for _, row in rollouts.iterrows():  # the text is what the token ids say, and the prompt went through ChatML
        assert tokenizer.decode(list(row[C.TOKEN_IDS]), **DECODE_KWARGS) == row[C.RESPONSE]
        assert tokenizer.decode(list(row[C.PROMPT_TOKEN_IDS])).startswith("<|im_start|>")
    assert (out / "report.html").stat().st_size > 10_000


def test_text_only_length_in_a_given_tokenizers_tokens(tmp_path, tiny_tokenizer_dir):
    from transformers import AutoTokenizer

    responses = ["But wait, let's check again.", "The total is 13 dollars."]
    log = tmp_path / "log.jsonl"
    log.write_text("\n".join(json.dumps({"step": 0, "prompt": "q", "response": r}) for r in responses))
    result = runner.invoke(app, ["analyze", "--rollouts", str(log), "--tokenizer", str(tiny_tokenizer_dir),
                                 "--out", str(tmp_path / "out"), "--no-report"])
    assert result.exit_code == 0, result.output
    tokenizer = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    expected = sum(len(tokenizer.encode(r, add_special_tokens=False)) for r in responses) / 2
    dynamics = pd.read_csv(tmp_path / "out" / "dynamics.csv")
    assert dynamics["mean_length"].tolist() == [expected]
    assert dynamics["length_unit"].tolist() == ["tokens"]


def test_text_log_with_golds_is_graded(tmp_path):
    # 2 prompts x 2 samples: prompt a answers 4 (right) and 5; prompt b answers 1/2 (= 0.5, right) twice
    rows = [{"step": 3, "prompt": "a", "response": "so \\boxed{4}", "answer": "4", "score": 0.9},
            {"step": 3, "prompt": "a", "response": "\\boxed{5}", "answer": "4", "score": 0.1},
            {"step": 3, "prompt": "b", "response": "\\boxed{\\frac{1}{2}}", "answer": "0.5", "score": 0.8},
            {"step": 3, "prompt": "b", "response": "it is 1/2, \\boxed{0.5}", "answer": "0.5", "score": 0.7}]
    log = tmp_path / "log.jsonl"
    log.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = runner.invoke(app, ["analyze", "--rollouts", str(log), "--out", str(tmp_path / "out"), "--no-report"])
    assert result.exit_code == 0, result.output
    dynamics = pd.read_csv(tmp_path / "out" / "dynamics.csv")
    # accuracy 3/4; pass@1 = mean(1/2, 1) = 0.75; pass@2 = mean(1, 1) = 1; the logged score is the reward
    assert dynamics[["accuracy", "pass_at_1", "pass_at_2"]].iloc[0].tolist() == [0.75, 0.75, 1.0]
    assert dynamics["mean_reward"].iloc[0] == pytest.approx(0.625)
    assert "math-verify" in json.loads((tmp_path / "out" / "summary.json").read_text())["graded"]
