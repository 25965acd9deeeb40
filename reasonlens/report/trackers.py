"""Send the dynamics into the researcher's experiment tracker: TensorBoard, trackio, W&B (`--report-to`).

What each tracker receives, whichever it is (the payload is built here, the writers are in
`report.exporters`):
- every numeric dynamics column as the scalar ``reasonlens/<column>`` at ``step`` = the training step
  (interval columns such as ``<column>_ci_low`` / ``_ci_high`` are numeric columns like any other);
- the step's per-token entropies (all response tokens pooled) as the histogram ``reasonlens/token_entropy``;
- the phase verdicts as markdown text ``reasonlens/phases``, at the last step, whenever they change.
None of the trackers is imported until one is asked for; each is an optional extra (``reasonlens[trackers]``).
``OUT/trackers.json`` records a digest of what each tracker got per step (and the W&B run id), so a
rerun or the `--watch` loop sends only new or changed steps and reattaches to the same W&B run.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

from reasonlens import columns as C
from reasonlens.errors import ReasonlensError
from reasonlens.metrics import columns as dc
from reasonlens.records import write_json
from reasonlens.report import exporters
from reasonlens.report.exporters import PREFIX

TRACKERS = ("tensorboard", "trackio", "wandb")  # each also the name of its package
STATE_FILE = "trackers.json"


def parse_report_to(value: Optional[str]) -> tuple[str, ...]:
    """The trackers named by ``--report-to`` ("none", "" or a comma-separated subset of `TRACKERS`).

    >>> parse_report_to("wandb, tensorboard"), parse_report_to("none")
    (('wandb', 'tensorboard'), ())
    """
    names = [n.strip().lower() for n in (value or "").split(",") if n.strip()]
    if names in ([], ["none"]):
        return ()
    unknown = [n for n in names if n not in TRACKERS]
    if unknown:
        raise ReasonlensError(f"--report-to {value!r}: unknown tracker(s) {unknown}; expected 'none' or a "
                              f"comma-separated list of {', '.join(TRACKERS)}.")
    return tuple(dict.fromkeys(names))


def check_installed(trackers) -> None:
    """Raise before anything loads when a requested tracker's package is missing."""
    missing = [t for t in trackers if importlib.util.find_spec(t) is None]
    if missing:
        raise ReasonlensError(f"--report-to needs {', '.join(missing)} in this environment: pip install "
                              f"'reasonlens[trackers]' (or {' '.join(missing)}), or drop them from --report-to.")


def parse_wandb_run(value: Optional[str]) -> Optional[dict]:
    """``ENTITY/PROJECT/ID`` (or ``PROJECT/ID``) as ``wandb.init`` keywords; None for a new run.

    >>> parse_wandb_run("me/rl/abc12")
    {'entity': 'me', 'project': 'rl', 'id': 'abc12'}
    """
    if value is None:
        return None
    parts = value.strip().strip("/").split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise ReasonlensError(f"--wandb-run {value!r} is not ENTITY/PROJECT/ID (or PROJECT/ID): copy it from the "
                              "run's page, e.g. my-team/grpo-math/1a2b3c4d.")
    return dict(zip(("entity", "project", "id")[3 - len(parts):], parts))


# --- the payload: pure functions of the analysis tables ------------------------------------------


def step_scalars(dynamics: pd.DataFrame) -> dict[int, dict[str, float]]:
    """``{step: {"reasonlens/<column>": value}}`` for every numeric column, finite values only.

    >>> step_scalars(pd.DataFrame({"step": [0, 1], "accuracy": [0.5, float("nan")], "unit": ["t", "t"]}))
    {0: {'reasonlens/accuracy': 0.5}, 1: {}}
    """
    numeric = [c for c in dynamics.columns if c != dc.STEP and pd.api.types.is_numeric_dtype(dynamics[c])
               and not pd.api.types.is_bool_dtype(dynamics[c])]
    out = {}
    for row in dynamics[[dc.STEP] + numeric].itertuples(index=False):
        values = dict(zip(numeric, row[1:]))
        out[int(row[0])] = {PREFIX + k: float(v) for k, v in values.items() if v is not None and math.isfinite(v)}
    return out


def step_entropies(rollouts: pd.DataFrame, steps) -> dict[int, np.ndarray]:
    """Per step the pooled per-token entropies (N,) of its responses; empty when the log has none."""
    if C.ENTROPIES not in rollouts.columns:
        return {}
    wanted = rollouts[rollouts[C.STEP].isin(list(steps))]
    return {int(step): np.concatenate([np.asarray(e, dtype=float) for e in group] or [np.zeros(0)])
            for step, group in wanted.groupby(C.STEP)[C.ENTROPIES]}


