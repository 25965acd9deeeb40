"""Read rollout logs (our own, TRL's, and every major RL framework's) into the rollout table, strictly.

This module is the dispatch: `detect_layout` recognises a log by its names and columns and lists its
steps; each framework's reader (its own module, citing the framework's source) turns one step's files
into rollout-table rows; `read_rollout_log` joins the steps. Formats:
- reasonlens: ``rollouts.parquet`` or a folder of ``step_*.parquet`` (an analysis or a
  ``train-hicra`` run's ``RUN/rollouts/``), and any JSONL/Parquet with ``step, prompt, response``
  (optional ``answer, reward`` (or ``score``)``, correct, pred, prompt_id, sample_id``);
- TRL completion logs: ``completions/completions_{step:05d}.parquet`` with ``step, prompt,
  completion``, one column per reward function and ``advantage``; ``reward`` is the unweighted sum
  of the numeric reward-function columns (TRL's weights are not logged), each kept as well;
- verl rollout and validation dumps ``{dir}/{step}.jsonl`` (`sources.verl_dumps`);
- prime-rl token exports (`sources.prime_rl`), NeMo-RL ``train_data_step{N}.jsonl`` (`sources.nemo_rl`),
  AReaL ``rollout/{version}/*.jsonl`` (`sources.areal`), ROLL ``rollout_dump_data.step_{N}.jsonl``
  (`sources.roll`), slime ``{rollout_id}.pt`` pickles, only with --trust-remote-code (`sources.slime`).
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
import re
import warnings
from pathlib import Path
from typing import Callable, Iterator, Optional

import numpy as np
import pandas as pd

from reasonlens import columns as C
from reasonlens.errors import ReasonlensError
from reasonlens.sources.files import cell_text, json_line_records, read_parquet, read_records
from reasonlens.sources.frameworks import LogLayout, detect
from reasonlens.sources.values import (is_conversation, parse_bool, parse_count, parse_id, parse_reward, parse_step,
                                      parse_text)

__all__ = ["LogLayout", "detect_layout", "file_pieces", "log_files", "read_rollout_log", "read_layout",
           "join_parts", "parse_bool", "parse_count", "parse_reward", "parse_step"]

REQUIRED = (C.STEP, C.PROMPT, C.RESPONSE)
_TRL_RENAME = {"completion": C.RESPONSE}
_TRL_NOT_REWARDS = {C.STEP, "prompt", "completion", "advantage", "image", "images"}
_WHERE = "_where"  # "line 3" / "row 3" of each row, for messages; dropped before returning


def read_rollout_log(path, *, trust_remote_code: bool = False) -> pd.DataFrame:
    """Read a rollout log (file or folder, formats in the module docstring) as a rollout table.

    Parameters
    ----------
    path : file or folder.
    trust_remote_code : allow pickled logs (slime ``.pt``), which run code when loaded.

    Returns
    -------
    DataFrame with at least ``step`` (int), ``prompt_id``, ``sample_id``, ``prompt``, ``response``,
    plus whatever optional columns the log has; sorted by step, prompt_id, sample_id.

    Example
    -------
    >>> read_rollout_log("runs/grpo/rollouts")[["step", "response"]]  # doctest: +SKIP
    """
    return read_layout(detect_layout(path, trust_remote_code=trust_remote_code), path)


def read_layout(layout: LogLayout, source) -> pd.DataFrame:
    """Every part of a detected log (``source``, for messages) joined into the rollout table."""
    return join_parts([layout.read_part(files, key) for key, files in layout.parts], source)


def join_parts(frames: list[pd.DataFrame], source) -> pd.DataFrame:
    """The parts of a log as one rollout table: ids filled, repeats warned about, sorted."""
    table = pd.concat(frames, ignore_index=True)
    if table.empty or C.RESPONSE not in table:
        raise ReasonlensError(f"rollout log {source} holds no response (every record was empty or had no "
                              "completion token); check that the path points at the run's log.")
    if _WHERE not in table:
        table[_WHERE] = [f"row {i}" for i in range(len(table))]
    _warn_duplicates(table)
    table = _fill_ids(table.drop(columns=[_WHERE]))
    return table.sort_values([C.STEP, C.PROMPT_ID, C.SAMPLE_ID], kind="stable").reset_index(drop=True)


def detect_layout(path, *, trust_remote_code: bool = False, pieces: bool = True) -> LogLayout:
    """Recognise the log at ``path`` (framework layouts first, then our/TRL/verl files) without reading it; with
    ``pieces=False`` a file is one part (a worker that is handed its parts needs the reader only, not one more
    pass over a large JSON-lines log, `step_lines`)."""
    path = Path(path)
    if not path.exists():
        raise ReasonlensError(f"rollout log {path} does not exist: pass a rollouts.parquet, a JSONL/Parquet "
                              "log, a folder of step_*.parquet, a TRL completions folder, a verl dump folder "
                              "or a framework's log folder (see docs/layouts.md).")
    layout = detect(path, trust_remote_code)
    if layout is not None:
        return layout
    files = log_files(path)
    framework, reward_from, correct_from = _generic_outcomes(files[0])
    return LogLayout(framework, [(piece, [f]) for f in files for piece in (file_pieces(f) if pieces else [None])],
                     lambda fs, piece: _read_one(fs[0], piece), reward_from=reward_from, correct_from=correct_from)


def file_pieces(file: Path) -> list:
    """How one log file is read, a piece at a time: a Parquet file's runs of row groups (`row_group_runs`), a large
    JSON-lines file's lines of each step (`step_lines`); ``[None]``, the whole file at once, otherwise."""
    return row_group_runs(file) if file.suffix.lower() == ".parquet" else step_lines(file)


