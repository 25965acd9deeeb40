"""Shared by the readers of token-level logs (prime-rl token exports, NeMo-RL train data, slime dumps).

Our convention for the per-token arrays of the rollout table: position t of ``logprobs`` / ``entropies``
belongs to the distribution that sampled response token t (``token_ids[t]``). Each reader states in
its docstring why its framework's arrays already follow it. `aligned` checks a record's arrays have
one value per token (a mismatch is an error naming file and line); `floats` reads one array.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from reasonlens.errors import ReasonlensError


def aligned(fields: dict, names: list[str], file: Path, where: str) -> dict[str, list]:
    """``fields[name]`` for each name, checked to be lists of one length; a missing name is an error."""
    missing = [n for n in names if n not in fields]
    if missing:
        raise ReasonlensError(f"{file} {where}: no field(s) {missing} (has {sorted(fields)}). The record is not "
                              "in the framework's export format, or the file was cut; re-export it.")
    bad = [n for n in names if not isinstance(fields[n], list)]
    if bad:
        raise ReasonlensError(f"{file} {where}: field(s) {bad} are not arrays. Re-export the file.")
    lengths = {n: len(fields[n]) for n in names}
    if len(set(lengths.values())) != 1:
        raise ReasonlensError(f"{file} {where}: per-token arrays have different lengths {lengths}: they must "
                              "have one value per token. The file is corrupt or was edited; re-export it.")
    return {n: fields[n] for n in names}


def floats(values, file: Path, where: str, name: str) -> np.ndarray:
    """A per-token array as float64; JSON null (the exporters write non-finite values as null) -> NaN."""
    try:
        return np.array([np.nan if v is None else v for v in values], dtype=float)
    except (TypeError, ValueError):
        raise ReasonlensError(f"{file} {where}: '{name}' holds a value that is not a number. "
                              "Re-export the file.") from None
