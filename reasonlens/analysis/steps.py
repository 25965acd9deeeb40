"""The per-step work of a text-only analysis: read a step of a log, grade, tag, measure, write its part.

`run_step_task` is what a worker process (or a Ray task) runs: it is given a `StepTask` (the files of
one step of the log and the settings, all picklable) and returns a small `StepResult` (the step's
dynamics row from `metrics.dynamics.step_metrics`, its prompt-group sizes, its top grams, stage
seconds) while the tagged rows go to ``OUT/parts/step_NNNNNN.parquet``. Nothing here depends on the
other steps, so steps run in any order, on any process, with identical results.
The tag stage's per-step cache (``OUT/tags/step_NNNNNN.parquet``) is `tag_step`, shared with the
in-memory pipeline (`analysis.run.tag_stage`).
"""

from __future__ import annotations

import dataclasses
import functools
import warnings
from collections import Counter
from pathlib import Path
from typing import Optional

import pandas as pd

from reasonlens import columns as C
from reasonlens.analysis.record import timed
from reasonlens.records import cache_key, read_cached, step_file, text_digest, write_cached, write_parquet

TOP_GRAMS = 12  # grams per step in the report's heatmap
PARTS = "parts"  # OUT/parts/step_NNNNNN.parquet: a step's tagged rows until rollouts.parquet is written
OUTCOME_COLUMNS = [C.STEP, C.REWARD, C.CORRECT, C.PRED]  # all the summary's log entry reads of the rows


@dataclasses.dataclass(frozen=True)
class StepTask:
    """One unit of work: part ``part`` of the log at ``source`` (`sources.logs.detect_layout`: one step's
    files, or one file), and the settings."""

    source: Path
    part: int
    out: Path
    lexicon: object                  # hierarchy.lexicon.Lexicon
    answer_field: str = C.ANSWER
    tokenizer: Optional[str] = None  # --tokenizer spec: lengths in its tokens
    trust_remote_code: bool = False
    high_entropy_quantile: float = 0.3


@dataclasses.dataclass
class StepResult:
    """What a step hands back to the driver: small, whatever the step's size."""

    group_sizes: Counter      # samples per (step, prompt) group -> number of groups (pass@k grid)
    top_grams: list[dict]     # {"step", "gram", "count"}, TOP_GRAMS per step
    parts: list[tuple[int, Path, int]]  # (step, part file, rows)
    seconds: dict             # read, grade, tag, metrics, write: this task's wall time per stage
    graded: Optional[str] = None  # the gold-answer field responses were graded against here, if any
    warnings: list[str] = dataclasses.field(default_factory=list)
    outcomes: Optional[pd.DataFrame] = None  # step, reward, correct, pred of each row (summary.json's log entry)


def run_step_task(task: StepTask) -> StepResult:
    """Read, grade, tag, measure and write the step(s) of part ``task.part`` of the log."""
    from reasonlens.metrics.dynamics import _prompt_key, top_grams
    from reasonlens.sources.logs import join_parts

    seconds: dict = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with timed(seconds, "read"):
            layout = log_layout(task.source, task.trust_remote_code)
            step, files = layout.parts[task.part]
            table = join_parts([layout.read_part(files, step)], task.source)
        table, graded = prepare_text_log(table, task.answer_field, seconds, task.tokenizer, task.trust_remote_code)
    outcomes = table[[c for c in OUTCOME_COLUMNS if c in table]]
    result = StepResult(Counter(), [], [], seconds, graded, [str(w.message) for w in caught], outcomes)
    for step, frame in table.groupby(C.STEP, sort=True):
        frame = frame.reset_index(drop=True)
        tagged = tag_step(frame, task.out, task.lexicon, seconds)
        with timed(seconds, "metrics"):
            result.group_sizes.update(tagged.groupby(_prompt_key(tagged)).size().tolist())
            result.top_grams += top_grams(tagged, n=TOP_GRAMS).to_dict("records")
        with timed(seconds, "write"):
            part = write_parquet(step_file(task.out, int(step), stage=PARTS), tagged)
        result.parts.append((int(step), part, len(tagged)))
    return result


@dataclasses.dataclass(frozen=True)
class MetricsTask:
    """The second pass over a step: its tagged part file and the settings every step shares."""

    part: Path
    ks: tuple[int, ...]   # the pass@k grid of the whole log (`metrics.dynamics.pass_grid`)
    pass_k: int
    quantile: float
    bootstrap: int
    seed: int


def run_metrics_task(task: MetricsTask):
    """`metrics.dynamics.step_result` of one step's tagged rows (its dynamics row, bootstrap replicates)."""
    from reasonlens.metrics.dynamics import _correctness, _prompt_key, step_result
    from reasonlens.sources.answers import answers_equivalent

    tagged = pd.read_parquet(task.part)
    rows = tagged.assign(_prompt=_prompt_key(tagged), _correct=_correctness(tagged))
    return step_result(rows, list(task.ks), task.pass_k, quantile=task.quantile, equivalent=answers_equivalent,
                       bootstrap=task.bootstrap, seed=task.seed)


@functools.lru_cache(maxsize=4)
def log_layout(source: Path, trust_remote_code: bool):
    """`sources.logs.detect_layout` of the log, once per process (a layout's reader need not pickle)."""
    from reasonlens.sources.logs import detect_layout

    return detect_layout(source, trust_remote_code=trust_remote_code)


def prepare_text_log(rollouts: pd.DataFrame, answer_field: str, seconds: dict, tokenizer: Optional[str] = None,
                     trust_remote_code: bool = False, *, keep_tokens: bool = False) -> tuple[pd.DataFrame, Optional[str]]:
    """A log's rows as text: old tags and (unless ``keep_tokens``) token arrays dropped, so nothing is mixed
    in; graded against gold answers when the log has no verdicts; lengths in ``tokenizer`` tokens. Returns
    (table, the gold field graded against or None)."""
    from reasonlens.hierarchy.tag import TAG_COLUMNS

    arrays = [] if keep_tokens else C.TOKEN_ARRAY_COLUMNS + [C.PROMPT_TOKEN_IDS]
    rollouts = rollouts.drop(columns=[c for c in arrays + TAG_COLUMNS if c in rollouts])
    answers = answer_field if answer_field in rollouts else C.ANSWER
    graded = answers if C.CORRECT not in rollouts and answers in rollouts else None
    if graded:
        from reasonlens.sources.tasks import grade_log

        with timed(seconds, "grade"):
            scores = grade_log(rollouts[C.RESPONSE], rollouts[answers])
        rollouts[C.CORRECT] = [s.correct for s in scores]
        rollouts[C.PRED] = [s.pred for s in scores]
        if C.REWARD not in rollouts:  # a logged score stays the reward
            rollouts[C.REWARD] = [s.reward for s in scores]
    if tokenizer is not None:
        encode = _tokenizer(tokenizer, trust_remote_code)
        rollouts[C.N_TOKENS] = [len(encode(r, add_special_tokens=False)["input_ids"]) for r in rollouts[C.RESPONSE]]
    return rollouts, graded


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
