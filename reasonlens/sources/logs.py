"""Read rollout logs (our own, TRL's, verl's, hand-made) into the rollout table, strictly.

Formats, recognised by their names and columns:
- reasonlens: ``rollouts.parquet`` or a folder of ``step_*.parquet`` (an analysis or a
  ``train-hicra`` run's ``RUN/rollouts/``), and any JSONL/Parquet with ``step, prompt, response``
  (optional ``answer, reward`` (or ``score``)``, correct, pred, prompt_id, sample_id``);
- TRL completion logs: ``completions/completions_{step:05d}.parquet`` with ``step, prompt,
  completion``, one column per reward function and ``advantage``; ``reward`` is the unweighted sum
  of the numeric reward-function columns (TRL's weights are not logged), each kept as well;
- verl rollout dumps: ``{dir}/{step}.jsonl`` with ``input, output, gts, score, step``.
A missing ``prompt_id`` is the sha256 of the prompt text (so a prompt keeps its id across steps);
a missing ``sample_id`` is the row's order within its (step, prompt).

Values are parsed strictly, never coerced into a plausible number: a step is a non-negative integer
(``3``, ``3.0``, ``"3"``; not ``0.4``, ``true`` or ``"late"``), a boolean is ``true/false``, ``0/1``
or ``"true"/"false"``, a reward is a finite number. Anything else is an error naming the file, the
line (JSONL) or row (Parquet) and the value. Rows that repeat an earlier row exactly are kept, with
a warning: identical samples are possible, a log written twice is likelier.
"""

from __future__ import annotations

import hashlib
import math
import re
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from reasonlens import columns as C
from reasonlens.errors import ReasonlensError
from reasonlens.sources.files import cell_text, read_parquet, read_records

REQUIRED = (C.STEP, C.PROMPT, C.RESPONSE)
_TRL_RENAME = {"completion": C.RESPONSE}
_VERL_RENAME = {"input": C.PROMPT, "output": C.RESPONSE, "gts": C.ANSWER, "score": C.REWARD}
_TRL_NOT_REWARDS = {C.STEP, "prompt", "completion", "advantage", "image", "images"}
_WHERE = "_where"  # "line 3" / "row 3" of each row, for messages; dropped before returning
_INTEGER = re.compile(r"\+?[0-9]+")


def parse_step(value) -> int:
    """A non-negative integer step: ``3``, ``3.0`` or ``"3"``; anything else raises ValueError.

    >>> parse_step("12"), parse_step(4.0)
    (12, 4)
    """
    if isinstance(value, (bool, np.bool_)):
        raise ValueError("a boolean, not a step number")
    if isinstance(value, (int, np.integer)) and value >= 0:
        return int(value)
    if isinstance(value, (float, np.floating)) and math.isfinite(value) and value.is_integer() and value >= 0:
        return int(value)
    if isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
        return int(value.strip())
    raise ValueError("missing" if _is_missing(value) else "not a non-negative integer")


def parse_count(value) -> float:
    """A token count: like `parse_step`, but None/NaN -> NaN (unknown for that row)."""
    return math.nan if _is_missing(value) else float(parse_step(value))


def parse_bool(value) -> bool | None:
    """``True/False``, ``0/1`` or ``"true"/"false"`` (any case); None/NaN -> None (unknown); else ValueError.

    >>> parse_bool("False"), parse_bool(1), parse_bool(None)
    (False, True, None)
    """
    if _is_missing(value):
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, float, np.integer, np.floating)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ValueError("not a boolean (expected true/false, 0/1 or \"true\"/\"false\")")


def parse_reward(value) -> float:
    """A finite number (or a numeric string); None/NaN -> NaN (unknown); booleans and text raise ValueError.

    >>> parse_reward("0.5"), parse_reward(1)
    (0.5, 1.0)
    """
    if _is_missing(value):
        return math.nan
    if isinstance(value, (bool, np.bool_)):
        raise ValueError("a boolean, not a number (write rewards as numbers, e.g. 1.0 / 0.0)")
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise ValueError("not a number") from None
    if not math.isfinite(number):
        raise ValueError("not finite" if not math.isnan(number) else "not a number")
    return number


def _is_missing(value) -> bool:
    return value is None or (np.ndim(value) == 0 and not isinstance(value, str) and bool(pd.isna(value)))


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
    frames = [_read_one(f) for f in log_files(path)]
    if not any(len(frame) for frame in frames):
        raise ReasonlensError(f"rollout log {path} holds no rows: pass a log with at least one response.")
    table = pd.concat(frames, ignore_index=True)
    _warn_duplicates(table)
    table = _fill_ids(table.drop(columns=[_WHERE]))
    return table.sort_values([C.STEP, C.PROMPT_ID, C.SAMPLE_ID], kind="stable").reset_index(drop=True)


