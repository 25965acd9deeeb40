"""Output folders reasonlens owns: a marker file says what it wrote there, a lock file says who is writing.

Ownership rule (``check_out``), for the ``--out`` of `analyze` (an analysis folder) and `train-hicra`
(a run folder), with every path resolved (symlinks followed):

1. ``--out`` may not be an input, nor hold one (an input inside ``--out``).
2. ``--out`` may not lie inside an input folder, except reasonlens' own default sub-folder of it
   (``INPUT/reasonlens``, ``INPUT/reasonlens-eval``): that name is reserved for the analysis of INPUT.
3. An existing, non-empty ``--out`` must be reasonlens' own folder of the same kind: it carries the
   marker ``.reasonlens.json`` (kind, command, run id, version, created), or it is a folder an earlier
   reasonlens version wrote (a run: a ``config.json`` in train-hicra's schema next to trl/, metrics.csv or
   rollouts/; an analysis: a ``summary.json`` in analyze's schema, or cache sidecars it wrote). Such a
   folder is adopted: the marker is added. Anything else is refused, naming what is there; the
   folder's own analysis sub-folders (``reasonlens/``, ``reasonlens-eval/``, rule 2) do not count.

reasonlens deletes or rewrites only the names the marker's ``covers`` lists. One process writes a
folder at a time (``writing``): ``.reasonlens.lock`` holds the writer's pid and host; a second writer is
refused, a lock whose process is gone (same host) is taken over with a warning, and the holder may take it
again inside (``analyze --watch`` holds it around each analysis). ``OUT/.watch/``, the view `analyze
--watch` links of the input it follows, is not an input of its own: the input it links is checked instead.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import socket
import sys
import uuid
import warnings
from pathlib import Path
from typing import Iterable, Iterator, Optional

from reasonlens.errors import ReasonlensError
from reasonlens.records import process_alive, write_json

MARKER = ".reasonlens.json"
LOCK = ".reasonlens.lock"
DEFAULT_SUBFOLDERS = ("reasonlens", "reasonlens-eval")
WATCH_VIEWS = ".watch"  # OUT/.watch/: the complete steps of a followed input, linked by `analyze --watch`
_KINDS = {"analysis": "an analysis folder (analyze --out)", "run": "a run folder (train-hicra --out)"}
_IGNORED = (MARKER, LOCK)  # present in a folder reasonlens merely checked or was killed in


def check_out(out: Path, *, kind: str, option: str, inputs: Iterable[Path | str | None]) -> None:
    """Raise unless ``out`` may be written as a ``kind`` folder ("analysis" or "run"): new, empty, or
    reasonlens' own of that kind (marked, or an earlier version's), and clear of every input."""
    target = Path(out).resolve()
    if target.exists() and not target.is_dir():
        raise ReasonlensError(f"{option} {out} is an existing file, not a folder: choose a folder for the {kind}.")
    for given in inputs:
        if given is None or not Path(given).exists():
            continue
        source = Path(given).resolve()
        if target / WATCH_VIEWS in (source, *source.parents):
            continue  # `analyze --watch`'s own view (symlinks to the input it follows), checked against the input
        relation = _overlap(target, source)
        if relation:
            raise ReasonlensError(f"{option} {out} would overwrite the input {given} ({relation}): choose another "
                                  f"{option} outside the inputs (reasonlens never writes into its inputs).")
    if not target.exists():
        return
    marker = read_marker(target)
    if marker is not None:
        if marker.get("kind") != kind:
            raise ReasonlensError(f"{option} {out} is {_KINDS.get(marker.get('kind'), 'another reasonlens folder')}, "
                                  f"not {_KINDS[kind]}: choose another {option}.")
        return
    if _legacy(target, kind):
        return  # adopted: `writing` adds the marker
    present = sorted(p.name + ("/" if p.is_dir() else "") for p in target.iterdir()
                     if p.name not in _IGNORED + DEFAULT_SUBFOLDERS and ".tmp-" not in p.name
                     and not p.name.startswith(".write-test"))
    if present:
        shown = ", ".join(present[:5]) + (f" and {len(present) - 5} more" if len(present) > 5 else "")
        raise ReasonlensError(f"{option} {out} is not empty and was not written by reasonlens (it holds {shown}): "
                              f"choose another {option} (a new or empty folder); reasonlens never deletes or "
                              "overwrites files it did not write.")


def _overlap(target: Path, source: Path) -> str | None:
    """How ``target`` (the output) collides with ``source`` (an input), or None."""
    if target == source:
        return "it is that input"
    if target in source.parents:
        return "the input is inside it"
    if source in target.parents and source.is_dir():
        if target.parent == source and target.name in DEFAULT_SUBFOLDERS:
            return None  # the input's own analysis sub-folder (rule 2)
        return "it is inside that input folder"
    return None


def read_marker(folder: Path) -> Optional[dict]:
    """The folder's marker, or None when it has none; an unreadable marker is an error naming it."""
    path = Path(folder) / MARKER
    if not path.is_file():
        return None
    try:
        marker = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ReasonlensError(f"{path} is not readable JSON ({err}): it marks the folder as reasonlens'; restore "
                              "it, or choose another --out.") from None
    if not isinstance(marker, dict):
        raise ReasonlensError(f"{path} is not a JSON object: restore it, or choose another --out.")
    return marker


