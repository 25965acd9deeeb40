"""benchmarks/gpu_check.sh --dry-run: the prepared GPU check runs on CPU and every line it prints is sound JSON.

The dry run is the GPU run at toy shapes (scoring in fp32 with the fused kernel in Triton's interpreter, a
2-layer SmolLM2-shaped policy), so a change that breaks the script breaks this test, not a GPU loan.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("triton", reason="the dry run drives the fused kernel in Triton's interpreter")

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"
SCORING_PATHS = {"floor", "naive", "ours", "ours_torch"}
STAGES = {"generate", "score", "advantages", "loss"}
# reasonlens dependencies a lent GPU lacks (its package list: python 3.12, torch, triton, transformers, pandas,
# ... but none of these); pyahocorasick and liger-kernel travel as wheels (make gpu-wheels).
ABSENT_ON_GPU = {"trl", "datasets", "math_verify", "reasoning_gym", "gguf", "ruptures", "vllm", "ray"}
IMPORT_LINE = re.compile(r"^import time:\s+\d+ \|\s+\d+ \|\s*([\w.]+)\s*$")


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    """(completed process, its stdout lines parsed, the $OUT/gpu_check.jsonl text)."""
    out = tmp_path_factory.mktemp("gpu-check-out")
    env = {**os.environ, "PYTHON": sys.executable, "OUT": str(out), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "PYTHONPATH": "", "PYTHONPROFILEIMPORTTIME": "1"}  # every import, named on stderr
    done = subprocess.run(["bash", str(SCRIPT), "--dry-run"], cwd=ROOT / "tests", env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, "\n".join(line for line in done.stderr.splitlines()
                                          if not line.startswith("import time:"))[-4000:]
    lines = done.stdout.splitlines()
    assert lines and all(line.strip() for line in lines), "every line of stdout is one JSON object"
    return done, [json.loads(line) for line in lines], (out / "gpu_check.jsonl").read_text()


@pytest.mark.slow  # the dry run scores and trains on CPU (about a minute)
def test_imports_nothing_a_lent_gpu_lacks(dry_run):
    done, _, _ = dry_run
    imported = {m.group(1).split(".")[0] for m in map(IMPORT_LINE.match, done.stderr.splitlines()) if m}
    assert {"torch", "transformers", "triton", "reasonlens"} <= imported  # the import log was read
    assert not imported & ABSENT_ON_GPU


@pytest.mark.slow  # the dry run scores and trains on CPU (about a minute)
def test_log_file_holds_the_same_lines(dry_run):
    done, _, log = dry_run
    assert log == done.stdout


@pytest.mark.slow  # the dry run scores and trains on CPU (about a minute)
def test_scoring_cases(dry_run):
    _, records, _ = dry_run
    cases = [r for r in records if "case" in r]
    assert len(cases) == 1  # DRY_TOKENS: one toy case
    case = cases[0]
    paths = SCORING_PATHS | ({"liger"} if not case["liger_impl"].startswith("skipped") else set())
    assert set(case["seconds"]) == paths and set(case["peak_mib"]) == paths
    assert all(_finite(s) and s > 0 for s in case["seconds"].values())
    assert all(_finite(m) and m >= 0 for m in case["peak_mib"].values())
    assert case["ours_reducer"] == "logprob_entropy_fused"  # the Triton kernel ran, in the interpreter
    for name in paths - {"floor"}:
        assert _finite(case[f"{name}_time_ratio_vs_floor"]) and _finite(case[f"{name}_mem_ratio_vs_floor"])
        # fp32 on CPU: every scorer agrees with float64 log_softmax to float32 rounding (~1e-7 seen)
        assert case[f"{name}_max_rel_err_vs_fp64"] < 1e-5, name
    assert case["ours_kernel_max_rel_err_vs_fp64"] < 1e-5
    assert case["fp64_rows"] == case["rows_scored"] and case["fp64_finite"]
    assert all(isinstance(flag, str) and "x the floor >" in flag for flag in case["flags"])


@pytest.mark.slow  # the dry run scores and trains on CPU (about a minute)
def test_scoring_summary(dry_run):
    _, records, _ = dry_run
    summary = next(r for r in records if "cases" in r)
    assert summary["dry_run"] is True and summary["device"] == "cpu" and summary["dtype"] == "fp32"
    assert summary["ratio_limit"] == 1.10
    assert summary["time_ratio_vs_floor"] == summary["cases"][0]["ours_time_ratio_vs_floor"]
    # the flag is exactly "ours above 1.10x the floor" (the interpreter makes ours slow here: a flag expected)
    ratios = [summary[f"{kind}_ratio_vs_floor"] for kind in ("time", "cpu_time", "mem")]  # one case: its own
    assert len(summary["flags"]) == sum(ratio > 1.10 for ratio in ratios)


@pytest.mark.slow  # the dry run scores and trains on CPU (about a minute)
def test_train_steps(dry_run):
    _, records, _ = dry_run
    steps = {r["method"]: r for r in records if r.get("check") == "train_step" and "method" in r}
    assert set(steps) == {"hicra", "grpo"}
    assert set(steps["hicra"]["seconds"]) == STAGES | {"tag"} and set(steps["grpo"]["seconds"]) == STAGES
    for step in steps.values():
        assert step["path"].startswith("own pieces")
        assert all(_finite(s) and s > 0 for s in step["seconds"].values())
        assert math.isclose(sum(step["shares"].values()), 1.0, rel_tol=1e-9)
        assert math.isclose(step["step_seconds"], sum(step["seconds"].values()), rel_tol=1e-9)
        assert 0 < step["advantages_share"] < 1 and _finite(step["grad_norm"]) and step["grad_norm"] > 0
    assert 0 < steps["hicra"]["tag_share"] < 1 and steps["grpo"]["tag_share"] == 0
    assert 0 < steps["hicra"]["planning_token_share"] < 1  # the corpus text has planning phrases, not only them
    # By hand: at one iteration the ratio is 1, so the DAPO loss is -sum(A over tokens) / tokens. GRPO: every
    # completion has T tokens and a group's advantages sum to 0, so 0. HICRA adds alpha*|A| on planning tokens
    # only: -alpha * sum_i |A_i| * n_planning_i / tokens < 0.
    assert abs(steps["grpo"]["loss"]) < 1e-6
    assert steps["hicra"]["loss"] < 0
    last = records[-1]
    assert last["check"] == "train_step" and last["dry_run"] is True and len(last["steps"]) == 2


def test_unknown_option_is_refused():
    done = subprocess.run(["bash", str(SCRIPT), "--bogus"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "usage: bash benchmarks/gpu_check.sh [--dry-run]" in done.stderr


@pytest.mark.slow
def test_train_step_through_trl(tmp_path):
    """train_step.py --path trl: the real train_hicra, stage-timed from outside (a GPU user's path, with TRL)."""
    pytest.importorskip("trl")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "train_step.py"), "--dry-run", "--repeats", "1",
                           "--path", "trl"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    lines = [json.loads(line) for line in done.stdout.splitlines()]  # nothing but JSON on stdout
    steps = {r["method"]: r for r in lines[:-1]}
    assert set(steps) == {"hicra", "grpo"} and lines[-1]["steps"] == lines[:-1]
    for step in steps.values():
        assert step["path"].startswith("train_hicra") and step["trl"]
        assert set(step["seconds"]) == {"tag", "score", "advantages", "other"}
        # train-hicra tags for every method (its logs read the tag columns), so both have a tag stage
        assert all(_finite(s) and s > 0 for s in step["seconds"].values()) and 0 < step["tag_share"] < 1
        assert math.isclose(sum(step["shares"].values()), 1.0, rel_tol=1e-9)
        # the random reward gives mixed groups, so the advantages and the gradient are not all 0
        assert _finite(step["loss"]) and _finite(step["grad_norm"]) and step["grad_norm"] > 0


def test_a_failing_step_is_one_json_line_and_the_rest_still_runs(tmp_path):
    env = {**os.environ, "PYTHON": "false", "OUT": str(tmp_path)}  # every python step exits 1 at once
    done = subprocess.run(["bash", str(SCRIPT), "--dry-run"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["check"] for r in records] == ["scoring", "train_step"] and all("error" in r for r in records)
    assert (tmp_path / "gpu_check.jsonl").read_text() == done.stdout
