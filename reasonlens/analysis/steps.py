"""The per-step work of a text-only analysis, in two passes with one check of each answer pair between them.

1. `run_step_task` (a worker process or a Ray task, given a picklable `StepTask`: one part of the log and
   the settings) reads a step, finds its final answers, tags it and writes its rows to
   ``OUT/parts/step_NNNNNN.arrow``; it hands back small things: prompt-group sizes, top grams, stage
   seconds and the answer pairs the step needs verdicts for (gold vs answer, answer vs answer).
2. `run_grade_task` checks a share of the distinct pairs of all steps with math-verify (~10 ms a pair, so
   each pair is checked once in the whole run, not once per step or per worker); the driver writes the
   verdicts to ``OUT/tags/verdicts.parquet``, where a rerun finds them.
3. `run_metrics_task` reads a step's part back (without its response text when answers are extracted),
   grades its rows from the verdicts and computes `metrics.dynamics.step_result`.
Nothing here depends on the other steps, so steps run in any order, on any process, with identical results.
The tag stage's per-step cache (``OUT/tags/step_NNNNNN.parquet``) is `tag_step`, shared with the in-memory
pipeline (`analysis.run.tag_stage`).
"""

from __future__ import annotations

import dataclasses
import functools
import warnings
from collections import Counter
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

from reasonlens import columns as C
from reasonlens.analysis.record import timed
from reasonlens.records import atomic_path, cache_key, read_cached, step_file, text_digest, write_cached

TOP_GRAMS = 12  # grams per step in the report's heatmap
PARTS = "parts"  # OUT/parts/: each step's tagged rows (Arrow IPC), until rollouts.parquet is written
VERDICTS = "verdicts.parquet"  # OUT/tags/verdicts.parquet: x, y, equivalent (is y the same answer as x?)
VERDICTS_VERSION = 1  # bump when `sources.answers.answers_equivalent` changes its verdicts


@dataclasses.dataclass(frozen=True)
class StepTask:
    """One unit of work: a part of the log at ``source`` (an entry of `sources.logs.detect_layout`'s parts: the key
    its reader takes, a step or a piece of a file, and the files), and the settings."""

    source: Path
    key: object
    files: list
    out: Path
    lexicon: object                  # hierarchy.lexicon.Lexicon
    answer_field: str = C.ANSWER
    tokenizer: Optional[str] = None  # --tokenizer spec: lengths in its tokens
    trust_remote_code: bool = False
    high_entropy_quantile: float = 0.3


@dataclasses.dataclass
class StepResult:
    """What a step hands back to the driver after the first pass: small, whatever the step's size."""

    group_sizes: Counter      # samples per (step, prompt) group -> number of groups (pass@k grid)
    top_grams: list[dict]     # {"step", "gram", "count"}, TOP_GRAMS per step
    parts: list[tuple[int, Path, int]]  # (step, part file, rows)
    seconds: dict             # read, grade, tag, metrics, write: this task's wall time per stage
    graded: Optional[str] = None  # the gold-answer field responses are graded against, if any
    warnings: list[str] = dataclasses.field(default_factory=list)
    pairs: set = dataclasses.field(default_factory=set)  # (x, y) answer pairs whose equivalence the step needs