def row_group_runs(file: Path) -> list[Optional[tuple[int, ...]]]:
    """A Parquet log's row groups in runs that share no step (from the integer ``step`` column's statistics), so
    each run is read on its own; ``[None]`` (the whole file) for JSONL, one row group, or statistics that do
    not tell."""
    if file.suffix.lower() != ".parquet":
        return [None]
    import pyarrow.parquet as pq
    import pyarrow.types as pat

    try:
        meta = pq.ParquetFile(file).metadata
        integer = pat.is_integer(meta.schema.to_arrow_schema().field(C.STEP).type)
    except (OSError, ValueError, KeyError):
        return [None]  # unreadable (the reader names the problem) or no step column
    if meta.num_row_groups < 2 or not integer:
        return [None]
    # the step's leaf column (a nested column before it, a conversation say, holds several leaves)
    column = [meta.schema.column(j).path for j in range(meta.num_columns)].index(C.STEP)
    ranges = []
    for i in range(meta.num_row_groups):
        stats = meta.row_group(i).column(column).statistics
        if stats is None or not stats.has_min_max:
            return [None]
        ranges.append((stats.min, stats.max, i))
    runs, reach = [], None
    for low, high, i in sorted(ranges):  # overlapping step ranges join one run
        if runs and low <= reach:
            runs[-1].append(i)
            reach = max(reach, high)
        else:
            runs.append([i])
            reach = high
    return [tuple(sorted(run)) for run in runs]


# a JSON-lines log larger than this is read a step at a time: memory follows the step, steps go to every worker
# (CHAMP, 80 k responses in one 200 MB file: 23.5 s and 975 MB read whole, 15.5 s and 780 MB by step); finding the
# steps' lines reads the file once more, ~650 MB/s on two cores
SPLIT_BYTES = 32 << 20
_BLOCK = 16 << 20  # bytes `step_lines` parses at once


