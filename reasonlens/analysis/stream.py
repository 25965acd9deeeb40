"""Text-only analysis of a rollout log step by step: every core (or a Ray cluster), bounded memory.

The log is cut into units of work, the parts `sources.logs.detect_layout` lists (one per step file:
``{step}.jsonl``, ``step_N.parquet``, a framework's step folder; a Parquet file's runs of row groups; a large
JSONL file's lines of each step, `sources.logs.file_pieces`), and each runs `steps.run_step_task` (read, find
the final answers, tag, write the step's part, list its answer pairs) in a worker: a process of a pool
(``--workers N``, default the usable cores, `WORKER_ENV`) or a Ray task (``--ray``). The driver holds only what
the steps hand back (prompt-group sizes, top grams, answer pairs, the rows' outcome columns, one dynamics row
per step), so peak memory follows the largest step, not the run:

- between the passes, the distinct answer pairs of all steps (gold vs answer, answer vs answer) are
  checked once each, split over the workers (`steps.run_grade_task`; math-verify is the costly part), and
  kept in ``OUT/tags/verdicts.parquet`` for the next run;
- the dynamics table comes from a second pass over the steps' tagged parts, `metrics.dynamics.step_result`
  of each with the pass@k grid of all steps and the verdicts, gathered by `dynamics_from_steps` (the
  ratios to the first step and their bootstrap intervals): what `dynamics_table` gives on the whole
  table (tested equal);
- meanwhile the driver writes the graded rows to ``OUT/parts/rollouts.parquet``, one row group per step
  (`RowsWriter`), moved into place with the other outputs; the report's example responses are
  read back from the row groups of the steps it shows (first, last, phase boundaries), the same rows
  `report.html.examples_html` picks from the whole table.
Results do not depend on the number of workers (tested).
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shutil
import warnings
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

from reasonlens import columns as C
from reasonlens.analysis.plan import Inputs, Plan
from reasonlens.analysis.record import Record
from reasonlens.analysis.steps import (StepTask, graded_columns, graded_note, known_verdicts, part_table,
                                      run_grade_task, run_step_task, verdicts_path, write_verdicts)
from reasonlens.errors import ReasonlensError

# a step worker: one BLAS/tokenizer thread; glibc keeps freed memory for the next step instead of handing a
# step's multi-megabyte arrays back to the kernel and faulting them in again (tag stage ~20% faster, measured;
# other C libraries ignore these names)
WORKER_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
              "TOKENIZERS_PARALLELISM": "false", "MALLOC_TRIM_THRESHOLD_": str(4 << 30),
              "MALLOC_MMAP_THRESHOLD_": str(1 << 30)}


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity), the default ``--workers``."""
    return len(os.sched_getaffinity(0))


def step_tasks(plan: Plan) -> list[StepTask]:
    """One `StepTask` per part of the plan's --rollouts log (`plan.log`, a `sources.logs.LogLayout`)."""
    config = plan.config
    return [StepTask(Path(config.rollouts), key, files, plan.out, plan.lexicon, config.answer_field,
                     config.tokenizer, config.trust_remote_code, config.high_entropy_quantile)
            for key, files in plan.log.parts]


@contextlib.contextmanager
def task_runner(workers: int, use_ray: bool = False, address=None):
    """A ``run(fn, tasks)`` giving ``fn(task)`` of each task in task order: in this process (one worker), on a
    pool of spawned processes (`WORKER_ENV`, shared by every pass), or as Ray tasks."""
    if use_ray:
        yield functools.partial(_on_ray, address=address)
    elif workers <= 1:
        yield lambda fn, tasks: map(fn, tasks)
    else:
        with _environment(WORKER_ENV):
            pool = ProcessPoolExecutor(workers, mp_context=get_context("spawn"))
            try:
                yield functools.partial(_on_pool, pool)
            finally:  # no wait: the workers wind down (~0.6 s) while the report is written
                pool.shutdown(wait=False, cancel_futures=True)


