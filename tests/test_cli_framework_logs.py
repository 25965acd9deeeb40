"""`reasonlens analyze --rollouts` end to end on each framework's log, results checked by an independent route:
token scores of prime-rl / NeMo-RL exports reproduced by numpy per class, reward vs graded accuracy from verl."""

import json
import math
import re

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from framework_logs import areal_record, jsonl, nemo_record, prime_rl_record, roll_dump, slime_sample, verl_rows
from reasonlens.cli import app

runner = CliRunner()
RESPONSES = ["wait, so 7 is it", "it is 7 then wait", "the total is 12"]  # "wait" is the only gram


def _analyze(*args):
    result = runner.invoke(app, ["analyze", *map(str, args), "--no-report"])
    return result


def _tokens(tokenizer, text):
    """Token ids of ``text`` and, independently of reasonlens, which overlap a whole-word 'wait'."""
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    grams = [(m.start(), m.end()) for m in re.finditer(r"\bwait\b", text)]
    planning = [any(s < ge and gs < e for gs, ge in grams) for s, e in enc["offset_mapping"]]
    return enc["input_ids"], planning


@pytest.fixture()
def lexicon(tmp_path):
    path = tmp_path / "lexicon.txt"
    path.write_text("wait\n")
    return path


def _completion(tokenizer, text, rng):
    """A completion as the trainer saw it: the response tokens then <|im_end|>, with scores per token."""
    ids, planning = _tokens(tokenizer, text)
    ids, planning = ids + [tokenizer.convert_tokens_to_ids("<|im_end|>")], planning + [False]
    return ids, np.array(planning), -rng.uniform(0.05, 3.0, len(ids)), rng.uniform(0.1, 4.0, len(ids))


def test_prime_rl_token_export_metrics_come_from_the_export(tmp_path, tiny_tokenizer_dir, lexicon):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    rng = np.random.default_rng(0)
    expected = {}
    for step in (1, 2):
        records, pooled = [[], []], {"ent": [], "lp": [], "adv": [], "plan": []}
        for i, text in enumerate(RESPONSES):
            prompt = tokenizer.apply_chat_template([{"role": "user", "content": f"q{i}"}], tokenize=False,
                                                   add_generation_prompt=True)
            prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
            ids, planning, lp, ent = _completion(tokenizer, text, rng)
            adv = 1.0 if i != 2 else -2.0
            records[i % 2].append(prime_rl_record(step, i % 2, i // 2, prompt_ids, ids, lp.tolist(), ent.tolist(),
                                                  adv, vocab=len(tokenizer)))
            for key, value in (("ent", ent), ("lp", lp), ("adv", np.full(len(ids), adv)), ("plan", planning)):
                pooled[key].append(value)
        folder = tmp_path / "run" / "token_exports" / f"step_{step}"
        for rank in (0, 1):
            jsonl(folder / f"rank_{rank}.jsonl", records[rank])
        (folder / "STABLE").touch()
        expected[step] = {k: np.concatenate(v) for k, v in pooled.items()}
    out = tmp_path / "out"
    assert "--tokenizer" in _analyze("--rollouts", tmp_path / "run", "--out", out).output  # ids only: refused
    refused = _analyze(tmp_path, "--rollouts", tmp_path / "run", "--tokenizer", tiny_tokenizer_dir, "--out", out)
    assert refused.exit_code == 1 and "already holds the trainer's own token scores" in refused.output
    result = _analyze("--rollouts", tmp_path / "run", "--tokenizer", tiny_tokenizer_dir, "--lexicon", lexicon,
                      "--out", out)
    assert result.exit_code == 0, result.output
    dynamics = pd.read_csv(out / "dynamics.csv").set_index("step")
    for step, e in expected.items():
        plan = e["plan"]
        assert 0 < plan.sum() < plan.size  # both classes present
        row = dynamics.loc[step]
        assert row["entropy_all"] == pytest.approx(e["ent"].mean())
        assert row["entropy_planning"] == pytest.approx(e["ent"][plan].mean())
        assert row["entropy_execution"] == pytest.approx(e["ent"][~plan].mean())
        assert row["ppl_planning"] == pytest.approx(math.exp(-e["lp"][plan].mean()))
        assert row["ppl_execution"] == pytest.approx(math.exp(-e["lp"][~plan].mean()))
        assert row["advantage_planning"] == pytest.approx(e["adv"][plan].mean())
        assert row["planning_ratio"] == pytest.approx(plan.mean())
    summary = json.loads((out / "summary.json").read_text())
    assert summary["mode"] == "token-log" and summary["runtime"] is None  # no model was loaded
    assert summary["log"]["framework"] == "prime-rl" and "reward" in summary["log"]["unavailable"]["accuracy"]
    rollouts = pd.read_parquet(out / "rollouts.parquet")
    assert rollouts["response"].str.startswith("wait, so 7").any() and rollouts["response"].str.endswith("<|im_end|>").all()


def test_nemo_rl_perplexity_by_class_without_a_forward_pass(tmp_path, tiny_tokenizer_dir, lexicon):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    rng = np.random.default_rng(1)
    recs, lps, plans = [], [], []
    prompt = "<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n"
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    for i, text in enumerate(RESPONSES):
        ids, planning, lp, _ = _completion(tokenizer, text, rng)
        recs.append(nemo_record(i, [prompt, text], prompt_ids, ids, lp.tolist(), float(i < 2), 0.5,
                                pad_to=60, pad_id=tokenizer.pad_token_id))
        lps.append(lp)
        plans.append(planning)
    jsonl(tmp_path / "logs" / "train_data_step3.jsonl", recs)
    out = tmp_path / "out"
    result = _analyze("--rollouts", tmp_path / "logs", "--tokenizer", tiny_tokenizer_dir, "--lexicon", lexicon,
                      "--out", out)
    assert result.exit_code == 0, result.output
    lp, plan = np.concatenate(lps), np.concatenate(plans)
    row = pd.read_csv(out / "dynamics.csv").iloc[0]
    assert row["ppl_planning"] == pytest.approx(math.exp(-lp[plan].mean()))
    assert row["ppl_execution"] == pytest.approx(math.exp(-lp[~plan].mean()))
    assert row["ppl_all"] == pytest.approx(math.exp(-lp.mean()))
    assert math.isnan(row["entropy_all"]) and math.isnan(row["p_high_given_planning"])  # never estimated
    assert row["mean_reward"] == pytest.approx(2 / 3)
    log = json.loads((out / "summary.json").read_text())["log"]
    assert "re-score" in log["unavailable"]["entropy"] and "rewards" in log["reward_from"]


