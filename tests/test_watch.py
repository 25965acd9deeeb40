"""`analyze --watch`: steps analysed once complete, trackers fed as they land, a clean stop on SIGINT/SIGTERM."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from live_fixtures import add_step, start_run
from reasonlens.analysis.watch import Settling, Unit, _Loop, build_view, scan, step_of

ROOT = Path(__file__).resolve().parents[1]


# --- which steps are complete ---------------------------------------------------------------------


def _unit(rel, step, signature=(1, 10, 5), marked=False):
    return Unit(Path(rel), step, signature, marked)


def test_a_step_is_complete_when_a_later_one_exists_it_is_marked_or_it_settled():
    settling = Settling()
    units = [_unit("d/1.jsonl", 1), _unit("d/2.jsonl", 2), _unit("c/step_7", 7, marked=True), _unit("e/3.jsonl", 3)]
    done = settling.complete(units, settle=30, atomic=False, now=100.0)
    # 1 has a later step beside it; 7 holds STABLE; 2 and 3 are the newest of their folder and just seen
    assert [u.step for u in done] == [1, 7]
    assert [u.step for u in settling.complete(units, settle=30, atomic=False, now=129.0)] == [1, 7]
    assert [u.step for u in settling.complete(units, settle=30, atomic=False, now=130.0)] == [1, 2, 7, 3]
    grown = [units[0], _unit("d/2.jsonl", 2, signature=(1, 99, 6)), units[2], units[3]]  # 2 still being written
    assert [u.step for u in settling.complete(grown, settle=30, atomic=False, now=140.0)] == [1, 7, 3]
    assert [u.step for u in settling.complete(grown, settle=30, atomic=True, now=140.0)] == [1, 2, 7, 3]


def test_step_names_of_each_framework():
    names = ["step_000012.parquet", "completions_00003.parquet", "5.jsonl", "checkpoint-40", "global_step_8",
             "step_2", "step_000001.parquet.tmp-77", "step_3.tmp", "config.json", "rank_0.jsonl"]
    assert [step_of(n) for n in names] == [12, 3, 5, 40, 8, 2, None, None, None, None]


def test_the_view_holds_complete_steps_only_and_never_the_output(tmp_path):
    trl = tmp_path / "trl-out"
    (trl / "completions").mkdir(parents=True)
    for step in (1, 2, 3):
        (trl / "completions" / f"completions_{step:05d}.parquet").write_bytes(b"x" * step)
    (trl / "checkpoint-2").mkdir()
    (trl / "checkpoint-2" / "model.safetensors").write_bytes(b"w")
    (trl / "README.md").write_text("hi")
    (trl / "completions" / "completions_00004.parquet.tmp-1").write_bytes(b"half")
    out = trl / "reasonlens"
    out.mkdir()
    units, static = scan(trl, out)
    assert sorted((str(u.rel), u.step) for u in units) == [
        ("checkpoint-2", 2), ("completions/completions_00001.parquet", 1), ("completions/completions_00002.parquet", 2),
        ("completions/completions_00003.parquet", 3)]
    assert static == [Path("README.md")]
    complete = Settling().complete(units, settle=60, atomic=False, now=0.0)
    view = build_view(trl, tmp_path / "view", complete, static)
    linked = sorted(str(p.relative_to(view)) for p in view.rglob("*") if p.is_symlink())
    assert linked == ["README.md", "completions/completions_00001.parquet", "completions/completions_00002.parquet"]
    assert (view / "completions" / "completions_00002.parquet").resolve() == trl / "completions" / "completions_00002.parquet"


def test_a_phase_boundary_that_appears_is_announced():
    said = []
    loop = _Loop.__new__(_Loop)
    loop.say = said.append
    def analysis(steps, detected):
        phases = {"consolidation": {"detected": detected, "step": 3 if detected else None},
                  "exploration": {"detected": False, "step": None}}
        return SimpleNamespace(dynamics=pd.DataFrame({"step": steps}), summary={"phases": phases})
    loop.analysis = analysis([1, 2, 3], False)
    loop._announce(analysis([1, 2, 3, 4, 5], True), 1.0)
    assert said == ["analysed 5 steps (new: 4, 5) in 1.0 s",
                    "phase consolidation: boundary at step 3 (on the curve up to step 5)"]


# --- a live run in another process ----------------------------------------------------------------


def _watch(run: Path | None, *extra) -> subprocess.Popen:
    """`analyze [RUN] --watch ...` in its own process (so it can be signalled)."""
    args = [sys.executable, "-m", "reasonlens.cli", "analyze", *([str(run)] if run else []), "--watch",
            "--watch-interval", "0.2", *extra]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)


def _wait_for(predicate, timeout=120.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def _steps_in(out: Path) -> list[int]:
    try:
        return json.loads((out / "summary.json").read_text())["phases"]["exploration"]["evidence"]["steps"]
    except (OSError, ValueError, KeyError):
        return []


def _tensorboard_steps(folder: Path) -> list[int]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder), size_guidance={"tensors": 0}).Reload()
    return [e.step for e in events.Tensors("reasonlens/accuracy")]


@pytest.mark.slow
def test_watch_follows_a_growing_run_stops_on_sigint_at_idle_and_a_rerun_redoes_nothing(tmp_path):
    run, out = start_run(tmp_path / "run"), tmp_path / "run" / "reasonlens"
    add_step(run, 1)
    proc = _watch(run, "--no-report", "--report-to", "tensorboard")
    _wait_for(lambda: _steps_in(out) == [1])
    for step in (2, 3, 4):
        add_step(run, step)
        _wait_for(lambda: _steps_in(out) == list(range(1, step + 1)))
        assert sorted(_tensorboard_steps(out / "tensorboard")) == list(range(1, step + 1))  # each step once
    time.sleep(1.0)  # idle
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert "stopped:" in stderr and "summary.json is complete" in stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["trackers"] == {"tensorboard": str(out / "tensorboard")}
    assert pd.read_csv(out / "dynamics.csv")["step"].tolist() == [1, 2, 3, 4]

    tags = {p: p.stat().st_mtime_ns for p in (out / "tags").glob("*.parquet")}
    events, state = sorted((out / "tensorboard").iterdir()), (out / "trackers.json").read_text()
    rerun = _watch(run, "--no-report", "--report-to", "tensorboard", "--watch-idle", "1")
    _, stderr = rerun.communicate(timeout=120)
    assert rerun.returncode == 0 and "no new step for 1 s: stopping" in stderr, stderr
    assert {p: p.stat().st_mtime_ns for p in (out / "tags").glob("*.parquet")} == tags  # no step re-tagged
    assert "tag" not in json.loads((out / "summary.json").read_text())["stage_seconds"]
    assert sorted((out / "tensorboard").iterdir()) == events and (out / "trackers.json").read_text() == state


@pytest.mark.slow
@pytest.mark.parametrize("signum, signals", [(signal.SIGINT, 1), (signal.SIGTERM, 2)],
                         ids=["sigint-finishes-the-step", "second-sigterm-drops-it"])
def test_a_signal_during_a_step_exits_0_with_a_complete_folder(tmp_path, signum, signals):
    run, out = start_run(tmp_path / "run"), tmp_path / "run" / "reasonlens"
    for step in (1, 2):
        add_step(run, step)
    proc = _watch(run)  # with the report: each analysis takes seconds, long enough to be interrupted
    _wait_for(lambda: _steps_in(out) == [1, 2])
    add_step(run, 3)
    lines = []
    _wait_for(lambda: lines.append(proc.stderr.readline()) or "complete: step 3; analysing" in lines[-1])
    for _ in range(signals):
        proc.send_signal(signum)
        time.sleep(0.05)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, "".join(lines) + stderr
    summary = json.loads((out / "summary.json").read_text())  # complete either way
    expected = [1, 2, 3] if signals == 1 else [1, 2]
    assert _steps_in(out) == expected and pd.read_csv(out / "dynamics.csv")["step"].tolist() == expected
    assert (out / "report.html").is_file() and summary["n_responses"] == 4 * len(expected)


def _verl_step(folder: Path, step: int) -> None:
    """verl's rollout dump of one step: {step}.jsonl with input/output/gts/score."""
    rows = [{"input": f"What is 3 + {i}?", "output": f"Let's add. 3 + {i} = {3 + i}. \\boxed{{{3 + i}}}",
             "gts": str(3 + i), "score": 1.0, "step": step} for i in range(2)]
    (folder / f"{step}.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")


