"""`analyze CKPTS --rollouts LOG`: a verl dump and a TRL completions log re-scored by their checkpoints."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from reasonlens import columns as C
from reasonlens.cli import app
from reasonlens.analysis.rescore import match_steps

runner = CliRunner()


def test_match_steps_by_hand():
    # 0: no checkpoint at or before it; 1 and 3: exact; 2: nearest earlier is 1; 7: nearest earlier is 3
    assert match_steps([0, 1, 2, 3, 7], [1, 3]) == ({1: 1, 2: 1, 3: 3, 7: 3}, [0])
    from reasonlens.errors import ReasonlensError

    with pytest.raises(ReasonlensError, match=r"--strict-steps: logged step\(s\) \[2, 7\]"):
        match_steps([0, 1, 2, 3, 7], [1, 3], strict=True)


def _verl_dump(folder, steps):
    folder.mkdir()
    for step in steps:
        rows = [{"input": f"<|im_start|>user\nWhat is {i} + 2?<|im_end|>\n<|im_start|>assistant\n",
                 "output": f"So we add: {i} + 2 = {i + 2}. \\boxed{{{i + 2 if i else 5}}}", "gts": str(i + 2),
                 "score": 0.5, "step": step} for i in range(2)]
        (folder / f"{step}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def _reference_scores(model_dir, prompt_ids, token_ids):
    """log p and entropy from the full logits of one plain forward pass, in float64: an independent route."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    ids = torch.tensor([list(prompt_ids) + list(token_ids)])
    with torch.no_grad():
        logp = torch.log_softmax(model(ids).logits[0].double(), dim=-1)  # (L, V)
    rows = logp[len(prompt_ids) - 1:-1]  # row t predicts token t of the response
    return rows.gather(1, torch.tensor(token_ids)[:, None]).squeeze(1).numpy(), -(rows.exp() * rows).sum(-1).numpy()


def test_verl_dump_rescored_by_its_checkpoints(tiny_series, tmp_path):
    log = _verl_dump(tmp_path / "dump", [0, 1, 2, 3, 5])
    out = tmp_path / "out"
    result = runner.invoke(app, ["analyze", str(tiny_series), "--rollouts", str(log), "--out", str(out),
                                 "--device", "cpu", "--dtype", "fp32", "--no-report"])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["mode"] == "rescored"
    used = {e["step"]: e.get("checkpoint") for e in summary["step_checkpoints"]}
    assert used == {1: "checkpoint-1", 2: "checkpoint-2", 3: "checkpoint-3", 5: "checkpoint-3", 0: None}
    assert [e for e in summary["step_checkpoints"] if e["step"] == 0][0]["skipped"]
    rollouts = pd.read_parquet(out / "rollouts.parquet")
    assert sorted(rollouts[C.STEP].unique()) == [1, 2, 3, 5]
    # graded like generated rollouts (last \boxed{} against gts); the logged score stays the reward
    # (the 0 + 2 answers box 5: wrong; the 1 + 2 ones box 3: right)
    assert (rollouts[C.CORRECT] == (rollouts[C.ANSWER] == "3")).all() and rollouts[C.CORRECT].sum() == 4
    assert set(rollouts[C.REWARD]) == {0.5}
    row = rollouts[rollouts[C.STEP] == 5].iloc[1]
    logp, ent = _reference_scores(tiny_series / "checkpoint-3", row[C.PROMPT_TOKEN_IDS], list(row[C.TOKEN_IDS]))
    np.testing.assert_allclose(row[C.LOGPROBS], logp, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(row[C.ENTROPIES], ent, rtol=1e-5, atol=1e-6)
    dynamics = pd.read_csv(out / "dynamics.csv")
    assert dynamics[["ppl_planning", "ppl_execution", "entropy_execution"]].notna().all().all()  # "So", "we" plan
    # a rerun is fully cached: the step files are reused as they are
    before = {p.name: p.stat().st_mtime_ns for p in (out / "rollouts").glob("*.json")}
    assert runner.invoke(app, ["analyze", str(tiny_series), "--rollouts", str(log), "--out", str(out),
                               "--device", "cpu", "--dtype", "fp32", "--no-report"]).exit_code == 0
    assert {p.name: p.stat().st_mtime_ns for p in (out / "rollouts").glob("*.json")} == before


def test_trl_conversational_prompts_go_through_the_chat_template(tiny_series, tmp_path):
    folder = tmp_path / "trl-output" / "completions"  # TRL's output_dir: the analysis goes next to it, not in it
    folder.mkdir(parents=True)
    pd.DataFrame({"step": [2, 2], "prompt": [[{"role": "user", "content": "What is 1 + 1?"}]] * 2,
                  "completion": ["So 2.", "It is 3."], "accuracy_reward": [1.0, 0.0]}
                 ).to_parquet(folder / "completions_00002.parquet")
    out = tmp_path / "out"
    result = runner.invoke(app, ["analyze", str(tiny_series), "--rollouts", str(folder.parent), "--out", str(out),
                                 "--strict-steps", "--device", "cpu", "--dtype", "fp32", "--no-report"])
    assert result.exit_code == 0, result.output
    rollouts = pd.read_parquet(out / "rollouts.parquet")
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_series / "checkpoint-2")
    templated = tokenizer.apply_chat_template([{"role": "user", "content": "What is 1 + 1?"}], tokenize=False,
                                              add_generation_prompt=True)
    assert tokenizer.decode(list(rollouts[C.PROMPT_TOKEN_IDS].iloc[0])) == templated
    assert rollouts[C.CHECKPOINT].tolist() == ["checkpoint-2"] * 2


def test_strict_steps_refuses_a_step_without_its_checkpoint(tiny_series, tmp_path):
    log = _verl_dump(tmp_path / "dump", [1, 4])
    result = runner.invoke(app, ["analyze", str(tiny_series), "--rollouts", str(log), "--out", str(tmp_path / "o"),
                                 "--strict-steps", "--device", "cpu"])
    assert result.exit_code == 1 and "--strict-steps: logged step(s) [4]" in " ".join(result.output.split())