def _json(path: Path) -> Optional[dict]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _legacy(folder: Path, kind: str) -> bool:
    """A folder an earlier reasonlens (no marker) wrote, recognised by its schema."""
    if kind == "run":
        config = _json(folder / "config.json") or {}
        return _is_train_config(config.get("config")) and "provenance" in config and \
            any((folder / name).exists() for name in ("trl", "metrics.csv", "rollouts"))
    summary = _json(folder / "summary.json") or {}
    if {"mode", "config", "provenance"} <= summary.keys():
        return True
    sidecars = [p for stage in ("rollouts", "tags") for p in (folder / stage).glob("step_*.json")]
    return bool(sidecars) and all({"key", "reasonlens_version"} <= (_json(p) or {}).keys() for p in sidecars)


def _is_train_config(config) -> bool:
    return isinstance(config, dict) and {"method", "planning_source", "steps", "model"} <= config.keys()


def is_run_folder(folder: Path) -> bool:
    """A `train-hicra` run folder: its marker says so, or (an earlier version's run) a config.json that is not a
    model's next to rollouts/step_*.parquet; a model folder an analysis was written into is not one."""
    folder = Path(folder)
    if not folder.is_dir():
        return False
    with contextlib.suppress(ReasonlensError):
        marker = read_marker(folder)
        if marker is not None:
            return marker.get("kind") == "run"
    model_config = "model_type" in (_json(folder / "config.json") or {})  # an HF model folder, maybe analysed into
    return (folder / "config.json").is_file() and not model_config and any((folder / "rollouts").glob("step_*.parquet"))


@contextlib.contextmanager
def writing(out: Path, *, kind: str, covers: Iterable[str]) -> Iterator[dict]:
    """Create ``out``, hold its lock, add the marker if it has none; yield the marker; release the lock."""
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ReasonlensError(f"--out {out} cannot be created ({err.strerror}): choose a folder you can write "
                              "to.") from None
    with folder_lock(out):
        marker = read_marker(out)
        if marker is None:
            marker = {"kind": kind, "command": " ".join(sys.argv), "run_id": uuid.uuid4().hex,
                      "reasonlens_version": _version(), "covers": sorted(covers),
                      "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
            write_json(out / MARKER, marker)
        yield marker


def owned(marker: dict, name: str) -> bool:
    """Whether the marker covers ``name`` (a file or folder directly in the marked folder)."""
    return name in marker.get("covers", ())


def _version() -> str:
    from reasonlens import __version__

    return __version__


@contextlib.contextmanager
def folder_lock(folder: Path) -> Iterator[Path]:
    """Hold ``folder/.reasonlens.lock`` (holder pid and host, linked into place exclusively); refuse a live holder."""
    path = Path(folder) / LOCK
    me = {"pid": os.getpid(), "host": socket.gethostname(), "command": " ".join(sys.argv),
          "since": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    taken = _acquire(path, me)
    try:
        yield path
    finally:
        if taken and (_json(path) or {}).get("pid") == me["pid"]:
            path.unlink(missing_ok=True)


def _acquire(path: Path, me: dict) -> bool:
    """Take the lock (True), or find this process already holds it (False); refuse another live holder."""
    for _ in range(3):  # a stale lock removed, then retaken: at most a few rounds against a racing writer
        tmp = path.with_name(f"{LOCK}.tmp-{os.getpid()}")
        tmp.write_text(json.dumps(me), encoding="utf-8")
        try:
            os.link(tmp, path)  # atomic and exclusive: the lock appears whole or not at all
            return True
        except FileExistsError:
            holder = _json(path) or {}
        finally:
            tmp.unlink(missing_ok=True)
        if (holder.get("pid"), holder.get("host")) == (me["pid"], me["host"]):
            return False  # this process holds it already (`analyze --watch` around each analysis)
        if _stale(holder, me["host"]):
            warnings.warn(f"{path.parent} was locked by process {holder.get('pid')} on {holder.get('host')}, "
                          "which is gone: taking the folder over.", stacklevel=4)
            path.unlink(missing_ok=True)
            continue
        raise ReasonlensError(f"{path.parent} is being written by process {holder.get('pid', '?')} on "
                              f"{holder.get('host', '?')} (since {holder.get('since', '?')}): wait for it to "
                              f"finish, or choose another --out. If that process is gone, delete {path}.")
    raise ReasonlensError(f"could not lock {path.parent}: another writer keeps taking it; choose another --out.")


def _stale(holder: dict, host: str) -> bool:
    pid = holder.get("pid")
    return holder.get("host") == host and isinstance(pid, int) and not process_alive(pid)