@contextlib.contextmanager
def _environment(values: dict):
    """``os.environ`` with ``values`` set (for the processes started inside), restored after."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _on_pool(pool: ProcessPoolExecutor, fn, tasks: list) -> Iterator:
    """``fn`` of each task on the pool; results in task order (the others keep running meanwhile)."""
    futures = [pool.submit(fn, task) for task in tasks]
    try:
        for future in futures:
            try:
                yield future.result()
            except BrokenProcessPool:
                raise ReasonlensError("a worker process died (out of memory, killed, or analyze() called from a "
                                      "script without `if __name__ == \"__main__\":` around it, which spawned "
                                      "workers re-run). Guard the call, lower --workers, or pass --workers 1.") from None
    finally:
        for future in futures:
            future.cancel()


def _on_ray(fn, tasks: list, address=None) -> Iterator:
    """``fn`` of each task as a Ray task (one CPU) on the cluster at ``address`` (else RAY_ADDRESS, else a local
    one), as `analysis.distributed` runs checkpoints; the output folder must be on storage every node shares."""
    import ray

    from reasonlens.analysis.distributed import _cause

    address = address or os.environ.get("RAY_ADDRESS")
    ray.init(address=address, ignore_reinit_error=True, include_dashboard=False, log_to_driver=False,
             **({} if address else {"num_cpus": usable_cores()}))
    remote = ray.remote(num_cpus=1, max_retries=0)(fn)
    refs = [remote.options(runtime_env={"env_vars": WORKER_ENV}).remote(task) for task in tasks]
    for ref in refs:
        try:
            yield ray.get(ref)
        except ray.exceptions.RayTaskError as err:
            cause = getattr(err, "cause", None)
            if isinstance(cause, ReasonlensError):
                raise cause from None
            raise ReasonlensError(f"a step task failed on Ray: {_cause(err)}. Fix the cause and rerun (tagged "
                                  "steps are cached).") from None


def check_pairs(run, pairs: set, workers: int, out: Path, record: Record, bar) -> Path:
    """Each distinct answer pair checked once (`steps.run_grade_task`, in shares over the workers), except those an
    earlier analysis of this folder checked; all the verdicts written to ``OUT/tags/verdicts.parquet``."""
    verdicts = known_verdicts(out)
    known = bool(verdicts)
    ordered = sorted(pairs.difference(verdicts))  # pairs of one gold side by side: a share parses each gold once
    shares = max(1, min(len(ordered), 4 * workers))  # several shares a worker: a slow pair holds up one share
    cuts = np.linspace(0, len(ordered), shares + 1).astype(int)
    chunks = [ordered[a:b] for a, b in zip(cuts[:-1], cuts[1:])] if ordered else []
    progress = bar.add_task("answer pairs (math-verify)", total=len(ordered))
    for chunk, (found, seconds) in zip(chunks, run(run_grade_task, chunks)):
        verdicts.update(zip(chunk, found))
        record.add_seconds(seconds)
        bar.advance(progress, len(chunk))
    bar.remove_task(progress)
    return write_verdicts(out, verdicts) if ordered or not known else verdicts_path(out)  # unchanged: left as is


def dynamics_of(run, parts: list, sizes: Counter, verdicts: Path, graded, plan: Plan, record: Record, bar):
    """The dynamics table from the steps' part files (a second pass: `metrics.dynamics.step_result` of each, with
    the pass@k grid of all steps), gathered by `dynamics_from_steps` as `dynamics_table` gathers them, and the
    rows' outcomes; meanwhile this process writes the graded rows, step by step (`RowsWriter`)."""
    from reasonlens.analysis.steps import MetricsTask, run_metrics_task
    from reasonlens.metrics.dynamics import dynamics_from_steps, pass_grid

    config = plan.config
    ks, pass_k = pass_grid(pd.Series(np.repeat(list(sizes), list(sizes.values()))))
    tasks = [MetricsTask(part, tuple(ks), pass_k, config.high_entropy_quantile, config.bootstrap, config.seed,
                         verdicts, graded) for _, part, _ in parts]
    outcomes = []
    progress = bar.add_task("metrics", total=len(tasks))
    with RowsWriter(parts, graded is not None, record) as rows:

        def steps():
            for (_, part, _), result in zip(parts, run(run_metrics_task, tasks)):
                outcomes.append(result.outcomes)
                record.add_seconds(result.seconds)
                rows.write(part, result.graded)
                bar.advance(progress)
                yield result.step

        dynamics = dynamics_from_steps(steps(), bootstrap=config.bootstrap, seconds=record.seconds)
    bar.remove_task(progress)
    return dynamics, pd.concat(outcomes, ignore_index=True), rows.path