def test_verl_dump_reward_and_graded_accuracy_disagree_with_a_named_cause(tmp_path):
    # final answers written in words, not \boxed{}: graded accuracy 0 while verl's score averages 0.5
    outs = [["The answer is 7.", "I think 8."], ["It is 12.", "Twelve, so 12."]]
    for step in (0, 10):
        jsonl(tmp_path / "val" / f"{step}.jsonl",
              verl_rows(step, ["What is 3+4?", "What is 2*6?"], outs, [1.0, 0.0, 1.0, 0.0], ["7", "12"], kind="v1"))
    out = tmp_path / "out"
    result = _analyze("--rollouts", tmp_path / "val", "--out", out)
    assert result.exit_code == 0, result.output
    assert "no parsable final answer" in result.output
    dynamics = pd.read_csv(out / "dynamics.csv")
    assert dynamics["mean_reward"].tolist() == [0.5, 0.5] and dynamics["accuracy"].tolist() == [0.0, 0.0]
    log = json.loads((out / "summary.json").read_text())["log"]
    assert log["framework"] == "verl (v1 dump)" and "'score'" in log["reward_from"]
    assert log["correct_from"].startswith("graded here")
    assert [g["step"] for g in log["reward_accuracy_gaps"]] == [0, 10]
    assert "100% of its responses have no final answer" in log["reward_accuracy_gaps"][0]["cause"]


def test_verl_validation_dump_with_acc_needs_no_grading(tmp_path):
    dump = tmp_path / "dump"  # the analysis goes next to the dump folder, never inside it
    jsonl(dump / "0.jsonl", verl_rows(0, ["q1", "q2"], [["so \\boxed{7}", "8"], ["12", "\\boxed{12}"]],
                                      [1.0, -1.0, -1.0, 1.0], ["7", "12"], kind="validation"))
    out = tmp_path / "out"
    result = _analyze("--rollouts", dump, "--out", out)
    assert result.exit_code == 0, result.output
    row = pd.read_csv(out / "dynamics.csv").iloc[0]
    # acc (the reward function's verdict) gives accuracy 0.5; the +1/-1 score averages 0: no disagreement
    assert (row["accuracy"], row["mean_reward"]) == (0.5, 0.0)
    log = json.loads((out / "summary.json").read_text())["log"]
    assert "'acc'" in log["correct_from"] and log["reward_accuracy_gaps"] == []


def test_areal_and_roll_logs_end_to_end(tmp_path):
    jsonl(tmp_path / "areal" / "rollout" / "2" / "0.jsonl",
          [areal_record(0, i, "q", "so \\boxed{7}", 10, n, r, 2) for i, (n, r) in enumerate([(4, 1.0), (8, 0.0)])])
    result = _analyze("--rollouts", tmp_path / "areal", "--out", tmp_path / "a")
    assert result.exit_code == 0, result.output
    row = pd.read_csv(tmp_path / "a" / "dynamics.csv").iloc[0]
    assert (row["step"], row["mean_reward"], row["mean_length"], row["length_unit"]) == (2, 0.5, 6.0, "tokens")
    roll_dump(tmp_path / "roll", 5, ["q1", "q1", "q2", "q2"], ["\\boxed{7}", "\\boxed{8}", "\\boxed{12}", "no"],
              [1.0, 0.0, 1.0, 0.0], ["7", "7", "12", "12"], ["1", "1", "2", "2"])
    result = _analyze("--rollouts", tmp_path / "roll", "--out", tmp_path / "r")
    assert result.exit_code == 0, result.output
    row = pd.read_csv(tmp_path / "r" / "dynamics.csv").iloc[0]
    assert (row["step"], row["accuracy"], row["mean_reward"], row["pass_at_2"]) == (5, 0.5, 0.5, 1.0)
    log = json.loads((tmp_path / "r" / "summary.json").read_text())["log"]
    assert log["framework"] == "roll" and "'scores'" in log["reward_from"]


def test_slime_dump_refused_without_trust_remote_code(tmp_path):
    import torch

    samples = [slime_sample(0, "q", "so \\boxed{7}", "7", 1.0, [1, 2, 7, 8], [-0.1, -0.2]),
               slime_sample(1, "q", "\\boxed{8}", "7", 0.0, [1, 2, 9], [-0.4])]
    (tmp_path / "dumps").mkdir()
    torch.save({"rollout_id": 4, "samples": samples}, tmp_path / "dumps" / "4.pt")
    result = _analyze("--rollouts", tmp_path / "dumps", "--out", tmp_path / "out")
    assert result.exit_code == 1 and "--trust-remote-code" in result.output
    assert not (tmp_path / "out").exists()
    result = _analyze("--rollouts", tmp_path / "dumps", "--trust-remote-code", "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    row = pd.read_csv(tmp_path / "out" / "dynamics.csv").iloc[0]
    assert (row["step"], row["accuracy"], row["mean_reward"]) == (4, 0.5, 0.5)
