"""train-hicra --report-to: reasonlens' per-step dynamics land beside TRL's own logs, at the training steps."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from reasonlens.errors import ReasonlensError


def _config(tmp_path, model, **overrides):
    from reasonlens.train.config import TrainConfig

    problems = tmp_path / "problems.jsonl"
    problems.write_text("\n".join(json.dumps({"question": f"Tom has {i} apples and buys 3 more. How many?",
                                              "answer": str(i + 3)}) for i in range(4)) + "\n")
    values = dict(out=tmp_path / "run", model=str(model), prompts_file=problems, num_prompts=4, steps=2,
                  prompts_per_step=2, num_generations=2, max_new_tokens=8, lr=1e-2, dtype="fp32", save_every=2,
                  threads=1, method="grpo")
    return TrainConfig(**(values | overrides))


@pytest.mark.slow
def test_train_hicra_sends_each_steps_dynamics_to_tensorboard_beside_trl(tmp_path, tiny_model_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.util import tensor_util

    from reasonlens.train.run import train_hicra

    run = train_hicra(_config(tmp_path, tiny_model_dir, report_to="tensorboard"))
    runs = run / "trl" / "runs"
    assert len([p for p in runs.iterdir() if p.name != "reasonlens"]) == 1  # TRL's own run beside ours
    metrics = pd.read_csv(run / "metrics.csv").set_index("step")
    events = EventAccumulator(str(runs / "reasonlens"), size_guidance={"tensors": 0}).Reload()
    for column in ("accuracy", "entropy_all", "planning_ratio", "mean_length"):
        logged = {e.step: float(tensor_util.make_ndarray(e.tensor_proto)) for e in events.Tensors(f"reasonlens/{column}")}
        assert logged == {s: float(np.float32(metrics.loc[s, column])) for s in (1, 2)}, column
    # the relative curve is the ratio to step 1, as analyze computes it
    rel = {e.step: float(tensor_util.make_ndarray(e.tensor_proto)) for e in events.Tensors("reasonlens/rel_ppl_execution")}
    assert rel[1] == 1.0 and rel[2] == pytest.approx(metrics.loc[2, "ppl_execution"] / metrics.loc[1, "ppl_execution"],
                                                    rel=1e-6)
    tokens = pd.read_parquet(run / "rollouts" / "step_000002.parquet")["n_tokens"].sum()
    assert tensor_util.make_ndarray(events.Tensors("reasonlens/token_entropy")[-1].tensor_proto)[:, 2].sum() == tokens


def test_train_hicra_refuses_a_missing_tracker_before_loading(tmp_path, tiny_model_dir, monkeypatch):
    import importlib.util

    from reasonlens.train.run import train_hicra

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "trackio" else real(name, *a))
    with pytest.raises(ReasonlensError, match=r"needs trackio.*reasonlens\[trackers\]"):
        train_hicra(_config(tmp_path, tiny_model_dir, report_to="tensorboard,trackio"))
    assert not (tmp_path / "run").exists()


def test_auto_reporters_never_include_wandb(tmp_path):
    from reasonlens.train.run import reporters_of, tracker_names

    config = _config(tmp_path, "smollm2", report_to="auto")
    assert reporters_of(config) in ([], ["tensorboard"])  # W&B without credentials would stop the run
    assert tracker_names(_config(tmp_path, "smollm2", report_to="wandb,mlflow")) == ("wandb",)


@pytest.mark.slow
def test_train_hicra_logs_into_the_trackio_and_wandb_runs_trl_opened(tmp_path, tiny_model_dir):
    """One process with TRL's trackio and W&B callbacks: our keys land in the very runs TRL logs to."""
    pytest.importorskip("wandb", reason="the `trackers` extra (make test installs it)")
    import os
    import sqlite3
    import subprocess
    import sys
    from pathlib import Path

    config = _config(tmp_path, tiny_model_dir, report_to="trackio,wandb")
    script = ("import sys; from reasonlens.train.config import TrainConfig; from reasonlens.train.run import train_hicra; "
              f"train_hicra(TrainConfig(**{ {k: str(v) if isinstance(v, Path) else v for k, v in vars(config).items()}!r}))")
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "TRACKIO_DIR": str(tmp_path / "trackio"), "WANDB_MODE": "offline", "WANDB_SILENT": "true",
           "WANDB_DIR": str(tmp_path), "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = pd.read_csv(config.out / "metrics.csv").set_index("step")
    (db,) = (tmp_path / "trackio").glob("*.db")
    with sqlite3.connect(db) as conn:
        rows = conn.execute("select run_id, step, metrics from metrics").fetchall()
    ours = {step: json.loads(m) for _, step, m in rows if "reasonlens/accuracy" in json.loads(m)}
    assert {s: v["reasonlens/accuracy"] for s, v in ours.items()} == {s: metrics.loc[s, "accuracy"] for s in (1, 2)}
    assert len({run for run, _, _ in rows}) == 1  # TRL's own records share the run
    assert any("train/loss" in json.loads(m) for _, _, m in rows)
    (log,) = (tmp_path / "wandb").glob("offline-run-*/run-*.wandb")
    records = subprocess.run([sys.executable, "-m", "wandb", "leet", "inspect", str(log), "--json"], env=env,
                             capture_output=True, text=True, timeout=120, check=True).stdout
    history = [r["history"]["item"] for r in map(json.loads, records.splitlines()) if r.get("type") == "history"]
    logged = {h["reasonlens/step"]: h["reasonlens/entropy_all"] for h in history if "reasonlens/entropy_all" in h}
    assert logged == pytest.approx({s: metrics.loc[s, "entropy_all"] for s in (1, 2)}, rel=1e-12)
    assert any("train/loss" in h for h in history)  # the same run as TRL's
