"""`analyze --watch`: follow a run still being written, analysing each step once it is complete.

The loop looks at the input every ``watch_interval`` seconds and lists its step units: files or folders
named like a step (``step_N[.parquet]``, ``N.jsonl``, ``completions_N.parquet``, ``checkpoint-N``,
``global_step_N``). A unit is complete when a later step exists beside it, when it holds a ``STABLE``
marker (prime-rl), when reasonlens wrote it (a `train-hicra` run's files appear by rename), or when its
files have not changed for ``watch_settle`` seconds. The complete units are linked (symlinks) into
``OUT/.watch/<path|rollouts>/``, a copy of the input's layout without the steps still being written, and
the public `analyze` runs on it, so summary.json records that folder as its input. `analyze` caches per
step (rollouts/, tags/), so each call does only the new steps' work; it runs only when the set of
complete units changed. Trackers stay open across calls and get only the new steps.

Stopping: SIGINT or SIGTERM finish the analysis in progress, then stop; a second one drops it and the
last finished state is analysed again from the caches, so summary.json is always complete; the exit
code is 0. ``watch_idle`` stops after that many seconds without a new step.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Optional

from reasonlens.analysis.config import AnalyzeConfig
from reasonlens.analysis.plan import OUTPUT_FILES, OUTPUT_FOLDERS, output_folder
from reasonlens.errors import ReasonlensError
from reasonlens.folders import check_out, writing

STEP_NAME = re.compile(r"^(?:step_|checkpoint-|global_step_?|completions_|iter_)?(\d+)(?:\.(?:parquet|jsonl|json))?$")
MARKER = "STABLE"
WATCHED = ("path", "rollouts")  # the config fields naming an input that may grow
MAX_DEPTH = 3


@dataclasses.dataclass(frozen=True)
class Unit:
    """One step's file or folder: where it is (relative to its root), its step, and whether it is complete."""

    rel: Path
    step: int
    signature: tuple  # (files, bytes, newest mtime_ns): changes while it is written
    marked: bool      # holds a STABLE marker


def step_of(name: str) -> Optional[int]:
    """The step a file or folder name stands for, None when it names no step.

    >>> step_of("step_000012.parquet"), step_of("completions_00003.parquet"), step_of("5.jsonl"), step_of("x.tmp-3")
    (12, 3, 5, None)
    """
    found = STEP_NAME.match(name)
    return int(found.group(1)) if found else None


def scan(root: Path, out: Path) -> tuple[list[Unit], list[Path]]:
    """The step units under ``root`` and the other entries (linked as they are), skipping ``out`` and temporaries."""
    if root.is_file():  # one log file: complete once it stops changing
        return [Unit(Path(root.name), step_of(root.name) or 0, _signature(root), False)], []
    units, static = [], []
    _walk(root, Path(), out.resolve(), units, static, depth=0)
    return units, static


def _walk(root: Path, rel: Path, out: Path, units: list, static: list, depth: int) -> bool:
    """Fill ``units``/``static`` under root/rel; return whether any unit was found there."""
    found = False
    for child in sorted((root / rel).iterdir()):
        resolved, name = child.resolve(), child.name
        if resolved == out or ".tmp" in name or name.startswith(".") or name == MARKER:
            continue
        step = step_of(name)
        if step is not None:
            units.append(Unit(rel / name, step, _signature(child), (child / MARKER).is_file()))
            found = True
            continue
        inner_units, inner_static = [], []
        if child.is_dir() and not child.is_symlink() and depth + 1 < MAX_DEPTH and (
                _walk(root, rel / name, out, inner_units, inner_static, depth + 1) or out.is_relative_to(resolved)):
            units += inner_units  # a folder holding steps (or the output) is rebuilt, not linked whole
            static += inner_static
            found = found or bool(inner_units)
        else:
            static.append(rel / name)
    return found


