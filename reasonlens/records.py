"""Files on disk: atomic writes, cache keys and the provenance every artifact records.

A half-written file is never left under its final name: we write ``NAME.tmp-PID`` and rename,
which is atomic on POSIX. Cache keys are the sha256 of the sorted JSON of what made an output
(the `datasets` fingerprint idea), so a changed setting recomputes instead of mixing results.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import functools
import hashlib
import json
import math
import os
import subprocess
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator

from reasonlens.errors import ReasonlensError

_LIBRARIES = ("torch", "transformers", "trl", "sentence-transformers", "scikit-learn", "pandas",
              "math-verify", "reasoning-gym", "vllm")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling of ``path``; on success rename it onto ``path``, else delete it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete the ``NAME.tmp-PID`` files that killed processes left under ``folder`` (never a live one's)."""
    removed = []
    for tmp in Path(folder).rglob("*.tmp-*"):
        pid = tmp.name.rsplit(".tmp-", 1)[1]
        if tmp.is_file() and pid.isdigit() and not process_alive(int(pid)):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (someone else's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def check_writable(folder: Path, option: str = "--out") -> None:
    """Create ``folder`` and prove a file can be written in it, or say which option to change."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}-{time.time_ns()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise ReasonlensError(f"{option} {folder} is not writable ({err.strerror}): choose a folder you can "
                              "write to.") from None


def step_file(folder: str | os.PathLike, step: int, suffix: str = ".parquet", stage: str = "rollouts") -> Path:
    """``folder/rollouts/step_000120.parquet``: the per-step file of a stage (``rollouts``, ``tags``) of an
    analysis or a training run (zero-padded so files sort as they ran)."""
    return Path(folder) / stage / f"step_{step:06d}{suffix}"


def read_cached(table: Path, key: str):
    """The DataFrame in ``table`` when its JSON sidecar records ``key``; None when absent or made otherwise.

    The sidecar is written after the table, so its key vouches for a complete file. An unreadable file
    is a warning and a recompute, never a crash.
    """
    import pandas as pd

    sidecar = table.with_suffix(".json")
    if not (table.is_file() and sidecar.is_file()):
        return None
    try:
        if json.loads(sidecar.read_text(encoding="utf-8")).get("key") != key:
            return None  # made with other settings or inputs: recompute rather than mix
        return pd.read_parquet(table)
    except (OSError, ValueError, UnicodeDecodeError) as err:
        import warnings

        warnings.warn(f"unreadable cache {table} ({err}); recomputing it", stacklevel=2)
        return None


def write_cached(table: Path, key: str, frame, **meta) -> None:
    """Write ``frame`` to ``table``, then its sidecar with ``key``, ``meta`` and provenance (both atomic)."""
    write_parquet(table, frame)
    write_json(table.with_suffix(".json"), {"key": key, **meta, **provenance()})


def write_text(path: str | os.PathLike, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    return write_text(path, json.dumps(to_jsonable(obj), indent=2, default=str) + "\n")


def write_parquet(path: str | os.PathLike, df) -> Path:
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)
    return Path(path)


def write_csv(path: str | os.PathLike, df) -> Path:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)
    return Path(path)


def to_jsonable(obj: Any, exact: bool = False) -> Any:
    """Dataclasses, paths, numpy scalars and tuples as plain JSON values; NaN/inf become null (with ``exact``,
    ``{"__float__": "nan"}`` and the like, so no two values share a form)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return to_jsonable(dataclasses.asdict(obj), exact)
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v, exact) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [to_jsonable(v, exact) for v in (sorted(obj, key=repr) if isinstance(obj, set) else obj)]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item") and callable(obj.item):  # numpy / torch scalars
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return {"__float__": repr(obj)} if exact else None  # NaN and infinities are not JSON
    return obj


def cache_key(*parts: Any) -> str:
    """sha256 of the canonical JSON of ``parts`` (dataclasses and paths included); every distinct value,
    NaN and the infinities included, gives a distinct key. Each stage puts its own version in ``parts``.

    >>> len({cache_key(float("nan")), cache_key(float("inf")), cache_key(float("-inf")), cache_key(None)})
    4
    """
    blob = json.dumps(to_jsonable(list(parts), exact=True), sort_keys=True, separators=(",", ":"), default=repr)
    return hashlib.sha256(blob.encode()).hexdigest()


def text_digest(texts, offsets=None) -> str:
    """sha256 of texts (and, when given, each one's token offsets): the key of what tagging reads."""
    import numpy as np

    digest = hashlib.sha256()
    for i, text in enumerate(texts):
        digest.update(str(text).encode("utf-8", "surrogatepass") + b"\0")
        if offsets is not None and offsets[i] is not None:
            digest.update(np.asarray([tuple(o) for o in offsets[i]], dtype=np.int64).tobytes() + b"\1")
    return digest.hexdigest()


@functools.lru_cache(maxsize=1)
def git_hash() -> str | None:
    """The commit of the reasonlens checkout, when it is one (None for an installed wheel); asked once."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def library_versions() -> dict[str, str | None]:
    return dict(_library_versions())


@functools.lru_cache(maxsize=1)
def _library_versions() -> dict[str, str | None]:
    versions = {}
    for name in _LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def provenance() -> dict[str, Any]:
    """Who made an artifact: reasonlens version, git commit, library versions, UTC date."""
    from reasonlens import __version__

    return {
        "reasonlens_version": __version__,
        "git_hash": git_hash(),
        "libraries": library_versions(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