def step_lines(file: Path) -> list[Optional[tuple[tuple[int, int, int], ...]]]:
    """A large JSON-lines log's lines grouped by step, in step order: per step, its runs of consecutive lines as
    (start byte, stop byte, first line number), so each step is read on its own (`_read_one`). Found in one
    pass that reads only the ``step`` of each line, ``_BLOCK`` bytes at a time. ``[None]`` (the whole file) for
    a file of ``SPLIT_BYTES`` or less, or one whose lines do not all hold an integer step (or have a blank
    line): the whole-file reader then reads it, or names what is wrong."""
    if file.suffix.lower() not in (".jsonl", ".json") or file.stat().st_size <= SPLIT_BYTES:
        return [None]
    starts, steps, offset = [], [], 0
    with file.open("rb") as handle:
        while block := handle.read(_BLOCK):
            cut = block.rfind(b"\n") + 1 if len(block) == _BLOCK else len(block)  # whole lines; at the end, all
            while not cut:  # a line longer than a block
                more = handle.read(_BLOCK)
                block += more
                cut = block.rfind(b"\n") + 1 if more else len(block)
            found = _line_steps(memoryview(block)[:cut])
            if found is None:
                return [None]
            starts.append(found[0] + offset)
            steps.append(found[1])
            offset += cut
            handle.seek(offset)
    starts, steps = np.concatenate(starts), np.concatenate(steps)
    stops = np.append(starts[1:], offset)
    pieces = []
    order = np.argsort(steps, kind="stable")  # a step's lines in file order
    for lines in np.split(order, np.flatnonzero(np.diff(steps[order])) + 1):
        breaks = np.flatnonzero(np.diff(lines) != 1) + 1  # runs of consecutive lines
        pieces.append(tuple((int(starts[run[0]]), int(stops[run[-1]]), int(run[0]) + 1)
                            for run in np.split(lines, breaks)))
    return pieces


def _line_steps(data: memoryview) -> Optional[tuple[np.ndarray, np.ndarray]]:
    """(start byte, step) of each of these whole JSON lines, or None unless every line is an object with an integer
    step and none is blank (pyarrow reads the step alone, on every core: ~5x faster than every field)."""
    import pyarrow as pa
    import pyarrow.json as pj

    codes = np.frombuffer(data, dtype=np.uint8)
    ends = np.flatnonzero(codes == 10)
    if (codes == 13).any() or (len(ends) and (ends[0] == 0 or (np.diff(ends) == 1).any())):
        return None  # a blank line (rows would not be line numbers), or CR line ends: the whole-file reader
    only_step = pj.ParseOptions(explicit_schema=pa.schema([(C.STEP, pa.int64())]), unexpected_field_behavior="ignore")
    try:  # 1 MB blocks, parsed on every core (a longer line is still read whole: tested)
        step = pj.read_json(pa.BufferReader(data), read_options=pj.ReadOptions(block_size=1 << 20),
                            parse_options=only_step).column(C.STEP)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return None
    if step.null_count or len(step) != len(ends) + (codes[-1] != 10):
        return None
    return np.concatenate([[0], ends + 1])[:len(step)], step.to_numpy()


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
                          "completions/ or {step}.jsonl files, and no framework layout (prime-rl token_exports, "
                          "NeMo-RL train_data_step*.jsonl, AReaL rollout/, ROLL rollout_dump_data.step_*.jsonl, "
                          "slime *.pt): unknown format. Pass one of those or a single file.")


def _generic_outcomes(file: Path) -> tuple[str, Optional[str], Optional[str]]:
    """(framework, reward source, correctness source) of a reasonlens/TRL/verl file, from its first record."""
    from reasonlens.sources import verl_dumps

    columns = set(_peek_columns(file))
    if verl_dumps.is_verl_dump(columns):
        kind = verl_dumps.dump_kind(columns)
        return (f"verl ({kind} dump)", verl_dumps.REWARD_FROM,
                verl_dumps.CORRECT_FROM if "acc" in columns else None)
    if "completion" in columns and C.RESPONSE not in columns:
        return "trl", "TRL reward-function columns (unweighted sum)", None
    reward = ("'reward'" if C.REWARD in columns else "'score'" if "score" in columns else None)
    return "reasonlens", reward, ("'correct'" if C.CORRECT in columns else None)


def _peek_columns(file: Path) -> list[str]:
    """The field names of a log file's first record (Parquet: its schema), without reading it all."""
    import json

    if file.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        try:
            return pq.read_schema(file).names
        except (OSError, ValueError):
            return []  # the reader names the problem
    try:
        with file.open(encoding="utf-8") as lines:
            first = next((line for line in lines if line.strip()), "{}")
        record = json.loads(first)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return []
    return list(record) if isinstance(record, dict) else []


