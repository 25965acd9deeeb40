"""kill -9 at seeded random moments of `analyze` and `train-hicra` (one of them during a checkpoint save),
each followed by the same command: the finished result equals an uninterrupted run's, with no step
redone after it was finished, none lost, and no state that refuses both to resume and to restart."""

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


def test_analyze_survives_kill_9_and_matches_an_uninterrupted_run(tiny_series, tmp_path):
    from reasonlens.analysis.config import AnalyzeConfig
    from reasonlens.analysis.run import analyze

    settings = ["--task", "basic_arithmetic", "--num-prompts", "2", "--samples", "2", "--max-new-tokens", "40",
                "--device", "cpu", "--dtype", "fp32", "--threads", "1"]
    reference = analyze(AnalyzeConfig(path=tiny_series, out=tmp_path / "straight", task="basic_arithmetic",
                                      num_prompts=2, samples=2, max_new_tokens=40, device="cpu", dtype="fp32",
                                      threads=1), progress=False)
    out = tmp_path / "killed"
    args = _cli("analyze", tiny_series, "--out", out, *settings)
    rng = random.Random(0)
    outcomes = _run_killed(args, delays=[rng.uniform(2.0, 9.0) for _ in range(KILLS)])
    assert outcomes.count("killed") >= 2, outcomes
    finished_before = {p.name: p.stat().st_mtime_ns for p in (out / "rollouts").glob("step_*.json")} \
        if (out / "rollouts").exists() else {}
    _finish(args)
    for name, mtime in finished_before.items():  # a finished step is reused, never recomputed
        assert (out / "rollouts" / name).stat().st_mtime_ns == mtime
    ours, theirs = pd.read_parquet(out / "rollouts.parquet"), reference.rollouts
    assert ours[C.TOKEN_IDS].map(list).tolist() == theirs[C.TOKEN_IDS].map(list).tolist()
    assert np.allclose(np.concatenate(ours[C.LOGPROBS].tolist()), np.concatenate(theirs[C.LOGPROBS].tolist()))
    assert ours[C.GRAMS].map(list).tolist() == theirs[C.GRAMS].map(list).tolist()
    pd.testing.assert_frame_equal(pd.read_parquet(out / "dynamics.parquet"), reference.dynamics)
    assert not list(out.rglob("*.tmp-*"))


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


def test_train_hicra_survives_kill_9_during_a_save_and_matches_an_uninterrupted_run(tiny_model_dir, problems,
                                                                                    tmp_path):
    straight = tmp_path / "straight"
    _finish(_train_args(tiny_model_dir, problems, straight))
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
    metrics, reference = pd.read_csv(run / "metrics.csv"), pd.read_csv(straight / "metrics.csv")
    assert list(metrics["step"]) == [1, 2, 3, 4]  # every step exactly once
    key = [C.STEP, C.PROMPT_ID, C.SAMPLE_ID]
    ours, theirs = (_steps(r).sort_values(key).reset_index(drop=True) for r in (run, straight))
    assert ours[key].equals(theirs[key])
    assert ours[C.TOKEN_IDS].map(list).tolist() == theirs[C.TOKEN_IDS].map(list).tolist()
    assert np.allclose(metrics["loss"], reference["loss"], rtol=1e-4, atol=1e-6)
    assert {p.name for p in (run / "checkpoints").iterdir()} == {"step_1", "step_2", "step_3", "step_4"}
    assert not list(run.rglob("*.tmp-*"))
