"""Records from a user's JSONL or Parquet file (problems, rollout logs), or a Hugging Face dataset.

Each record comes back with where it was found ("line 3", "row 3") so errors can point at it.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Optional

from reasonlens.errors import ReasonlensError

ID_FIELDS = ("id", "prompt_id")  # a record's own id, when it has one, becomes the prompt_id
Record = tuple[str, dict]  # (where, fields)


def read_records(path: str | Path, what: str = "prompts file",
                 example: str = '{"question": ..., "answer": ...}') -> list[Record]:
    """Every record of a ``.jsonl`` / ``.json`` (one object per line) or ``.parquet`` file, in file order.

    ``what`` names the file in errors ("prompts file", "rollout log"); ``example`` shows a valid line.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise ReasonlensError(f"{what} {path} does not exist. Pass an existing .jsonl or .parquet file.")
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json"):
        records = list(_jsonl_records(path, what, example))
    elif suffix == ".parquet":
        records = [(f"row {i}", row) for i, row in enumerate(read_parquet(path, what).to_dict(orient="records"))]
    else:
        raise ReasonlensError(f"{what} {path} has suffix {suffix!r}; expected .jsonl (one JSON object per "
                              "line) or .parquet. Convert the file to one of these.")
    if not records:
        raise ReasonlensError(f"{what} {path} holds no records; add one object per line, like {example}.")
    return records


def _jsonl_records(path: Path, what: str, example: str) -> Iterator[Record]:
    try:
        with path.open(encoding="utf-8") as lines:
            yield from json_line_records(enumerate(lines, start=1), path, what, example)
    except UnicodeDecodeError as err:
        raise ReasonlensError(f"{what} {path} is not UTF-8 text (byte {err.start}: {err.reason}). Re-save it as "
                              "UTF-8.") from None


def json_line_records(lines: Iterable[tuple[int, str]], path: Path, what: str, example: str) -> Iterator[Record]:
    """("line N", object) of each numbered non-blank line, or an error naming the file and the line."""
    for number, line in lines:
        if not line.strip():
            continue
        try:
            fields = json.loads(line)
        except json.JSONDecodeError as err:
            cut = " (the file may be truncated)" if not line.endswith("\n") else ""
            raise ReasonlensError(f"{what} {path} line {number} is not valid JSON ({err.msg} at column "
                                  f"{err.colno}){cut}. Fix that line: each line must be one JSON object.") from None
        if not isinstance(fields, dict):
            raise ReasonlensError(f"{what} {path} line {number} is a JSON {type(fields).__name__}, expected "
                                  f"an object like {example}. Fix that line.")
        yield f"line {number}", fields


def read_parquet(path: Path, what: str, row_groups: Optional[Sequence[int]] = None):
    """A Parquet file (or only its ``row_groups``) as a DataFrame, or an error naming the file and the fix."""
    import pandas as pd

    try:
        if row_groups is not None:
            import pyarrow.parquet as pq

            return pq.ParquetFile(path).read_row_groups(list(row_groups)).to_pandas()
        return pd.read_parquet(path)
    except (OSError, ValueError) as err:
        brief = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise ReasonlensError(f"{what} {path} is not a readable Parquet file ({brief}); it may be truncated or "
                              "another format. Re-write it with pandas.DataFrame.to_parquet.") from None


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
        from reasonlens.sources.specs import hub_offline_requested

        offline = " (offline: HF_HUB_OFFLINE is set)" if hub_offline_requested() else ""
        raise ReasonlensError(f"could not load Hugging Face dataset {name!r} config={config or None!r} "
                              f"split={split!r}{offline}: {err}. Go online (unset HF_HUB_OFFLINE), check the "
                              "name, or export the rows to a .jsonl file and pass it with --prompts-file.") from None
    return [(f"row {i}", dict(row)) for i, row in enumerate(rows)]


def field_value(source: str, where: str, fields: dict, name: str, option: str) -> str:
    """``fields[name]`` as non-empty text, or an error naming the source, record, field and the option to set."""
    if name not in fields:
        raise ReasonlensError(f"{source} {where} has no field {name!r} (it has: {', '.join(map(str, fields))}). "
                              f"Set {option} to the field that holds it.")
    value = cell_text(fields[name]).strip()
    if not value:
        raise ReasonlensError(f"{source} {where}: field {name!r} is empty. Fill it in or drop that record.")
    return value


def record_id(fields: dict) -> str | None:
    """The record's own id (``id`` or ``prompt_id`` field), if it has a non-empty one."""
    for key in ID_FIELDS:
        value = cell_text(fields.get(key)).strip()
        if value:
            return value
    return None


def cell_text(value: Any) -> str:
    """A cell as text, unstripped: a conversation (list of {"role", "content"}) gives its last message's
    content; integral floats (pandas turns int columns with gaps into floats) lose their '.0'; None/NaN -> ""."""
    if isinstance(value, str):
        return value
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if hasattr(value, "__len__") and len(value) and isinstance(value[-1], dict) and "content" in value[-1]:
        return str(value[-1]["content"])
    return json.dumps(value, default=str) if isinstance(value, (dict, list)) else str(value)


def step_number(pattern: re.Pattern, name: str) -> int | None:
    """The step a file name holds (``pattern``'s first group), None when the name does not match it.

    >>> step_number(re.compile(r"train_data_step(\\d+)\\.jsonl"), "train_data_step12.jsonl")
    12
    """
    match = pattern.fullmatch(name)
    return int(match.group(1)) if match else None


def step_files(files: Iterable[Path], pattern: re.Pattern) -> dict[int, list[Path]] | None:
    """``{step: [files]}`` of the files whose name matches ``pattern``, steps in order, files sorted; None if none."""
    steps: dict[int, list[Path]] = {}
    for file in sorted(files):
        step = step_number(pattern, file.name)
        if step is not None:
            steps.setdefault(step, []).append(file)
    return dict(sorted(steps.items())) or None