def test_a_verl_dump_folder_newest_step_waits_for_the_settle_time(tmp_path):
    dump = tmp_path / "rollout_data"
    dump.mkdir()
    for step in (1, 2):
        _verl_step(dump, step)
    # --watch-idle above --watch-settle: the loop cannot stop before step 2 has had its 3 s to settle
    proc = _watch(None, "--rollouts", str(dump), "--no-report", "--watch-settle", "3", "--watch-idle", "5")
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    lines = [line for line in stderr.splitlines() if line.startswith("complete:")]
    # step 1 is complete at once (step 2 exists beside it); step 2, the newest, once unchanged for 3 s
    assert lines == ["complete: step 1; analysing", "complete: step 2; analysing"]
    assert pd.read_csv(dump / "reasonlens" / "dynamics.csv")["step"].tolist() == [1, 2]


def test_watching_an_input_with_no_complete_step_yet_stops_cleanly(tmp_path):
    dump = tmp_path / "rollout_data"
    dump.mkdir()
    proc = _watch(None, "--rollouts", str(dump), "--watch-idle", "1")
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "no new step for 1 s: stopping" in stderr, stderr
    assert not (dump / "reasonlens" / "summary.json").exists()


def _analysed_steps(out: Path) -> list[int]:
    """The steps of a finished analysis (summary.json is written last), [] while there is none."""
    try:
        json.loads((out / "summary.json").read_text())
        return pd.read_csv(out / "dynamics.csv")["step"].tolist()
    except (OSError, ValueError, KeyError):
        return []