def phases_markdown(phases: dict, step: int) -> str:
    """The phase verdicts as a small markdown table (what a tracker's text panel shows)."""
    lines = [f"Phase verdicts on the curve up to step {step}:", "", "| phase | boundary | why |", "|---|---|---|"]
    for name, phase in phases.items():
        where = f"step {phase['step']}" if phase.get("detected") else "not detected"
        lines.append(f"| {name} | {where} | {str(phase.get('reason', '')).replace('|', '/')} |")
    return "\n".join(lines)


def digest(obj) -> str:
    """Short content hash of a JSON-able payload (what a tracker got for one step)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _entropy_digest(values: Optional[np.ndarray]):
    return None if values is None else [int(values.size), round(float(values.sum()), 6)]


# --- the session: open the trackers once, send what is new ---------------------------------------


class TrackerSession:
    """The requested exporters, open for one analysis or a whole `--watch`; ``export`` sends new steps only.

    Parameters
    ----------
    trackers : names from `parse_report_to`.
    out : the analysis folder (``trackers.json``, default ``OUT/tensorboard``, W&B's ``OUT/wandb``).
    tensorboard_dir, trackio_project, wandb_run : where each tracker writes (see AnalyzeConfig).
    """

    def __init__(self, trackers, out: Path, *, tensorboard_dir=None, trackio_project: str = "reasonlens",
                 wandb_run: Optional[str] = None, name: Optional[str] = None):
        self.out = Path(out)
        self.state = _read_state(self.out / STATE_FILE)
        name = name or _run_name(self.out)
        self.exporters = {}
        for tracker in trackers:
            if tracker == "tensorboard":
                self.exporters[tracker] = exporters.TensorBoardExporter(Path(tensorboard_dir or self.out / "tensorboard"))
            elif tracker == "trackio":
                self.exporters[tracker] = exporters.TrackioExporter(trackio_project, name)
            else:
                run = parse_wandb_run(wandb_run) or self.state.get("wandb_run") or {"project": "reasonlens"}
                self.exporters[tracker] = exporters.WandbExporter(run, self.out, name)
                self.state["wandb_run"] = self.exporters[tracker].run_spec

    @property
    def destinations(self) -> dict:
        """Where each tracker writes (recorded in summary.json)."""
        return {name: exporter.destination for name, exporter in self.exporters.items()}

    def export(self, dynamics: pd.DataFrame, rollouts: pd.DataFrame, phases: dict, *, steps=None) -> dict:
        """Send every step (of ``steps``, default all) a tracker has not had with this content; return
        ``{tracker: [steps sent]}``. The phase text goes at the last step when its verdicts changed."""
        scalars = step_scalars(dynamics)
        allowed = set(scalars) if steps is None else set(scalars) & {int(s) for s in steps}
        sent = {}
        for name, exporter in self.exporters.items():
            record = self.state.setdefault(f"{name} {exporter.destination}", {})
            done = record.setdefault("steps", {})
            todo = sorted(s for s in allowed if done.get(str(s)) != digest(scalars[s]))
            entropies = step_entropies(rollouts, todo) if todo else {}
            for step in todo:
                exporter.log_step(step, scalars[step], entropies.get(step))
                done[str(step)] = digest(scalars[step])
            sent[name] = todo
            if allowed:
                self._export_phases(record, exporter, phases, max(allowed))
            exporter.flush()
        write_json(self.out / STATE_FILE, self.state)
        return sent

    @staticmethod
    def _export_phases(record: dict, exporter, phases: dict, last: int) -> None:
        """The verdict text, sent when a boundary appears, moves or goes (and the first time)."""
        verdicts = {k: (v.get("detected"), v.get("step")) for k, v in phases.items()}
        if record.get("phases") != digest(verdicts):
            exporter.log_text(last, phases_markdown(phases, last), phases)
            record["phases"] = digest(verdicts)

    def close(self) -> None:
        for exporter in self.exporters.values():
            exporter.close()
        self.exporters = {}


def _read_state(path: Path) -> dict:
    """What was sent before (empty when absent or unreadable: then everything is sent again)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _run_name(out: Path) -> str:
    """A readable run name: the analysed folder and the analysis folder, e.g. ``demo/reasonlens``."""
    out = out.resolve()
    return f"{out.parent.name}/{out.name}" if out.parent.name else out.name