def run_step_task(task: StepTask) -> StepResult:
    """Read, tag and write the step(s) of a part of the log; list the answer pairs to check."""
    from reasonlens.metrics.dynamics import answer_pairs, prompt_codes, prompt_key, top_grams
    from reasonlens.sources.logs import join_parts

    seconds: dict = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with timed(seconds, "read"):
            layout = log_layout(task.source, task.trust_remote_code)  # for its reader: the part is the task's
            table = join_parts([layout.read_part(task.files, task.key)], task.source)
        table, graded = text_rows(table, task.answer_field, seconds, task.tokenizer, task.trust_remote_code)
    result = StepResult(Counter(), [], [], seconds, graded, [str(w.message) for w in caught])
    for step, frame in table.groupby(C.STEP, sort=True):
        frame = frame.reset_index(drop=True)
        tagged = tag_step(frame, task.out, task.lexicon, seconds)
        keys, codes = prompt_codes(prompt_key(tagged))
        with timed(seconds, "grade"):
            result.pairs |= answer_pairs(tagged, codes, len(keys)) | set(filter(None, _keys(tagged, graded)))
        with timed(seconds, "metrics"):
            result.group_sizes.update(np.bincount(codes).tolist())  # samples of each prompt
            result.top_grams += top_grams(tagged, n=TOP_GRAMS).to_dict("records")
        with timed(seconds, "write"):
            part = write_part(step_file(task.out, int(step), ".arrow", stage=PARTS), tagged)
        result.parts.append((int(step), part, len(tagged)))
    return result


def run_grade_task(pairs: list[tuple[str, str]]) -> tuple[list[bool], dict]:
    """The math-verify verdict of each (x, y) pair (is y the same answer as x?), and the seconds it took."""
    from reasonlens.sources.answers import grade_pairs

    seconds: dict = {}
    with timed(seconds, "grade"):
        verdicts = grade_pairs(pairs)
    return verdicts, seconds


@dataclasses.dataclass(frozen=True)
class MetricsTask:
    """The second pass over a step: its part file, the verdicts, and the settings every step shares."""

    part: Path
    ks: tuple[int, ...]   # the pass@k grid of the whole log (`metrics.dynamics.pass_grid`)
    pass_k: int
    quantile: float
    bootstrap: int
    seed: int
    verdicts: Path        # OUT/tags/verdicts.parquet
    graded: Optional[str] = None  # the gold-answer column to grade against, if the log has no verdicts


@dataclasses.dataclass
class MetricsResult:
    """A step's dynamics (`metrics.dynamics.StepResult`), its rows' outcomes and what grading adds to them."""

    step: object
    outcomes: pd.DataFrame    # step, reward, correct, pred of each row (summary.json's log entry)
    graded: dict              # {CORRECT: [...], REWARD: [...]} for rollouts.parquet; {} when not graded
    seconds: dict


def run_metrics_task(task: MetricsTask) -> MetricsResult:
    """Grade a step's rows from the verdicts and compute its `metrics.dynamics.step_result`."""
    from reasonlens.metrics.dynamics import step_result, step_rows

    seconds: dict = {}
    with timed(seconds, "metrics"):
        rows = read_part(task.part, skip_text=True)
        verdicts = load_verdicts(task.verdicts, task.verdicts.stat().st_mtime_ns)
        added = grade_rows(rows, task.graded, verdicts) if task.graded else {}
        rows = rows.assign(**added)
        result = step_result(step_rows(rows), list(task.ks), task.pass_k, quantile=task.quantile,
                             equivalent=lambda x, y: verdicts[x, y], bootstrap=task.bootstrap, seed=task.seed)
        outcomes = rows[[c for c in (C.STEP, C.REWARD, C.CORRECT, C.PRED) if c in rows]]
    return MetricsResult(result, outcomes, added, seconds)


def grade_rows(rows: pd.DataFrame, graded: str, verdicts: dict) -> dict:
    """CORRECT (and REWARD, unless the log has one) of rows with PRED and the gold column ``graded``."""
    from reasonlens.sources.grading import scores

    found = scores(rows[C.PRED].tolist(), _keys(rows, graded), verdicts)
    values = {C.CORRECT: [s.correct for s in found], C.REWARD: [s.reward for s in found]}
    return {name: values[name] for name in graded_columns(rows.columns)}


def graded_columns(columns) -> list[str]:
    """What grading adds to rows with these ``columns``: CORRECT, and REWARD unless the log has one (a logged
    score stays the reward)."""
    return [C.CORRECT] + ([C.REWARD] if C.REWARD not in columns else [])