@pytest.mark.slow
def test_a_checkpoint_folder_gaining_checkpoints_is_generated_once_per_checkpoint(tmp_path, tiny_series):
    series, out = tmp_path / "ckpts", tmp_path / "analysis"
    series.mkdir()
    for step in (1, 2):
        shutil.copytree(tiny_series / f"checkpoint-{step}", series / f"checkpoint-{step}")
    small = ["--task", "basic_arithmetic", "--num-prompts", "1", "--samples", "2", "--max-new-tokens", "4",
             "--device", "cpu", "--dtype", "fp32", "--no-report"]
    proc = _watch(series, "--out", str(out), "--watch-settle", "1", *small)
    _wait_for(lambda: _analysed_steps(out) == [1, 2], timeout=300)
    first = {p.name: p.stat().st_mtime_ns for p in (out / "rollouts").glob("step_*.parquet")}
    shutil.copytree(tiny_series / "checkpoint-3", series / "checkpoint-3")  # a new checkpoint lands
    _wait_for(lambda: _analysed_steps(out) == [1, 2, 3], timeout=300)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    after = {p.name: p.stat().st_mtime_ns for p in (out / "rollouts").glob("step_*.parquet")}
    assert sorted(after) == ["step_000001.parquet", "step_000002.parquet", "step_000003.parquet"]
    assert all(after[name] == mtime for name, mtime in first.items())  # finished checkpoints never regenerated
    assert pd.read_csv(out / "dynamics.csv")["step"].tolist() == [1, 2, 3]
