"""Strict parsing of the values a log holds: steps, counts, booleans, rewards, ids and texts, never coerced.

A step is a non-negative integer (``3``, ``3.0``, ``"3"``; not ``0.4``, ``true`` or ``"late"``), a boolean
is ``true/false``, ``0/1`` or ``"true"/"false"``, a reward a finite number; anything else raises
ValueError, which the readers turn into an error naming the file, the line and the value.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from reasonlens.errors import ReasonlensError
from reasonlens.sources.files import cell_text

_INTEGER = re.compile(r"\+?[0-9]+")
_CONTAINERS = (list, tuple, dict, np.ndarray)


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
    conversation = is_conversation(value) and isinstance(value[-1]["content"], str)
    if isinstance(value, str) or _is_missing(value) or conversation:
        return cell_text(value)
    kind = ("an object (dict)" if isinstance(value, dict) else "a list that is not a conversation"
            if isinstance(value, _CONTAINERS) else f"of type {type(value).__name__}")
    raise ValueError(f"{kind}, not text")


def is_conversation(value) -> bool:
    """A list of {"role", "content"} messages (TRL's conversational prompts)."""
    return isinstance(value, _CONTAINERS) and len(value) > 0 and \
        all(isinstance(m, dict) and "content" in m for m in value)


def _is_missing(value) -> bool:
    return value is None or (np.ndim(value) == 0 and not isinstance(value, str) and bool(pd.isna(value)))


_PARSERS = {"step": parse_step, "count": parse_count, "bool": parse_bool, "reward": parse_reward}


def parsed_field(fields: dict, key: str, file: Path, where: str, kind: str):
    """``fields[key]`` parsed as a ``kind`` (step, count, bool, reward), or an error naming file, line and value."""
    try:
        return _PARSERS[kind](fields.get(key))
    except ValueError as err:
        raise ReasonlensError(f"{file} {where}: {key} = {fields.get(key)!r} is {err}. Fix that value and "
                              "rerun.") from None
