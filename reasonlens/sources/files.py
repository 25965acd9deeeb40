"""Question/answer records from a user's JSONL or Parquet file, or a Hugging Face dataset by name.

Each record comes back with where it was found ("line 3", "row 3") so errors can point at it.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from reasonlens.errors import ReasonlensError

ID_FIELDS = ("id", "prompt_id")  # a record's own id, when it has one, becomes the prompt_id
Record = tuple[str, dict]  # (where, fields)


def read_records(path: str | Path) -> list[Record]:
    """Every record of a ``.jsonl`` / ``.json`` (one object per line) or ``.parquet`` file, in file order."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ReasonlensError(f"prompts file {path} does not exist. Pass an existing .jsonl or .parquet file.")
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json"):
        records = list(_jsonl_records(path))
    elif suffix == ".parquet":
        records = _parquet_records(path)
    else:
        raise ReasonlensError(f"prompts file {path} has suffix {suffix!r}; expected .jsonl (one JSON object per "
                              "line) or .parquet. Convert the file to one of these.")
    if not records:
        raise ReasonlensError(f"prompts file {path} holds no records; add one question/answer object per line.")
    return records


def _jsonl_records(path: Path) -> Iterator[Record]:
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                fields = json.loads(line)
            except json.JSONDecodeError as err:
                raise ReasonlensError(f"{path} line {number} is not valid JSON ({err.msg} at column {err.colno}). "
                                      "Fix that line: each line must be one JSON object.") from None
            if not isinstance(fields, dict):
                raise ReasonlensError(f"{path} line {number} is a JSON {type(fields).__name__}, expected an object "
                                      'like {"question": ..., "answer": ...}. Fix that line.')
            yield f"line {number}", fields


def _parquet_records(path: Path) -> list[Record]:
    import pandas as pd

    try:
        frame = pd.read_parquet(path)
    except (OSError, ValueError) as err:
        raise ReasonlensError(f"prompts file {path} is not a readable Parquet file ({err}). "
                              "Re-write it with pandas.DataFrame.to_parquet.") from None
    return [(f"row {i}", row) for i, row in enumerate(frame.to_dict(orient="records"))]


def hf_records(spec: str, *, split: str = "train", n: int | None = None) -> list[Record]:
    """The first ``n`` rows of ``split`` of the hub dataset ``hf:NAME[:CONFIG]`` (online, or in the local cache)."""
    name, _, config = spec[len("hf:"):].partition(":")
    if not name:
        raise ReasonlensError(f"task {spec!r} names no dataset; write hf:NAME or hf:NAME:CONFIG, "
                              "e.g. hf:openai/gsm8k:main.")
    import datasets

    split_spec = split if n is None else f"{split}[:{n}]"
    try:
        rows = datasets.load_dataset(name, config or None, split=split_spec)
    except (ConnectionError, OSError, ValueError) as err:  # offline, unknown name/config/split
        offline = " (offline: HF_HUB_OFFLINE is set)" if os.environ.get("HF_HUB_OFFLINE") == "1" else ""
        raise ReasonlensError(f"could not load Hugging Face dataset {name!r} config={config or None!r} "
                              f"split={split!r}{offline}: {err}. Go online (unset HF_HUB_OFFLINE), check the "
                              "name, or export the rows to a .jsonl file and pass it with --prompts-file.") from None
    return [(f"row {i}", dict(row)) for i, row in enumerate(rows)]


def field_value(source: str, where: str, fields: dict, name: str, option: str) -> str:
    """``fields[name]`` as non-empty text, or an error naming the source, record, field and the option to set."""
    if name not in fields:
        raise ReasonlensError(f"{source} {where} has no field {name!r} (it has: {', '.join(map(str, fields))}). "
                              f"Set {option} to the field that holds it.")
    value = _text(fields[name])
    if not value:
        raise ReasonlensError(f"{source} {where}: field {name!r} is empty. Fill it in or drop that record.")
    return value


def record_id(fields: dict) -> str | None:
    """The record's own id (``id`` or ``prompt_id`` field), if it has a non-empty one."""
    for key in ID_FIELDS:
        value = _text(fields.get(key))
        if value:
            return value
    return None


def _text(value: Any) -> str:
    """A cell as text: integral floats (pandas turns int columns with gaps into floats) lose their '.0'."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()