def log_files(path: Path) -> list[Path]:
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
    """One file, normalised to rollout-table column names, its values parsed strictly."""
    raw = _read_raw(file)
    if "completion" in raw.columns and C.RESPONSE not in raw.columns:
        df = _from_trl(raw, file)
    elif {"input", "output"} <= set(raw.columns):
        df = raw.rename(columns=_VERL_RENAME)
        if C.STEP not in df.columns:
            df[C.STEP] = _step_from_name(file)
    else:
        df = raw.rename(columns={"score": C.REWARD}) if "score" in raw and C.REWARD not in raw else raw
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        shown = [c for c in raw.columns if c != _WHERE]
        raise ReasonlensError(f"{file}: missing column(s) {missing} (has {shown}): a rollout log needs "
                              f"'{C.STEP}', '{C.PROMPT}' and '{C.RESPONSE}' (or TRL's 'completion', or verl's "
                              "'input'/'output'). Rename the columns or add them.")
    for column, parse in ((C.STEP, parse_step), (C.SAMPLE_ID, parse_step), (C.N_TOKENS, parse_count),
                          (C.PROMPT_ID, parse_id),
                          (C.CORRECT, parse_bool), (C.TRUNCATED, parse_bool), (C.REWARD, parse_reward)):
        if column in df.columns:
            df[column] = _parsed(df, column, parse, file)
    if df[C.PROMPT].map(_is_conversation).any():  # kept whole: re-scoring applies the chat template to it
        df[C.PROMPT_MESSAGES] = [list(p) if _is_conversation(p) else None for p in df[C.PROMPT]]
    df[C.PROMPT], df[C.RESPONSE] = _parsed(df, C.PROMPT, parse_text, file), _parsed(df, C.RESPONSE, parse_text, file)
    return df


def parse_id(value) -> str:
    """A prompt id: text or an integer (``7``, ``7.0``), as text (missing: ""); a list, dict or other value
    raises ValueError.

    >>> parse_id("q7"), parse_id(7.0)
    ('q7', '7')
    """
    if _is_missing(value):
        return ""
    if isinstance(value, str) or (isinstance(value, (int, float, np.integer, np.floating))
                                  and not isinstance(value, (bool, np.bool_)) and float(value).is_integer()):
        return cell_text(value.item() if hasattr(value, "item") else value)
    raise ValueError(f"of type {type(value).__name__}, not an id (text or an integer)")


def parse_text(value) -> str:
    """A text cell: a string, a conversation (its last message's content) or None/NaN (""); a number, list,
    dict or anything else raises ValueError, so it is never graded as its printed form.

    >>> parse_text("so 4"), parse_text([{"role": "assistant", "content": "4"}]), parse_text(None)
    ('so 4', '4', '')
    """
    conversation = _is_conversation(value) and isinstance(value[-1]["content"], str)
    if isinstance(value, str) or _is_missing(value) or conversation:
        return cell_text(value)
    kind = ("an object (dict)" if isinstance(value, dict) else "a list that is not a conversation"
            if _is_container(value) else f"of type {type(value).__name__}")
    raise ValueError(f"{kind}, not text")


def _is_conversation(value) -> bool:
    """A list of {"role", "content"} messages (TRL's conversational prompts)."""
    return _is_container(value) and len(value) > 0 and all(isinstance(m, dict) and "content" in m for m in value)


def _parsed(df: pd.DataFrame, column: str, parse: Callable, file: Path) -> pd.Series:
    """``df[column]`` through ``parse``; the first value it refuses becomes an error naming where it is."""
    series = df[column]
    if parse in (parse_step, parse_count) and pd.api.types.is_integer_dtype(series) and (series >= 0).all():
        return series.astype(int)  # the common case, without a Python loop
    if parse is parse_bool and pd.api.types.is_bool_dtype(series):
        return series
    values = []
    for where, value in zip(df[_WHERE], series.tolist()):
        try:
            values.append(parse(value))
        except ValueError as err:
            shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
            raise ReasonlensError(f"{file} {where}: {column} = {shown} is {err}. Fix that value (or drop the "
                                  f"'{column}' field) and rerun.") from None
    if parse in (parse_bool, parse_text, parse_id):
        return pd.Series(values, index=df.index, dtype=object)
    return pd.Series(values, index=df.index, dtype=int if parse is parse_step else float)