def stream_log(plan: Plan, bar) -> tuple[Inputs, dict, Record]:
    """Both passes over the plan's log (read, tag, write each step; check the answer pairs; then each step's
    grades and metrics); returns (Inputs without rows, the aggregates for `finish_stream`, the record)."""
    config, record = plan.config, Record()
    tasks = step_tasks(plan)
    workers = 1 if len(tasks) <= 1 else min(config.workers or usable_cores(), len(tasks))
    sizes, top, parts, messages, pairs, graded = Counter(), [], [], [], set(), None
    progress = bar.add_task("steps", total=len(tasks))
    seen: dict[int, list] = {}
    with task_runner(workers, config.ray, config.ray_address) as run:
        for task, result in zip(tasks, run(run_step_task, tasks)):
            for step, _, _ in result.parts:
                if step in seen:
                    raise ReasonlensError(f"rollout log {config.rollouts}: step {step} is in {seen[step][0]} and "
                                          f"in {task.files[0]}; a step's rows must be in one file (or files named "
                                          "after it). Merge them, or fix the step numbers.")
                seen[step] = task.files
            sizes.update(result.group_sizes)
            top += result.top_grams
            parts += result.parts
            messages += result.warnings
            pairs |= result.pairs
            record.add_seconds(result.seconds)
            if result.graded:
                graded = result.graded
                record.graded = graded_note(result.graded)
            bar.advance(progress)
        bar.remove_task(progress)
        _warn_once(messages)
        parts.sort()
        verdicts = check_pairs(run, pairs, workers, plan.out, record, bar)
        dynamics, outcomes, rows = dynamics_of(run, parts, sizes, verdicts, graded, plan, record, bar)
    return Inputs(rollouts=None, tokenizer=config.tokenizer), {
        "dynamics": dynamics, "parts": parts, "rows": rows, "workers": "ray" if config.ray else workers,
        "outcomes": outcomes, "top_grams": pd.DataFrame(top, columns=["step", "gram", "count"])}, record


def _warn_once(messages: list[str]) -> None:
    """The steps' warnings, each distinct text once (a log's repeated rows are reported per step)."""
    counts = Counter(re.sub(r"\d+", "N", m) for m in messages)
    shown = set()
    for message in messages:
        shape = re.sub(r"\d+", "N", message)
        if shape not in shown:
            shown.add(shape)
            more = counts[shape] - 1
            warnings.warn(message + (f" (and the same in {more} more step(s))" if more else ""), stacklevel=3)


class RowsWriter:
    """The graded rows of every step into ``OUT/parts/rollouts.parquet``, one row group per step in step order, as
    the second pass hands them back; `place_rollouts` moves the finished file into the folder."""

    def __init__(self, parts: list[tuple[int, Path, int]], graded: bool, record: Record):
        self.path = parts[0][1].parent / "rollouts.parquet"
        self.graded, self.record = graded, record
        self.schemas = [self._schema(part) for _, part, _ in parts]
        self.same = all(s.equals(self.schemas[0]) for s in self.schemas)

    def __enter__(self) -> "RowsWriter":
        import pyarrow as pa
        import pyarrow.parquet as pq

        schema = self.schemas[0] if self.same else pa.unify_schemas(self.schemas, promote_options="permissive")
        self.writer = pq.ParquetWriter(self.path, schema)
        return self

    def __exit__(self, *exc) -> None:
        self.writer.close()

    def write(self, part: Path, added: dict) -> None:
        """A step's rows, with what grading added right after PRED."""
        import pyarrow as pa

        with self.record.timed("write"):
            rows = _with_grades(part_table(part), added)
            schema = self.writer.schema
            if not self.same:
                rows = pa.table({f.name: rows[f.name] if f.name in rows.column_names else pa.nulls(len(rows), f.type)
                                 for f in schema}).cast(schema)
            self.writer.write_table(rows, row_group_size=max(len(rows), 1))

    def _schema(self, part: Path):
        """The schema of a part's rows once graded (from the file's header: no rows are read)."""
        import pyarrow as pa

        schema = pa.ipc.open_file(pa.memory_map(str(part))).schema
        if self.graded:  # what `steps.grade_rows` adds
            at = schema.get_field_index(C.PRED) + 1
            for offset, name in enumerate(graded_columns(schema.names)):
                schema = schema.insert(at + offset, _graded_field(name))
        return schema


