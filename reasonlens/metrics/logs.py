"""Read rollout logs into the rollout table, for text-only analysis (no model needed).

Formats, recognised by their names and columns:
- reasonlens: ``rollouts.parquet`` or a folder of ``step_*.parquet`` (an analysis or a
  ``train-hicra`` run's ``RUN/rollouts/``), and any JSONL/Parquet with ``step, prompt, response``
  (optional ``answer, reward, correct, pred, prompt_id, sample_id``);
- TRL completion logs: ``completions/completions_{step:05d}.parquet`` with ``step, prompt,
  completion``, one column per reward function and ``advantage``; ``reward`` is the unweighted sum
  of the reward-function columns (TRL's weights are not logged), each kept as well;
- verl rollout dumps: ``{dir}/{step}.jsonl`` with ``input, output, gts, score, step``.
A missing ``prompt_id`` is the sha256 of the prompt text (so a prompt keeps its id across steps);
a missing ``sample_id`` is the row's order within its (step, prompt).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pandas as pd

from .. import columns as rc
from ..errors import ReasonlensError

REQUIRED = (rc.STEP, rc.PROMPT, rc.RESPONSE)
_TRL_RENAME = {"completion": rc.RESPONSE}
_VERL_RENAME = {"input": rc.PROMPT, "output": rc.RESPONSE, "gts": rc.ANSWER, "score": rc.REWARD}
_TRL_NOT_REWARDS = {rc.STEP, "prompt", "completion", "advantage", "image", "images"}


def read_rollout_log(path) -> pd.DataFrame:
    """Read a rollout log (file or folder, formats in the module docstring) as a rollout table.

    Parameters
    ----------
    path : file or folder.

    Returns
    -------
    DataFrame with at least ``step`` (int), ``prompt_id``, ``sample_id``, ``prompt``, ``response``,
    plus whatever optional columns the log has; sorted by step, prompt_id, sample_id.

    Example
    -------
    >>> read_rollout_log("runs/grpo/rollouts")[["step", "response"]]  # doctest: +SKIP
    """
    path = Path(path)
    if not path.exists():
        raise ReasonlensError(f"rollout log {path} does not exist: pass a rollouts.parquet, a JSONL/Parquet "
                              "log, a folder of step_*.parquet, a TRL completions folder or a verl dump folder.")
    frames = [_read_one(f) for f in _log_files(path)]
    table = pd.concat(frames, ignore_index=True)
    return _fill_ids(table).sort_values([rc.STEP, rc.PROMPT_ID, rc.SAMPLE_ID], kind="stable").reset_index(drop=True)


def _log_files(path: Path) -> list[Path]:
    """The files of a log: the file itself, or a folder's step/TRL/verl files."""
    if path.is_file():
        return [path]
    for pattern in ("step_*.parquet", "completions_*.parquet", "completions/completions_*.parquet"):
        if files := sorted(path.glob(pattern)):
            return files
    if files := sorted(path.glob("*.jsonl"), key=lambda f: (not f.stem.isdigit(), int(f.stem) if f.stem.isdigit() else 0)):
        return files
    if (path / "rollouts.parquet").is_file():
        return [path / "rollouts.parquet"]
    raise ReasonlensError(f"rollout log folder {path} has no step_*.parquet, completions_*.parquet, "
                          "completions/ or {step}.jsonl files: unknown format. Pass one of those or a single file.")


def _read_one(file: Path) -> pd.DataFrame:
    """One file, normalised to rollout-table column names."""
    raw = _read_raw(file)
    if "completion" in raw.columns and rc.RESPONSE not in raw.columns:
        df = _from_trl(raw, file)
    elif {"input", "output"} <= set(raw.columns):
        df = raw.rename(columns=_VERL_RENAME)
        if rc.STEP not in df.columns:
            df[rc.STEP] = _step_from_name(file)
    else:
        df = raw
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise ReasonlensError(f"{file}: missing column(s) {missing} (has {list(raw.columns)}): a rollout log needs "
                              f"'{rc.STEP}', '{rc.PROMPT}' and '{rc.RESPONSE}' (or TRL's 'completion', or verl's "
                              "'input'/'output'). Rename the columns or add them.")
    try:
        df[rc.STEP] = pd.to_numeric(df[rc.STEP]).astype(int)
    except (ValueError, TypeError) as exc:
        raise ReasonlensError(f"{file}: column '{rc.STEP}' must hold integers, got e.g. "
                              f"{df[rc.STEP].iloc[0]!r} ({exc}).") from None
    df[rc.PROMPT], df[rc.RESPONSE] = df[rc.PROMPT].map(_text), df[rc.RESPONSE].map(_text)
    return df


def _read_raw(file: Path) -> pd.DataFrame:
    """Parquet or JSON-lines into a DataFrame, with a clear error for anything else."""
    suffix = file.suffix.lower()
    try:
        if suffix == ".parquet":
            return pd.read_parquet(file)
        if suffix in (".jsonl", ".json"):
            return pd.read_json(file, lines=True, dtype=False)
    except (ValueError, OSError) as exc:
        raise ReasonlensError(f"{file}: cannot be read as {suffix[1:]} ({exc}): is the file complete?") from None
    raise ReasonlensError(f"{file}: unknown rollout log format '{suffix}': expected .parquet or .jsonl.")


def _from_trl(raw: pd.DataFrame, file: Path) -> pd.DataFrame:
    """TRL completions: completion -> response, reward = sum of the reward-function columns."""
    df = raw.rename(columns=_TRL_RENAME)
    rewards = [c for c in raw.columns if c not in _TRL_NOT_REWARDS and pd.api.types.is_numeric_dtype(raw[c])]
    if rewards and rc.REWARD not in df.columns:
        df[rc.REWARD] = df[rewards].sum(axis=1, min_count=1)
    if rc.STEP not in df.columns:
        df[rc.STEP] = _step_from_name(file)
    return df


def _step_from_name(file: Path) -> int:
    """The last integer in a file name (``completions_00040.parquet``, ``40.jsonl``)."""
    numbers = re.findall(r"\d+", file.stem)
    if not numbers:
        raise ReasonlensError(f"{file}: has no '{rc.STEP}' column and no step number in its name: "
                              "add a step column or name the file after its step, e.g. 40.jsonl.")
    return int(numbers[-1])


def _text(value) -> str:
    """A prompt/response as text: conversational lists of messages give their last message's content."""
    if isinstance(value, str):
        return value
    if value is None or (isinstance(value, float) and value != value):
        return ""
    if hasattr(value, "__len__") and len(value) and isinstance(value[-1], dict) and "content" in value[-1]:
        return str(value[-1]["content"])
    return json.dumps(value, default=str) if isinstance(value, (dict, list)) else str(value)


def _fill_ids(df: pd.DataFrame) -> pd.DataFrame:
    """Add prompt_id (hash of the prompt text) and sample_id (order within step and prompt) where absent."""
    df = df.copy()
    if rc.PROMPT_ID not in df.columns:
        df[rc.PROMPT_ID] = df[rc.PROMPT].map(lambda p: hashlib.sha256(p.encode()).hexdigest()[:12])
    df[rc.PROMPT_ID] = df[rc.PROMPT_ID].astype(str)
    if rc.SAMPLE_ID not in df.columns:
        df[rc.SAMPLE_ID] = df.groupby([rc.STEP, rc.PROMPT_ID]).cumcount()
    return df
