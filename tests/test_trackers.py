"""`analyze --report-to`: what each tracker stored, read back with the tracker's own reader, equals dynamics.csv."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from live_fixtures import add_step, start_run, step_rollouts
from reasonlens.cli import app
from reasonlens.errors import ReasonlensError
from reasonlens.report.trackers import check_installed, parse_report_to, parse_wandb_run, step_scalars

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]
STEPS = (1, 2, 3, 4, 5)


def _run(tmp_path: Path) -> Path:
    run = start_run(tmp_path / "run")
    for step in STEPS:
        add_step(run, step)
    return run


def _cli(args, env=None, timeout=240):
    """The CLI in a fresh process: trackio reads TRACKIO_DIR and W&B its mode when first imported."""
    return subprocess.run([sys.executable, "-m", "reasonlens.cli", "analyze", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env={**os.environ, **(env or {}),
                                                          "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])})


def _numeric(dynamics: pd.DataFrame) -> list[str]:
    return [c for c in dynamics.columns if c != "step" and pd.api.types.is_numeric_dtype(dynamics[c])]


def test_tensorboard_events_equal_dynamics_csv_and_a_rerun_adds_nothing(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.util import tensor_util

    run, out = _run(tmp_path), tmp_path / "out"
    result = runner.invoke(app, ["analyze", str(run), "--out", str(out), "--no-report", "--report-to", "tensorboard"])
    assert result.exit_code == 0, result.output
    dynamics = pd.read_csv(out / "dynamics.csv")
    events = EventAccumulator(str(out / "tensorboard"), size_guidance={"tensors": 0}).Reload()
    checked = 0
    for column in _numeric(dynamics):
        expected = {int(s): v for s, v in zip(dynamics["step"], dynamics[column]) if np.isfinite(v)}
        logged = {e.step: float(tensor_util.make_ndarray(e.tensor_proto))
                  for e in (events.Tensors(f"reasonlens/{column}") if expected else [])}
        assert logged == {s: float(np.float32(v)) for s, v in expected.items()}, column  # TensorBoard keeps float32
        checked += len(logged)
    assert checked >= 5 * 15
    # the histogram holds every response token of the step: 4 responses, one token per word
    tokens = sum(len(r.split(" ")) for r in step_rollouts(1)["response"])
    counts = {e.step: tensor_util.make_ndarray(e.tensor_proto)[:, 2].sum() for e in events.Tensors("reasonlens/token_entropy")}
    assert counts == {s: tokens for s in STEPS}
    text = [tensor_util.make_ndarray(e.tensor_proto).item().decode() for e in events.Tensors("reasonlens/phases")]
    assert len(text) == 1 and "consolidation" in text[0] and "up to step 5" in text[0]
    assert json.loads((out / "summary.json").read_text())["trackers"] == {"tensorboard": str(out / "tensorboard")}

    files = sorted((out / "tensorboard").iterdir())
    again = runner.invoke(app, ["analyze", str(run), "--out", str(out), "--no-report", "--report-to", "tensorboard"])
    assert again.exit_code == 0, again.output
    assert sorted((out / "tensorboard").iterdir()) == files  # nothing new: no event file written


def test_tensorboard_dir_option_writes_a_sibling_run(tmp_path):
    run, logdir = _run(tmp_path), tmp_path / "tensorboard_log" / "proj" / "exp" / "reasonlens"
    result = runner.invoke(app, ["analyze", str(run), "--out", str(tmp_path / "o"), "--no-report",
                                 "--report-to", "tensorboard", "--tensorboard-dir", str(logdir)])
    assert result.exit_code == 0, result.output
    assert list(logdir.glob("events.out.tfevents.*")) and not (tmp_path / "o" / "tensorboard").exists()


def test_trackio_local_store_holds_the_dynamics(tmp_path):
    run, out, store = _run(tmp_path), tmp_path / "out", tmp_path / "trackio"
    done = _cli([str(run), "--out", str(out), "--no-report", "--report-to", "trackio", "--trackio-project", "rl-live"],
                env={"TRACKIO_DIR": str(store)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(out)  # trackio's banners went to stderr
    dynamics = pd.read_csv(out / "dynamics.csv").set_index("step")
    with sqlite3.connect(store / "rl-live.db") as db:
        rows = db.execute("select run_name, step, metrics from metrics order by step").fetchall()
    logged = {}
    for name, step, metrics in rows:
        assert name == f"{tmp_path.name}/out"  # the analysed folder and the analysis folder
        logged.setdefault(step, {}).update(json.loads(metrics))
    assert sorted(logged) == list(STEPS)
    for step in STEPS:
        assert logged[step]["reasonlens/accuracy"] == pytest.approx(dynamics.loc[step, "accuracy"], abs=0)
        assert logged[step]["reasonlens/entropy_all"] == pytest.approx(dynamics.loc[step, "entropy_all"], rel=1e-12)
        assert sum(logged[step]["reasonlens/token_entropy"]["values"]) == sum(
            len(r.split(" ")) for r in step_rollouts(step)["response"])
    assert logged[5]["reasonlens/phases"]["_type"] == "trackio.markdown"


def test_wandb_offline_run_files_hold_the_dynamics_at_their_steps(tmp_path):
    pytest.importorskip("wandb", reason="the `trackers` extra (make test installs it)")
    run, out = _run(tmp_path), tmp_path / "out"
    env = {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_DIR": str(tmp_path)}
    done = _cli([str(run), "--out", str(out), "--no-report", "--report-to", "wandb", "--wandb-run", "me/rl/run42"],
                env=env)
    assert done.returncode == 0, done.stderr
    files = list((out / "wandb").glob("offline-run-*-run42/run-run42.wandb"))
    assert len(files) == 1
    # wandb's own reader of the transaction log
    records = subprocess.run([sys.executable, "-m", "wandb", "leet", "inspect", str(files[0]), "--json"],
                             capture_output=True, text=True, timeout=120, check=True).stdout
    history = [r["history"]["item"] for r in map(json.loads, records.splitlines()) if r.get("type") == "history"]
    by_step = {}
    for item in history:
        by_step.setdefault(item["reasonlens/step"], {}).update(item)
    dynamics = pd.read_csv(out / "dynamics.csv").set_index("step")
    assert sorted(by_step) == list(STEPS)
    for step in STEPS:
        for column in ("accuracy", "entropy_all", "rel_ppl_execution", "sg_semantic_entropy"):
            assert by_step[step][f"reasonlens/{column}"] == pytest.approx(dynamics.loc[step, column], rel=1e-12)
        assert by_step[step]["reasonlens/token_entropy._type"] == "histogram"
    assert "reasonlens/phases._type" in by_step[5]
    metrics = [r["metric"] for r in map(json.loads, records.splitlines()) if r.get("type") == "metric"]
    assert any(m.get("glob_name") == "reasonlens/*" and m.get("step_metric") == "reasonlens/step" for m in metrics)
    assert json.loads((out / "summary.json").read_text())["trackers"]["wandb"] == "me/rl/run42"


def test_step_scalars_take_every_numeric_column_by_name_intervals_included():
    table = pd.DataFrame({"step": [0, 2], "accuracy": [0.25, 0.5], "accuracy_ci_low": [0.1, np.nan],
                          "accuracy_ci_high": [0.4, 0.7], "length_unit": ["tokens", "tokens"]})
    assert step_scalars(table) == {
        0: {"reasonlens/accuracy": 0.25, "reasonlens/accuracy_ci_low": 0.1, "reasonlens/accuracy_ci_high": 0.4},
        2: {"reasonlens/accuracy": 0.5, "reasonlens/accuracy_ci_high": 0.7}}


@pytest.mark.parametrize("value, expected", [("none", ()), ("", ()), ("tensorboard,wandb", ("tensorboard", "wandb")),
                                             (" TrackIO ", ("trackio",))], ids=["none", "empty", "two", "case"])
def test_parse_report_to(value, expected):
    assert parse_report_to(value) == expected


def test_bad_tracker_options_are_clear_errors(tmp_path, monkeypatch):
    with pytest.raises(ReasonlensError, match="unknown tracker.*'mlflow'.*tensorboard, trackio, wandb"):
        parse_report_to("tensorboard,mlflow")
    with pytest.raises(ReasonlensError, match="ENTITY/PROJECT/ID"):
        parse_wandb_run("just-an-id")
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    with pytest.raises(ReasonlensError, match=r"needs wandb.*reasonlens\[trackers\]"):
        check_installed(("tensorboard", "wandb"))
    run = _run(tmp_path)
    result = runner.invoke(app, ["analyze", str(run), "--out", str(tmp_path / "o"), "--report-to", "wandb"])
    assert result.exit_code == 1 and "needs wandb" in result.output
    assert not (tmp_path / "o" / "summary.json").exists()  # refused before anything was read