def _signature(path: Path) -> tuple:
    """(number of files, bytes, newest mtime) of a file or a whole folder: changes while it is written."""
    files = [path] if path.is_file() else [f for f in path.rglob("*") if f.is_file()]
    stats = [f.stat() for f in files]
    return len(stats), sum(s.st_size for s in stats), max((s.st_mtime_ns for s in stats), default=0)


class Settling:
    """When each unit's signature was first seen as it is now (so 'unchanged for N seconds' can be told)."""

    def __init__(self):
        self.since: dict = {}

    def complete(self, units: list[Unit], *, settle: float, atomic: bool, now: float) -> list[Unit]:
        """The units that are complete now (rules in the module docstring)."""
        for unit in units:
            if self.since.get(unit.rel, (None,))[0] != unit.signature:
                self.since[unit.rel] = (unit.signature, now)
        newest = {}
        for unit in units:
            newest[unit.rel.parent] = max(newest.get(unit.rel.parent, -1), unit.step)
        return [u for u in units if atomic or u.marked or u.step < newest[u.rel.parent]
                or now - self.since[u.rel][1] >= settle]


def build_view(root: Path, view: Path, complete: list[Unit], static: list[Path]) -> Path:
    """``view``: the layout of ``root`` with links to its static entries and complete units only."""
    shutil.rmtree(view, ignore_errors=True)
    if root.is_file():
        view.mkdir(parents=True)
        (view / root.name).symlink_to(root.resolve())
        return view / root.name
    for rel in [*static, *(u.rel for u in complete)]:
        (view / rel).parent.mkdir(parents=True, exist_ok=True)
        (view / rel).symlink_to((root / rel).resolve())
    view.mkdir(parents=True, exist_ok=True)
    return view


def _steps(snapshot: dict) -> set:
    return {unit.step for complete, _ in snapshot.values() for unit in complete}


class StopFlag:
    """SIGINT/SIGTERM: the first sets the flag (finish what runs), a second raises KeyboardInterrupt (drop it)."""

    def __init__(self):
        self.event = threading.Event()
        self.previous = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.event.is_set():
            raise KeyboardInterrupt
        self.event.set()

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def watch(config: AnalyzeConfig, *, say: Callable[[str], None] = None, progress: bool = False):
    """Analyse ``config``'s input as it grows, until stopped (module docstring); return the last `Analysis`
    (None when no step was ever complete)."""
    from reasonlens.report.trackers import TrackerSession, check_installed, parse_report_to

    say = say or (lambda line: print(line, file=sys.stderr, flush=True))
    roots = {f: Path(getattr(config, f)) for f in WATCHED if getattr(config, f) is not None}
    for field, root in roots.items():
        if not root.exists():
            raise ReasonlensError(f"--watch: {root} does not exist: start the run first, or create the folder "
                                  "it writes to, then watch it.")
    out = output_folder(config)
    names = parse_report_to(config.report_to)
    check_installed(names)
    session = TrackerSession(names, out, tensorboard_dir=config.tensorboard_dir,
                             trackio_project=config.trackio_project, wandb_run=config.wandb_run) if names else None
    check_out(out, kind="analysis", option="--out", inputs=roots.values())
    loop = _Loop(config, roots, out, session, say, progress)
    try:
        with writing(out, kind="analysis", covers=OUTPUT_FILES + OUTPUT_FOLDERS), StopFlag() as stop:
            loop.run(stop)
    finally:
        if session is not None:
            session.close()
    return loop.analysis