def _read_one(file: Path, piece: Optional[tuple] = None) -> pd.DataFrame:
    """One file (only a ``piece`` of it, `file_pieces`, if given), normalised to rollout-table column names, its
    values parsed strictly."""
    from reasonlens.sources import verl_dumps

    raw = _read_raw(file, piece)
    if "completion" in raw.columns and C.RESPONSE not in raw.columns:
        df = _from_trl(raw, file)
    elif verl_dumps.is_verl_dump(raw.columns):
        df = verl_dumps.normalise(raw, file)
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
    if not _all_text(df[C.PROMPT]) and df[C.PROMPT].map(is_conversation).any():
        # kept whole: re-scoring applies the chat template to it
        df[C.PROMPT_MESSAGES] = [list(p) if is_conversation(p) else None for p in df[C.PROMPT]]
    for column in (C.PROMPT, C.RESPONSE):
        if not _all_text(df[column]):  # the common case, every cell a str, needs no parsing
            df[column] = _parsed(df, column, parse_text, file)
    return df


def _all_text(series: pd.Series) -> bool:
    """Every cell is already a str (what `parse_text` would return unchanged)."""
    return pd.api.types.infer_dtype(series, skipna=False) == "string"


def _parsed(df: pd.DataFrame, column: str, parse: Callable, file: Path) -> pd.Series:
    """``df[column]`` through ``parse``; the first value it refuses becomes an error naming where it is."""
    series = df[column]
    if parse in (parse_step, parse_count) and pd.api.types.is_integer_dtype(series) and (series >= 0).all():
        return series.astype(int)  # the common case, without a Python loop
    if parse is parse_bool and pd.api.types.is_bool_dtype(series):
        return series
    if parse is parse_reward and pd.api.types.infer_dtype(series, skipna=False) in ("floating", "integer",
                                                                                   "mixed-integer-float"):
        numbers = series.astype(float)  # numbers only (no bool, text or None): finite ones need no loop
        if np.isfinite(numbers).all():
            return numbers
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


def _read_raw(file: Path, piece: Optional[tuple] = None) -> pd.DataFrame:
    """Parquet (a run of row groups only, if ``piece``) or JSON lines (a step's line ranges only, if ``piece``,
    `step_lines`) into a DataFrame with each row's location, or a clear error."""
    suffix = file.suffix.lower()
    if suffix == ".parquet":
        frame = read_parquet(file, "rollout log", piece)
        return frame.assign(**{_WHERE: [f"row {i}" for i in _row_numbers(file, piece, len(frame))]})
    if suffix in (".jsonl", ".json"):
        data, numbers = (file.read_bytes(), None) if piece is None else _lines_of(file, piece)
        fast = _read_jsonl_columnar(data, numbers)
        if fast is not None:
            return fast
        example = '{"step": 0, "prompt": ..., "response": ...}'
        records = (read_records(file, "rollout log", example) if piece is None else
                   list(json_line_records(_decoded_lines(data, numbers, file), file, "rollout log", example)))
        frame = pd.DataFrame([fields for _, fields in records], dtype=object)  # values as written: null stays None
        return frame.assign(**{_WHERE: [where for where, _ in records]})
    raise ReasonlensError(f"{file}: unknown rollout log format '{suffix}': expected .parquet or .jsonl.")


def _row_numbers(file: Path, row_groups: Optional[tuple[int, ...]], n: int) -> list[int]:
    """The file's row number of each row read (row groups in the order given)."""
    if row_groups is None:
        return list(range(n))
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(file).metadata
    sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
    starts = np.cumsum([0] + sizes)
    return [int(starts[g]) + r for g in row_groups for r in range(sizes[g])]


_SCALAR_JSON = ("string", "int64", "double", "bool", "null")