def _read_raw(file: Path) -> pd.DataFrame:
    """Parquet or JSON lines into a DataFrame with each row's location, or a clear error."""
    suffix = file.suffix.lower()
    if suffix == ".parquet":
        frame = read_parquet(file, "rollout log")
        return frame.assign(**{_WHERE: [f"row {i}" for i in range(len(frame))]})
    if suffix in (".jsonl", ".json"):
        records = read_records(file, "rollout log", '{"step": 0, "prompt": ..., "response": ...}')
        frame = pd.DataFrame([fields for _, fields in records], dtype=object)  # values as written: null stays None
        return frame.assign(**{_WHERE: [where for where, _ in records]})
    raise ReasonlensError(f"{file}: unknown rollout log format '{suffix}': expected .parquet or .jsonl.")


def _from_trl(raw: pd.DataFrame, file: Path) -> pd.DataFrame:
    """TRL completions: completion -> response, reward = sum of the numeric reward-function columns."""
    df = raw.rename(columns=_TRL_RENAME)
    rewards = [c for c in raw.columns if c not in _TRL_NOT_REWARDS and c != _WHERE
               and pd.api.types.is_numeric_dtype(raw[c]) and not pd.api.types.is_bool_dtype(raw[c])]
    if rewards and C.REWARD not in df.columns:
        df[C.REWARD] = df[rewards].sum(axis=1, min_count=1)
    if C.STEP not in df.columns:
        df[C.STEP] = _step_from_name(file)
    return df


def _step_from_name(file: Path) -> int:
    """The last integer in a file name (``completions_00040.parquet``, ``40.jsonl``)."""
    numbers = re.findall(r"\d+", file.stem)
    if not numbers:
        raise ReasonlensError(f"{file}: has no '{C.STEP}' column and no step number in its name: "
                              "add a step column or name the file after its step, e.g. 40.jsonl.")
    return int(numbers[-1])


def _warn_duplicates(table: pd.DataFrame) -> None:
    """Warn when rows repeat an earlier row in every scalar column (a log appended twice?)."""
    scalar = [c for c in table.columns if c != _WHERE and not table[c].map(_is_container).any()]
    repeats = table.duplicated(subset=scalar, keep="first")
    if repeats.any():
        first = table[repeats].iloc[0]
        warnings.warn(f"rollout log: {int(repeats.sum())} row(s) repeat an earlier row exactly (e.g. {first[_WHERE]} "
                      f"at step {first[C.STEP]}); they are kept as separate samples. If the log was written twice, "
                      "deduplicate it, or give each sample a sample_id.", stacklevel=3)


def _is_container(value) -> bool:
    return isinstance(value, (list, tuple, dict, np.ndarray))


def _fill_ids(df: pd.DataFrame) -> pd.DataFrame:
    """Add prompt_id (hash of the prompt text) and sample_id (order within step and prompt) where absent."""
    df = df.copy()
    if C.PROMPT_ID not in df.columns:
        df[C.PROMPT_ID] = df[C.PROMPT].map(lambda p: hashlib.sha256(p.encode()).hexdigest()[:12])
    df[C.PROMPT_ID] = df[C.PROMPT_ID].map(cell_text)
    if C.SAMPLE_ID not in df.columns:
        df[C.SAMPLE_ID] = df.groupby([C.STEP, C.PROMPT_ID]).cumcount()
    return df


def read_correct_responses(path: Path, reward_threshold: float = 0.5) -> list[str]:
    """Responses marked correct (``correct``, else ``reward`` > threshold) of a Parquet/JSONL file, parsed strictly."""
    records = read_records(path, "rollout file", '{"response": ..., "correct": true}')
    names = set().union(*(fields for _, fields in records))
    if C.RESPONSE not in names:
        raise ReasonlensError(f"rollout file {str(path)!r} has no {C.RESPONSE!r} column (has {sorted(names)})")
    label = C.CORRECT if C.CORRECT in names else C.REWARD if C.REWARD in names else None
    if label is None:
        raise ReasonlensError(f"rollout file {str(path)!r} has neither {C.CORRECT!r} nor {C.REWARD!r}: mining uses "
                              "correct responses only; add one of these columns")
    keep = []
    for where, fields in records:
        try:
            ok = parse_bool(fields.get(C.CORRECT)) if label == C.CORRECT else \
                parse_reward(fields.get(C.REWARD)) > reward_threshold
        except ValueError as err:
            raise ReasonlensError(f"rollout file {path} {where}: {label} = {fields.get(label)!r} is {err}. Fix "
                                  "that value and rerun.") from None
        if ok and isinstance(fields.get(C.RESPONSE), str):
            keep.append(fields[C.RESPONSE])
    return keep