class _Loop:
    """The state of one watch: what is settling, what was analysed, and the last result."""

    def __init__(self, config, roots, out, session, say, progress):
        self.config, self.roots, self.out, self.session, self.say = config, roots, out, session, say
        self.progress = progress
        self.settling = {field: Settling() for field in roots}
        self.analysed, self.analysis = None, None

    def run(self, stop: StopFlag) -> None:
        quiet_since = time.monotonic()
        self.say(f"watching {', '.join(map(str, self.roots.values()))} (every {self.config.watch_interval:g} s; "
                 "Ctrl-C stops)")
        while not stop.event.is_set():
            snapshot = self._snapshot()
            if snapshot and snapshot != self.analysed:
                self._analyse(snapshot, stop)
                quiet_since = time.monotonic()
            elif self.config.watch_idle is not None and time.monotonic() - quiet_since >= self.config.watch_idle:
                self.say(f"no new step for {self.config.watch_idle:g} s: stopping")
                break
            stop.event.wait(self.config.watch_interval)
        if stop.event.is_set():
            self.say("stopped: " + (f"{self.out / 'summary.json'} is complete" if self.analysis else "no step was "
                                    "complete yet, nothing analysed"))

    def _snapshot(self) -> dict:
        """Per watched input its complete units and static entries (empty when one has no complete step)."""
        now, snapshot = time.monotonic(), {}
        for field, root in self.roots.items():
            units, static = scan(root, self.out)
            atomic = field == "path" and is_reasonlens_run(root)
            if atomic:  # its rollouts (or, for --eval-task, checkpoints) appear by rename: complete at once
                part = "checkpoints" if self.config.eval_task else "rollouts"
                units = [u for u in units if u.rel.parts[0] == part]
                static = [s for s in static if s.name == "config.json"]
            complete = self.settling[field].complete(units, settle=self.config.watch_settle, atomic=atomic, now=now)
            if not complete:
                return {}
            snapshot[field] = (tuple(sorted(complete, key=lambda u: str(u.rel))), tuple(sorted(static)))
        return snapshot

    def _analyse(self, snapshot: dict, stop: StopFlag) -> None:
        """Analyse the complete units; a second signal drops it and the last finished state is analysed again."""
        from reasonlens.analysis.run import analyze

        started = time.monotonic()
        new = sorted(_steps(snapshot) - (_steps(self.analysed) if self.analysed else set()))
        self.say(f"complete: step {', '.join(map(str, new)) or '(changed files)'}; analysing")
        try:
            result = analyze(self._view_config(snapshot), progress=self.progress, trackers=self.session)
        except KeyboardInterrupt:
            self.say("interrupted twice: dropping the steps in progress")
            if self.analysed is not None:
                self.analysis = analyze(self._view_config(self.analysed), progress=False, trackers=self.session)
            stop.event.set()
            return
        self._announce(result, time.monotonic() - started)
        self.analysed, self.analysis = snapshot, result

    def _view_config(self, snapshot: dict) -> AnalyzeConfig:
        changes = {"out": self.out}  # summary.json keeps watch=True and names the view as the input
        for field, (complete, static) in snapshot.items():
            changes[field] = build_view(self.roots[field], self.out / ".watch" / field, list(complete), list(static))
        return dataclasses.replace(self.config, **changes)

    def _announce(self, result, seconds: float) -> None:
        """One line per analysis; another whenever a phase boundary appears, moves or goes."""
        steps = result.dynamics["step"].tolist()
        before = self.analysis.summary["phases"] if self.analysis is not None else {}
        old = set(self.analysis.dynamics["step"]) if self.analysis is not None else set()
        new = [s for s in steps if s not in old]
        self.say(f"analysed {len(steps)} steps (new: {', '.join(map(str, new)) or 'none'}) in {seconds:.1f} s")
        for name, phase in result.summary["phases"].items():
            was = before.get(name, {})
            if (phase.get("detected"), phase.get("step")) != (was.get("detected"), was.get("step")):
                said = f"boundary at step {phase['step']}" if phase.get("detected") else "no boundary"
                if phase.get("detected") or was.get("detected"):
                    self.say(f"phase {name}: {said} (on the curve up to step {steps[-1]})")


def is_reasonlens_run(root: Path) -> bool:
    """A `train-hicra` run folder, even before its first step: its config.json is train-hicra's record."""
    try:
        record = json.loads((root / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(record, dict) and "lexicon" in record and "config" in record
