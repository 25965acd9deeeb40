"""One small writer per experiment tracker, each imported only when asked for (`report.trackers` builds the payload
and imports this module).

Every exporter has the same four calls: ``log_step(step, scalars, entropies)``, ``log_text(step, markdown,
phases)``, ``flush()`` and ``close()``, plus ``destination`` (where it writes, for summary.json).
- TensorBoard: the `tensorboard` package's own event writer and summary protos (no torch, no TensorFlow),
  one event per step at ``step``, so a sibling folder of a training run's log dir shows as its own run;
- trackio: local SQLite under trackio's directory (``TRACKIO_DIR``, default ``$HF_HOME/trackio``), run
  resumed by name; inside a training process that already has a trackio run (TRL's), that run is used;
- W&B: ``wandb.init(resume="allow")`` on the given or recorded run id (or the run TRL already opened), with
  ``reasonlens/step`` as the x-axis of every ``reasonlens/*`` key (`define_metric`) so past steps land
  at their steps whatever the run's own step is. Its mode (online/offline) is W&B's: ``WANDB_MODE``.
"""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path
from typing import Optional

import numpy as np

PREFIX = "reasonlens/"
STEP_METRIC = PREFIX + "step"          # W&B: the x-axis of every reasonlens/* key
HISTOGRAM_TAG = PREFIX + "token_entropy"
PHASES_TAG = PREFIX + "phases"


@contextlib.contextmanager
def _stdout_to_stderr():
    """Trackers print banners on stdout; the CLI's stdout carries only the report path."""
    with contextlib.redirect_stdout(sys.stderr):
        yield


class TensorBoardExporter:
    """Event files in ``log_dir``: scalars, the entropy histogram and the phase text, at each step."""

    def __init__(self, log_dir: Path):
        self.destination = str(log_dir)
        self.writer = None  # the event file is made at the first event: a rerun with nothing new adds none

    def log_step(self, step: int, scalars: dict, entropies: Optional[np.ndarray]) -> None:
        from tensorboard.compat.proto import summary_pb2
        from tensorboard.plugins.histogram.summary_v2 import histogram_pb
        from tensorboard.plugins.scalar.summary_v2 import scalar_pb

        summary = summary_pb2.Summary()
        for tag, value in scalars.items():
            summary.value.extend(scalar_pb(tag, value).value)
        if entropies is not None and entropies.size:
            summary.value.extend(histogram_pb(HISTOGRAM_TAG, entropies).value)
        self._write(step, summary)

    def log_text(self, step: int, markdown: str, phases: dict) -> None:
        from tensorboard.plugins.text.summary_v2 import text_pb

        self._write(step, text_pb(PHASES_TAG, markdown))

    def _write(self, step: int, summary) -> None:
        from tensorboard.compat.proto import event_pb2
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        if self.writer is None:
            self.writer = EventFileWriter(self.destination)
        self.writer.add_event(event_pb2.Event(wall_time=time.time(), step=int(step), summary=summary))

    def flush(self) -> None:
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class TrackioExporter:
    """A local trackio run (resumed by name), or the trackio run this process already has open."""

    def __init__(self, project: str, name: str):
        import trackio
        from trackio import context_vars, utils

        self.owned = context_vars.current_run.get() is None
        if self.owned:
            with _stdout_to_stderr():
                self.run = trackio.init(project=project, name=name, resume="allow", auto_log_cpu=False,
                                        auto_log_gpu=False, embed=False)
        else:
            self.run = context_vars.current_run.get()
        self.destination = f"{utils.TRACKIO_DIR} project {self.run.project} run {self.run.name}"

    def log_step(self, step: int, scalars: dict, entropies: Optional[np.ndarray]) -> None:
        import trackio

        metrics = dict(scalars)
        if entropies is not None and entropies.size:
            metrics[HISTOGRAM_TAG] = trackio.Histogram(entropies)
        self.run.log(metrics, step=int(step))

    def log_text(self, step: int, markdown: str, phases: dict) -> None:
        import trackio

        self.run.log({PHASES_TAG: trackio.Markdown(markdown)}, step=int(step))

    def flush(self) -> None:
        """trackio batches in a background thread and writes everything at `close`."""

    def close(self) -> None:
        import trackio

        if self.owned:  # trackio.finish also forgets the run, so its exit hook does not finish it again
            with _stdout_to_stderr():
                trackio.finish()


class WandbExporter:
    """A W&B run (``run_spec``: entity/project/id keywords; the active run if this process has one)."""

    def __init__(self, run_spec: dict, out: Path, name: str):
        import wandb

        self.owned = wandb.run is None
        if self.owned:
            keywords = dict(run_spec) if run_spec.get("id") else {**run_spec, "name": name}
            with _stdout_to_stderr():
                self.run = wandb.init(**keywords, dir=str(out), resume="allow",
                                      settings=wandb.Settings(console="off", silent=True))
        else:
            self.run = wandb.run
        self.run.define_metric(STEP_METRIC)
        self.run.define_metric(PREFIX + "*", step_metric=STEP_METRIC)
        self.run_spec = {k: v for k, v in (("entity", self.run.entity), ("project", self.run.project),
                                           ("id", self.run.id)) if v}
        self.destination = "/".join(self.run_spec.values())

    def log_step(self, step: int, scalars: dict, entropies: Optional[np.ndarray]) -> None:
        import wandb

        row = {STEP_METRIC: int(step), **scalars}
        if entropies is not None and entropies.size:
            row[HISTOGRAM_TAG] = wandb.Histogram(entropies)
        self.run.log(row)

    def log_text(self, step: int, markdown: str, phases: dict) -> None:
        import wandb

        table = wandb.Table(columns=["phase", "detected", "boundary_step", "reason"],
                            data=[[k, bool(v.get("detected")), v.get("step"), str(v.get("reason", ""))]
                                  for k, v in phases.items()])
        self.run.log({STEP_METRIC: int(step), PHASES_TAG: table})

    def flush(self) -> None:
        """W&B's service writes each `log` call through on its own."""

    def close(self) -> None:
        if self.owned:
            with _stdout_to_stderr():
                self.run.finish()
