"""kill -9 at seeded random moments of `analyze` and `train-hicra` (one of them during a checkpoint save),
each followed by the same command: the finished result equals an uninterrupted run's, with no step
redone after it was finished, none lost, and no state that refuses both to resume and to restart.
SIGINT and SIGTERM mid-run stop cleanly (exit 130 / 143, no temporary or lock left) and resume the same way."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from reasonlens import columns as C

pytestmark = pytest.mark.slow  # kills and resumes analyze and train-hicra subprocesses

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
KILLS = 4


def _cli(*args) -> list[str]:
    return [sys.executable, "-m", "reasonlens.cli", *map(str, args)]


def _run_killed(args, *, delays, watch=None) -> list[str]:
    """Start ``args`` once per delay and SIGKILL it after that many seconds (or as soon as ``watch``
    exists); return what each start had left on disk when it died."""
    seen = []
    for delay in delays:
        proc = subprocess.Popen(args, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + delay
        while proc.poll() is None and time.time() < deadline and not (watch and watch()):
            time.sleep(0.002)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            seen.append("killed")
        else:
            seen.append(f"exited {proc.returncode}")
        proc.wait()
    return seen


def _finish(args) -> subprocess.CompletedProcess:
    done = subprocess.run(args, env=ENV, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    return done


SETTINGS = ["--task", "basic_arithmetic", "--num-prompts", "2", "--samples", "2", "--max-new-tokens", "40",
            "--device", "cpu", "--dtype", "fp32", "--threads", "1"]


@pytest.fixture(scope="module")
def reference(tiny_series, tmp_path_factory):
    """The uninterrupted analysis every interrupted one must equal."""
    from reasonlens.analysis.config import AnalyzeConfig
    from reasonlens.analysis.run import analyze

    return analyze(AnalyzeConfig(path=tiny_series, out=tmp_path_factory.mktemp("straight"), task="basic_arithmetic",
                                 num_prompts=2, samples=2, max_new_tokens=40, device="cpu", dtype="fp32",
                                 threads=1), progress=False)


def _same_analysis(out: Path, reference) -> None:
    ours, theirs = pd.read_parquet(out / "rollouts.parquet"), reference.rollouts
    assert ours[C.TOKEN_IDS].map(list).tolist() == theirs[C.TOKEN_IDS].map(list).tolist()
    assert np.allclose(np.concatenate(ours[C.LOGPROBS].tolist()), np.concatenate(theirs[C.LOGPROBS].tolist()))
    assert ours[C.GRAMS].map(list).tolist() == theirs[C.GRAMS].map(list).tolist()
    pd.testing.assert_frame_equal(pd.read_parquet(out / "dynamics.parquet"), reference.dynamics)
    assert not list(out.rglob("*.tmp-*")) and not (out / ".reasonlens.lock").exists()


def _signalled(args, sig, watch) -> subprocess.CompletedProcess:
    """Run ``args``, send ``sig`` once ``watch()`` holds, and return how it ended (it must end by itself)."""
    proc = subprocess.Popen(args, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while proc.poll() is None and not watch() and time.time() < deadline:
        time.sleep(0.01)
    if proc.poll() is None:
        proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)  # a clean stop: no SIGKILL needed
    return subprocess.CompletedProcess(args, proc.returncode, out, err)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_analyze_stops_cleanly_on_a_signal_and_resumes_to_the_same_result(tiny_series, tmp_path, reference, sig):
    out = tmp_path / "signalled"
    args = _cli("analyze", tiny_series, "--out", out, *SETTINGS)
    stopped = _signalled(args, sig, watch=lambda: any((out / "rollouts").glob("step_*.json")))
    assert stopped.returncode == 128 + sig, stopped.stderr[-2000:]  # 130 / 143, after the first finished step
    assert "rerun the same command to resume" in stopped.stderr and "Traceback" not in stopped.stderr
    assert not list(out.rglob("*.tmp-*")) and not (out / ".reasonlens.lock").exists()
    assert not (out / "summary.json").exists()  # unfinished, and marked as such
    finished = {p.name: p.stat().st_mtime_ns for p in (out / "rollouts").glob("step_*.json")}
    _finish(args)
    assert all((out / "rollouts" / name).stat().st_mtime_ns == mtime for name, mtime in finished.items())
    _same_analysis(out, reference)


def test_analyze_survives_kill_9_and_matches_an_uninterrupted_run(tiny_series, tmp_path, reference):
    out = tmp_path / "killed"
    args = _cli("analyze", tiny_series, "--out", out, *SETTINGS)
    rng = random.Random(0)
    # random moments within the first 40% of the uninterrupted analysis (measured, so a fast machine still kills
    # mid-run), after the CLI's start-up: each of the first two starts dies before its work is done
    work = reference.summary["seconds"]
    outcomes = _run_killed(args, delays=[0.5 + rng.uniform(0.0, 0.4 * work) for _ in range(KILLS)])
    assert outcomes.count("killed") >= 2, outcomes
    finished_before = {p.name: p.stat().st_mtime_ns for p in (out / "rollouts").glob("step_*.json")} \
        if (out / "rollouts").exists() else {}
    _finish(args)
    for name, mtime in finished_before.items():  # a finished step is reused, never recomputed
        assert (out / "rollouts" / name).stat().st_mtime_ns == mtime
    _same_analysis(out, reference)


@pytest.fixture(scope="module")
def problems(tmp_path_factory):
    import json

    path = tmp_path_factory.mktemp("problems") / "p.jsonl"
    path.write_text("".join(json.dumps({"question": f"What is {i} + 2?", "answer": str(i + 2)}) + "\n"
                            for i in range(4)))
    return path


def _train_args(model, problems, out, steps=4, resume=False):
    return _cli("train-hicra", "--model", model, "--prompts-file", problems, "--out", out, "--steps", steps,
                "--prompts-per-step", "2", "--num-generations", "2", "--max-new-tokens", "12", "--num-prompts", "4",
                "--save-every", "1", "--lr", "1e-2", "--dtype", "fp32", "--threads", "1", "--report-to", "none",
                *(["--resume"] if resume else []))


def _steps(run: Path) -> pd.DataFrame:
    return pd.concat([pd.read_parquet(p) for p in sorted((run / "rollouts").glob("step_*.parquet"))],
                     ignore_index=True)


@pytest.fixture(scope="module")
def straight(tiny_model_dir, problems, tmp_path_factory):
    """The uninterrupted 4-step run every interrupted one must equal."""
    run = tmp_path_factory.mktemp("straight") / "run"
    _finish(_train_args(tiny_model_dir, problems, run))
    return run


def _same_run(run: Path, straight: Path) -> None:
    metrics, reference = pd.read_csv(run / "metrics.csv"), pd.read_csv(straight / "metrics.csv")
    assert list(metrics["step"]) == [1, 2, 3, 4]  # every step exactly once
    key = [C.STEP, C.PROMPT_ID, C.SAMPLE_ID]
    ours, theirs = (_steps(r).sort_values(key).reset_index(drop=True) for r in (run, straight))
    assert ours[key].equals(theirs[key])
    assert ours[C.TOKEN_IDS].map(list).tolist() == theirs[C.TOKEN_IDS].map(list).tolist()
    assert np.allclose(metrics["loss"], reference["loss"], rtol=1e-4, atol=1e-6)
    assert {p.name for p in (run / "checkpoints").iterdir()} == {"step_1", "step_2", "step_3", "step_4"}
    assert not list(run.rglob("*.tmp-*")) and not (run / ".reasonlens.lock").exists()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_train_hicra_stops_cleanly_on_a_signal_and_resumes_to_the_same_run(tiny_model_dir, problems, tmp_path,
                                                                           straight, sig):
    run = tmp_path / "signalled"
    stopped = _signalled(_train_args(tiny_model_dir, problems, run), sig,
                         watch=lambda: (run / "trl" / "checkpoint-2" / "trainer_state.json").exists())
    assert stopped.returncode == 128 + sig, stopped.stderr[-2000:]  # stopped during step 3
    assert "rerun the same command to resume" in stopped.stderr and "Traceback" not in stopped.stderr
    assert not list(run.rglob("*.tmp-*")) and not (run / ".reasonlens.lock").exists()
    done = _finish(_train_args(tiny_model_dir, problems, run, resume=True))
    assert "warning" not in done.stderr.lower()  # a clean stop leaves no stale lock or broken checkpoint
    _same_run(run, straight)


def test_train_hicra_survives_kill_9_during_a_save_and_matches_an_uninterrupted_run(tiny_model_dir, problems,
                                                                                    tmp_path, straight):
    run = tmp_path / "killed"
    # 1: killed the moment TRL starts writing checkpoint-2 (mid-save); 2-4: at random moments
    mid_save = _run_killed(_train_args(tiny_model_dir, problems, run), delays=[120],
                           watch=lambda: (run / "trl" / "checkpoint-2").exists())
    assert not (run / "trl" / "checkpoint-2" / "trainer_state.json").exists()  # the save was cut short
    rng = random.Random(1)
    later = _run_killed(_train_args(tiny_model_dir, problems, run, resume=True),
                        delays=[rng.uniform(4.0, 14.0) for _ in range(KILLS - 1)])
    assert mid_save == ["killed"] and later.count("killed") >= 1, (mid_save, later)
    done = _finish(_train_args(tiny_model_dir, problems, run, resume=True))
    assert "error" not in done.stderr.lower()
    _same_run(run, straight)