def _lines_of(file: Path, piece: tuple[tuple[int, int, int], ...]) -> tuple[bytes, list[int]]:
    """The bytes of a piece's line ranges (`step_lines`), joined, and the line number of each line."""
    chunks, numbers = [], []
    with file.open("rb") as handle:
        for start, stop, first in piece:
            handle.seek(start)
            chunk = handle.read(stop - start)  # only the file's last line may lack its newline: it comes last
            chunks.append(chunk)
            numbers += range(first, first + chunk.count(b"\n") + (not chunk.endswith(b"\n")))
    return b"".join(chunks), numbers


def _decoded_lines(data: bytes, numbers: list[int], file: Path) -> Iterator[tuple[int, str]]:
    """Each numbered line of a piece's bytes as text (with its newline, where it has one), or an error naming the
    line that is not UTF-8."""
    lines = data.split(b"\n")  # a trailing b"" when the last line ends with its newline
    for i, (number, line) in enumerate(zip(numbers, lines)):
        try:
            yield number, line.decode("utf-8") + ("\n" if i < len(lines) - 1 else "")
        except UnicodeDecodeError as err:
            raise ReasonlensError(f"rollout log {file} line {number} is not UTF-8 text (byte {err.start}: "
                                  f"{err.reason}). Re-save it as UTF-8.") from None


def _read_jsonl_columnar(data: bytes, numbers: Optional[list[int]] = None) -> pd.DataFrame | None:
    """JSON lines (a file's bytes, or a step's lines and their ``numbers``) through pyarrow's JSON reader (C++,
    columnar), with the values `read_records` gives (Python str/int/float/bool/None, object columns); None where
    the strict line reader must run instead: a blank line (rows would not be line numbers), a nested or date-like
    value, anything pyarrow refuses, text that is not UTF-8 (that reader's message then names the line)."""
    import pyarrow as pa
    import pyarrow.json as pj

    if not data.strip() or data.startswith(b"\n") or b"\n\n" in data or b"\r" in data:
        return None
    try:  # one block for all of it: a line longer than the block size would fail
        table = pj.read_json(pa.BufferReader(data), read_options=pj.ReadOptions(block_size=len(data) + 1))
        if not all(str(field.type) in _SCALAR_JSON for field in table.schema):
            return None
        columns = {name: table.column(name).to_pylist() for name in table.column_names}  # bad UTF-8 fails here
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, UnicodeDecodeError):
        return None
    frame = pd.DataFrame({name: pd.Series(values, dtype=object) for name, values in columns.items()})
    return frame.assign(**{_WHERE: [f"line {i}" for i in (numbers or range(1, len(frame) + 1))]})


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
    scalar = [c for c in table.columns if c != _WHERE and not _holds_containers(table[c])]
    if C.RESPONSE in scalar:  # a repeat repeats its response: only those rows need comparing
        table = table[table[C.RESPONSE].duplicated(keep=False)]
    repeats = table.duplicated(subset=scalar, keep="first")
    if repeats.any():
        first = table[repeats].iloc[0]
        warnings.warn(f"rollout log: {int(repeats.sum())} row(s) repeat an earlier row exactly (e.g. {first[_WHERE]} "
                      f"at step {first[C.STEP]}); they are kept as separate samples. If the log was written twice, "
                      "deduplicate it, or give each sample a sample_id.", stacklevel=3)


def _holds_containers(column: pd.Series) -> bool:
    """Whether some cell is a list, tuple, dict or array (a column of numbers or of text holds none)."""
    if column.dtype != object or pd.api.types.infer_dtype(column, skipna=True) in ("string", "empty"):
        return False
    return any(isinstance(value, (list, tuple, dict, np.ndarray)) for value in column.tolist())


def _fill_ids(df: pd.DataFrame) -> pd.DataFrame:
    """Add prompt_id (hash of the prompt text) and sample_id (order within step and prompt) where absent."""
    df = df.copy()
    if C.PROMPT_ID not in df.columns:
        codes, prompts = pd.factorize(df[C.PROMPT], use_na_sentinel=False)  # a prompt's samples share one hash
        df[C.PROMPT_ID] = np.array([hashlib.sha256(p.encode()).hexdigest()[:12] for p in prompts], dtype=object)[codes]
    else:
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
