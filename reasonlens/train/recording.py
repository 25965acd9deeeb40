"""What a training run leaves on disk, step by step, in the layout `reasonlens analyze RUN` reads.

    RUN/config.json                  TrainConfig + TRL arguments + what ran + provenance
    RUN/metrics.csv                  one row per optimizer step: TRL's logs + metrics.dynamics.step_metrics
    RUN/rollouts/step_000001.parquet the tagged rollout table of each step (+ logprobs, entropies, advantages)
    RUN/checkpoints/step_N/          weights (or LoRA adapter) + tokenizer after step N
    RUN/trl/checkpoint-N/            TRL's own checkpoint (optimizer, RNG, sampler): what --resume uses

``step_N`` folders hold hard links to the model files of TRL's ``checkpoint-N`` (a copy where the
file system refuses links), so the export costs no disk and survives TRL's rotation.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
from transformers import TrainerCallback

from reasonlens.records import write_csv

_TRAINER_STATE_FILES = ("optimizer.pt", "scheduler.pt", "scaler.pt", "training_args.bin",
                        "trainer_state.json", "entropy_ctrl_state.json")


def export_checkpoint(source: Path, dest: Path) -> Path:
    """Link (or copy) the model/adapter and tokenizer files of TRL's checkpoint into ``dest``."""
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for item in Path(source).iterdir():
        if item.is_file() and item.name not in _TRAINER_STATE_FILES and not item.name.startswith("rng_state"):
            try:
                os.link(item, tmp / item.name)
            except OSError:
                shutil.copy2(item, tmp / item.name)
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    return dest


def prune_after(run_dir: Path, step: int) -> None:
    """Forget what an interrupted run logged after ``step`` (the checkpoint it resumes from)."""
    run_dir = Path(run_dir)
    for path in (run_dir / "rollouts").glob("step_*.parquet"):
        if int(path.stem.split("_")[1]) > step:
            path.unlink()
    for path in (run_dir / "checkpoints").glob("step_*"):
        if path.name.split("_")[1].isdigit() and int(path.name.split("_")[1]) > step:
            shutil.rmtree(path)
    metrics = run_dir / "metrics.csv"
    if metrics.exists():
        table = pd.read_csv(metrics)
        write_csv(metrics, table[table["step"] <= step])


class RunRecorder(TrainerCallback):
    """Appends each step's logs to RUN/metrics.csv, exports step_N checkpoints, saves the last step."""

    def __init__(self, run_dir: Path, save_every: int):
        self.run_dir = Path(run_dir)
        self.save_every = save_every

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step % self.save_every == 0 or state.global_step >= state.max_steps:
            control.should_save = True

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs or "loss" not in logs:
            return  # the end-of-training summary has train_loss, not loss
        path = self.run_dir / "metrics.csv"
        row = pd.DataFrame([{"step": state.global_step, **logs}])
        table = pd.concat([pd.read_csv(path), row], ignore_index=True) if path.exists() else row
        write_csv(path, table)

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            source = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            export_checkpoint(source, self.run_dir / "checkpoints" / f"step_{state.global_step}")


class LiveDynamics(TrainerCallback):
    """train-hicra --report-to: each step's dynamics row (the `step_metrics` TRL also logs), its token-entropy
    histogram and the phase verdicts on the curve so far go to the same trackers as TRL's logs, under
    ``reasonlens/*`` at the training step (`report.trackers`). TensorBoard: ``RUN/trl/runs/reasonlens``, a
    sibling of TRL's own ``runs/<date>_<host>``; W&B and trackio: the run TRL opened."""

    def __init__(self, run_dir: Path, trackers: tuple):
        self.run_dir, self.trackers = Path(run_dir), trackers
        self.rows, self.session = [], None

    def record(self, step: int, metrics: dict, table: pd.DataFrame) -> None:
        """Send one finished step (main process; after TRL's trackers opened their runs at train begin)."""
        from reasonlens.metrics.dynamics import add_relative
        from reasonlens.metrics.phases import detect_phases
        from reasonlens.report.trackers import TrackerSession

        if self.session is None:
            self.session = TrackerSession(self.trackers, self.run_dir,
                                          tensorboard_dir=self.run_dir / "trl" / "runs" / "reasonlens")
            self.rows = self._logged(metrics)
        self.rows = [r for r in self.rows if r["step"] < step] + [{**metrics, "step": step}]
        dynamics = add_relative(pd.DataFrame(self.rows))
        self.session.export(dynamics, table, detect_phases(dynamics), steps=[step])

    def _logged(self, like: dict) -> list[dict]:
        """The dynamics columns of the steps a resumed run logged before (the curve's start is there)."""
        path = self.run_dir / "metrics.csv"
        if not path.exists():
            return []
        table = pd.read_csv(path)
        return table[[c for c in table.columns if c in like or c == "step"]].to_dict("records")

    def on_train_end(self, args, state, control, **kwargs):
        if self.session is not None:
            self.session.close()
            self.session = None


class ProgressBar(TrainerCallback):
    """A tqdm bar over optimizer steps showing the live reward and planning-token ratio."""

    def __init__(self):
        self.bar = None

    def on_train_begin(self, args, state, control, **kwargs):
        from tqdm.auto import tqdm

        if state.is_world_process_zero:
            self.bar = tqdm(total=state.max_steps, initial=state.global_step, desc="train-hicra", unit="step")

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.bar is not None and logs and "loss" in logs:
            self.bar.n = state.global_step
            self.bar.set_postfix(reward=_fmt(logs.get("reward")), planning=_fmt(logs.get("planning_ratio")),
                                 acc=_fmt(logs.get("accuracy")))

    def on_train_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.close()


def _fmt(value) -> str:
    return "-" if value is None or (isinstance(value, float) and not np.isfinite(value)) else f"{value:.3f}"
