"""What one analysis actually did, kept apart from what it was asked to do (the frozen `plan.Plan`).

Each stage that reads, generates or re-scores returns a `Record` beside its rollout table, and
`run.analyze` merges them into the one written to ``summary.json``: the runtime that ran, how a log
was graded, which checkpoint scored each logged step, checkpoints dropped while running, and the
wall time per stage.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from typing import Optional


@dataclasses.dataclass
class Record:
    """What ran: filled by the stage that did it, merged by `run.analyze`."""

    runtime: Optional[dict] = None           # device, dtype, threads, backend that ran (None: no model loaded)
    graded: Optional[str] = None             # how a text log without verdicts was graded
    step_checkpoints: Optional[list] = None  # rescored: which checkpoint scored each logged step
    skipped: list = dataclasses.field(default_factory=list)   # [{"path", "reason"}] dropped while running
    seconds: dict = dataclasses.field(default_factory=dict)   # wall time per stage, summed over steps

    def timed(self, stage: str):
        """Add the wall time of the ``with`` block to ``seconds[stage]``."""
        return timed(self.seconds, stage)

    def add_seconds(self, seconds: dict) -> None:
        """Sum per-stage times (a worker's, a sub-stage's) into this record."""
        for stage, spent in seconds.items():
            self.seconds[stage] = self.seconds.get(stage, 0.0) + spent

    def merge(self, other: "Record") -> "Record":
        """This record with ``other``'s results added: its fields where set, its skips and seconds summed."""
        merged = dataclasses.replace(self, skipped=self.skipped + other.skipped, seconds=dict(self.seconds))
        for name in ("runtime", "graded", "step_checkpoints"):
            if getattr(other, name) is not None:
                setattr(merged, name, getattr(other, name))
        merged.add_seconds(other.seconds)
        return merged


@contextlib.contextmanager
def timed(seconds: dict, stage: str):
    """Add the wall time of the ``with`` block to ``seconds[stage]`` (a worker's seconds, a record's)."""
    start = time.perf_counter()
    try:
        yield
    finally:
        seconds[stage] = seconds.get(stage, 0.0) + time.perf_counter() - start