def _keys(rows: pd.DataFrame, graded: Optional[str]) -> list:
    """The (gold, answer) pair that grades each row (`sources.grading.answer_keys`); [] when not graded."""
    from reasonlens.sources.grading import answer_keys

    if not graded:
        return []
    preds = [None if pd.isna(p) else p for p in rows[C.PRED]]  # a table may hold a missing answer as NaN
    return answer_keys(preds, rows[graded].tolist())


def verdicts_key() -> str:
    """The cache key of a folder's verdicts: they hold while math-verify and our use of it are the same."""
    from importlib.metadata import version

    return cache_key("verdicts", VERDICTS_VERSION, version("math-verify"))


def verdicts_path(out: Path) -> Path:
    """``OUT/tags/verdicts.parquet``."""
    return out / "tags" / VERDICTS


def known_verdicts(out: Path) -> dict[tuple[str, str], bool]:
    """The verdicts an earlier analysis of this folder checked (`write_verdicts`), if made the same way."""
    frame = read_cached(verdicts_path(out), verdicts_key())
    return {} if frame is None else _verdicts(frame)


def write_verdicts(out: Path, verdicts: dict[tuple[str, str], bool]) -> Path:
    """``OUT/tags/verdicts.parquet``: each checked pair (x, y) and whether y is the same answer as x; kept, so a
    rerun (or the next poll of --watch) checks only pairs it has not seen."""
    path = verdicts_path(out)
    frame = pd.DataFrame({"x": pd.Series([p[0] for p in verdicts], dtype=object),
                          "y": pd.Series([p[1] for p in verdicts], dtype=object),
                          "equivalent": pd.Series(list(verdicts.values()), dtype=bool)})
    write_cached(path, verdicts_key(), frame, n_pairs=len(frame))
    return path


@functools.lru_cache(maxsize=2)
def load_verdicts(path: Path, mtime_ns: int) -> dict[tuple[str, str], bool]:
    """The verdicts of `write_verdicts`, read once per process (keyed by the file's modification time too)."""
    return _verdicts(pd.read_parquet(path))


def _verdicts(frame: pd.DataFrame) -> dict[tuple[str, str], bool]:
    """{(x, y): equivalent} of a verdicts table."""
    return dict(zip(zip(frame["x"], frame["y"]), frame["equivalent"].tolist()))


def write_part(path: Path, rows: pd.DataFrame) -> Path:
    """A step's rows as an Arrow IPC file (no compression: written once, read twice, then dropped)."""
    import pyarrow as pa

    table = pa.Table.from_pandas(rows, preserve_index=False).replace_schema_metadata(None)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    return path


def part_table(path: Path):
    """The Arrow table of a part file (memory-mapped)."""
    import pyarrow as pa

    return pa.ipc.open_file(pa.memory_map(str(path))).read_all()


def read_part(path: Path, *, skip_text: bool = False) -> pd.DataFrame:
    """A part's rows; with ``skip_text``, without the response text when PRED holds the final answers."""
    table = part_table(path)
    if skip_text and C.PRED in table.column_names:
        table = table.drop_columns([C.RESPONSE])
    return table.to_pandas()


@functools.lru_cache(maxsize=4)
def log_layout(source: Path, trust_remote_code: bool):
    """`sources.logs.detect_layout` of the log, once per process, for its reader (which need not pickle); the
    parts come with the tasks."""
    from reasonlens.sources.logs import detect_layout

    return detect_layout(source, trust_remote_code=trust_remote_code, pieces=False)