def _graded_field(name: str):
    """CORRECT is boolean, REWARD a float."""
    import pyarrow as pa

    return pa.field(name, pa.bool_() if name == C.CORRECT else pa.float64())


def _with_grades(rows, added: dict):
    """A part's Arrow rows with the graded columns right after PRED (the order of `steps.with_grades`)."""
    import pyarrow as pa

    at = rows.schema.get_field_index(C.PRED) + 1
    for offset, (name, values) in enumerate(added.items()):
        field = _graded_field(name)
        rows = rows.add_column(at + offset, field, pa.array(values, field.type))
    return rows


def place_rollouts(rows: Path, path: Path) -> Path:
    """The finished ``OUT/parts/rollouts.parquet`` moved to ``path``; the parts are removed after."""
    os.replace(rows, path)
    shutil.rmtree(rows.parent, ignore_errors=True)
    return path


def example_rows(path: Path, parts: list[tuple[int, Path, int]], phases: dict) -> pd.DataFrame:
    """The rows of the steps the report shows examples of (`report.highlight.example_steps`), read from their
    row groups of ``rollouts.parquet``: `examples_html` picks the same responses from them as from all rows."""
    import pyarrow.parquet as pq

    from reasonlens.report.highlight import example_steps

    steps = [step for step, _, _ in parts]
    boundaries = [p.get("step") for p in (phases or {}).values() if isinstance(p, dict) and p.get("detected")]
    shown = set(example_steps(steps, boundaries, 4))
    groups = [i for i, step in enumerate(steps) if step in shown]
    return pq.ParquetFile(path).read_row_groups(groups).to_pandas() if groups else pd.DataFrame(columns=[C.STEP])


def finish_stream(plan: Plan, record: Record, inputs: Inputs, aggregates: dict, started: float, *, summarize, export,
                  trackers=None):
    """`run.finish` for a streamed log: dynamics from the steps' rows, rollouts.parquet from their parts.
    ``summarize`` and ``export`` are `run._summary` and `run.export_trackers`, given the rows' outcome columns
    (step, reward, correct, pred): all they read of a text log."""
    from reasonlens.analysis.outputs import write_outputs, write_summary
    from reasonlens.analysis.result import Analysis
    from reasonlens.metrics.phases import detect_phases

    out, outcomes = plan.out, aggregates["outcomes"]
    (out / "summary.json").unlink(missing_ok=True)  # the folder is unfinished until the new one is written
    dynamics = aggregates["dynamics"]
    with record.timed("metrics"):
        phases = detect_phases(dynamics)
    parts = aggregates["parts"]
    summary = summarize(plan, record, inputs, outcomes, phases, started)
    summary["workers"] = aggregates["workers"]
    write_outputs(plan, record, summary, dynamics,
                  write_rollouts=lambda path: place_rollouts(aggregates["rows"], path),
                  top_grams=lambda: aggregates["top_grams"],
                  example_rows=lambda: example_rows(out / "rollouts.parquet", parts, summary["phases"]))
    summary["trackers"] = export(plan, record, dynamics, outcomes, summary["phases"], trackers)
    write_summary(out, summary, record, started)
    return Analysis(out, dynamics, None, summary, plan.lexicon.phrases)