def text_rows(rollouts: pd.DataFrame, answer_field: str, seconds: dict, tokenizer: Optional[str] = None,
              trust_remote_code: bool = False, *, keep_tokens: bool = False) -> tuple[pd.DataFrame, Optional[str]]:
    """A log's rows as text: old tags and (unless ``keep_tokens``) token arrays dropped, so nothing is mixed in;
    the final answers (PRED) found when the log has gold answers but no verdicts; lengths in ``tokenizer``
    tokens. Returns (table, the gold field to grade against or None)."""
    from reasonlens.hierarchy.tag import TAG_COLUMNS

    arrays = [] if keep_tokens else C.TOKEN_ARRAY_COLUMNS + [C.PROMPT_TOKEN_IDS]
    rollouts = rollouts.drop(columns=[c for c in arrays + TAG_COLUMNS if c in rollouts])
    answers = answer_field if answer_field in rollouts else C.ANSWER
    graded = answers if C.CORRECT not in rollouts and answers in rollouts else None
    if graded:  # the answers are found here, as they are graded here
        from reasonlens.sources.grading import boxed_answers

        with timed(seconds, "grade"):
            rollouts = rollouts.drop(columns=[C.PRED], errors="ignore").assign(
                **{C.PRED: boxed_answers(rollouts[C.RESPONSE])})
    if tokenizer is not None:
        encode = _tokenizer(tokenizer, trust_remote_code)
        rollouts[C.N_TOKENS] = [len(encode(r, add_special_tokens=False)["input_ids"]) for r in rollouts[C.RESPONSE]]
    return rollouts, graded


def prepare_text_log(rollouts: pd.DataFrame, answer_field: str, seconds: dict, tokenizer: Optional[str] = None,
                     trust_remote_code: bool = False, *, keep_tokens: bool = False) -> tuple[pd.DataFrame, Optional[str]]:
    """`text_rows`, graded against the gold answers when the log has no verdicts (the whole table at once)."""
    from reasonlens.sources.grading import verdict_map

    rollouts, graded = text_rows(rollouts, answer_field, seconds, tokenizer, trust_remote_code, keep_tokens=keep_tokens)
    if graded:
        with timed(seconds, "grade"):
            rollouts = with_grades(rollouts, grade_rows(rollouts, graded, verdict_map(_keys(rollouts, graded))))
    return rollouts, graded


def with_grades(rows: pd.DataFrame, added: dict) -> pd.DataFrame:
    """``rows`` with the graded columns right after PRED (the order every route writes)."""
    at = rows.columns.get_loc(C.PRED) + 1
    head, tail = rows.iloc[:, :at], rows.iloc[:, at:]
    return pd.concat([head, pd.DataFrame(added, index=rows.index), tail], axis=1)


def graded_note(field: str) -> str:
    """summary.json's ``graded``: how a log without verdicts was graded."""
    return f"'{field}' field: last \\boxed{{}} answer, math-verify (gold first)"


@functools.lru_cache(maxsize=4)
def _tokenizer(spec: str, trust_remote_code: bool):
    """The --tokenizer, loaded once per process."""
    from reasonlens.models.loading import load_tokenizer

    return load_tokenizer(spec, trust_remote_code=trust_remote_code)


def tag_step(frame: pd.DataFrame, out: Path, lexicon, seconds: dict) -> pd.DataFrame:
    """One step's rows with the tag columns, read from ``OUT/tags/step_N.parquet`` when it holds this
    lexicon's tags of these very texts, else tagged and cached there."""
    from reasonlens.hierarchy.tag import TAG_COLUMNS, TAG_VERSION, tag_rollouts

    step = int(frame[C.STEP].iloc[0])
    offsets = frame[C.TOKEN_OFFSETS] if C.TOKEN_OFFSETS in frame else None
    key = cache_key("tags", TAG_VERSION, lexicon.hash, text_digest(frame[C.RESPONSE], offsets))
    table = step_file(out, step, stage="tags")
    tags = read_cached(table, key)
    if tags is None or len(tags) != len(frame):
        with timed(seconds, "tag"):
            tagged = tag_rollouts(frame, lexicon)
        tags = tagged[[c for c in TAG_COLUMNS + [C.PLANNING_MASK] if c in tagged]]
        with timed(seconds, "write"):
            write_cached(table, key, tags, step=step, lexicon=lexicon.hash, n_responses=len(frame))
    return frame.drop(columns=[c for c in tags.columns if c in frame]).join(tags)
