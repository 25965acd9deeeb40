"""`analyze()`: plan -> read, generate or re-score -> tag -> aggregate -> detect -> render.

Everything the run needs is checked first (`plan.make_plan`: inputs, lexicon, problems, output
folder), so a bad option fails in seconds, before any model loads. Two stages are cached per step,
each file written atomically with a JSON sidecar holding its key: ``OUT/rollouts/step_NNNNNN.parquet``
(generation or re-scoring: `generate`, `rescore`) and ``OUT/tags/step_NNNNNN.parquet`` (keyed by the
lexicon hash and the step's text). A killed run resumes where it stopped, a changed setting recomputes
instead of mixing results, and a fully cached rerun loads no model and runs no tagger.
The frozen plan says what to do; what ran (runtime, grading, timings) is a `record.Record` that the
stages return and `analyze` merges. ``summary.json`` is written last: an analysis folder without it
is unfinished.
"""

from __future__ import annotations

import dataclasses
import resource
import time
from typing import Any, Optional, TypedDict

import pandas as pd

from reasonlens import columns as C
from reasonlens.analysis.config import AnalyzeConfig
from reasonlens.analysis.plan import OUTPUT_FILES, OUTPUT_FOLDERS, Inputs, Plan, make_plan, run_model
from reasonlens.analysis.record import Record
from reasonlens.folders import writing
from reasonlens.progress import progress_bar
from reasonlens.analysis.outputs import write_outputs, write_summary
from reasonlens.records import provenance, remove_stale_temporaries, write_parquet


class Summary(TypedDict, total=False):
    """Layout of OUT/summary.json: the numbers' origin sits next to them."""

    mode: str                  # "checkpoints" | "training-run" | "eval" | "text-only" | "token-log" | "rescored"
    config: dict[str, Any]     # dataclasses.asdict(AnalyzeConfig), as given
    out: str                   # the output folder actually used
    provenance: dict[str, Any]  # reasonlens version, git hash, library versions, date
    runtime: Optional[dict]    # device, dtype, threads that actually ran (None: no model was loaded)
    lexicon: dict[str, Any]    # {"name", "hash", "size", "file"}: the phrases are in lexicon.txt
    tag_version: int           # hierarchy.tag.TAG_VERSION of the tag columns
    tokenizer: Optional[str]   # what decodes token_ids (load_tokenizer spec); None for plain text
    problems: Optional[dict]   # {"task", "seed", "n", "held_out_of_run_seed"} for generated rollouts
    checkpoints: list[dict]    # [{"step", "name", "path", "kind"}] in step order
    skipped: list[dict]        # [{"path", "reason"}] left out by --skip-bad
    run_config: Optional[dict]  # a training run's config.json (training-run and eval modes)
    graded: Optional[str]      # text logs graded here (no verdicts, gold answers): how
    log: Optional[dict]        # --rollouts: framework, reward/correctness sources, unavailable metrics, gaps
    step_checkpoints: Optional[list]  # rescored: [{"step", "checkpoint", "checkpoint_step", "exact"}], skipped steps
    phases: dict[str, Any]     # detect_phases(): consolidation / exploration, with evidence
    n_responses: int
    tokens_scored: int
    seconds: float             # wall time of the whole analysis
    stage_seconds: dict        # of which: plan, read, load, generate, score, grade, tag, metrics, write, report,
                               # trackers; bootstrap: the part of metrics spent on the intervals (not added again);
                               # a streamed log sums each stage over its steps and workers
    trackers: Optional[dict]   # --report-to: where each tracker wrote ({"tensorboard": dir, ...}); None: none
    workers: Any               # text-only: the processes that ran the steps (a number, or "ray")
    peak_rss_mb: float         # this process's peak resident memory


def analyze(config: AnalyzeConfig, *, progress: bool = True, trackers=None):
    """Run the whole analysis described by ``config``; return the `Analysis` (its ``.path`` is the folder).

    ``trackers`` is an open `report.trackers.TrackerSession` (the `--watch` loop keeps one open across
    calls); without it one is opened and closed here when ``config.report_to`` names trackers.

    Examples
    --------
    >>> from reasonlens import AnalyzeConfig, analyze          # doctest: +SKIP
    >>> a = analyze(AnalyzeConfig(path="ckpts/", samples=4))    # doctest: +SKIP
    >>> a.dynamics[["step", "rel_ppl_execution"]]               # doctest: +SKIP
    """
    started = time.time()
    record = Record()
    with record.timed("plan"):  # discovery, problems, lexicon, output checks
        plan = make_plan(config)
    with writing(plan.out, kind="analysis", covers=OUTPUT_FILES + OUTPUT_FOLDERS):  # one writer, marked as ours
        remove_stale_temporaries(plan.out)  # half-written files of a killed run: never read, never kept
        if plan.mode == "text-only":  # a log: step by step on every core, in bounded memory (`analysis.stream`)
            from reasonlens.analysis.stream import finish_stream, stream_log

            with progress_bar(progress) as bar:
                inputs, aggregates, streamed = stream_log(plan, bar)
            return finish_stream(plan, record.merge(streamed), inputs, aggregates, started, summarize=_summary,
                                 export=export_trackers, trackers=trackers)
        with progress_bar(progress) as bar:
            inputs, ran = read_inputs(plan, bar)
            record = record.merge(ran)
            rollouts = tag_stage(inputs, plan, record, bar)
        return finish(plan, record, inputs, rollouts, started, trackers)


# --- read or generate --------------------------------------------------------------------------


def read_inputs(plan: Plan, bar) -> tuple[Inputs, Record]:
    """The rollout table of the plan's source (a token-level log, a training run's logs, re-scored or generated
    rollouts; a text log streams instead: `analysis.stream`) and the record of what read, generated or scored it."""
    record = Record()
    if plan.mode == "token-log":
        with record.timed("read"):
            return Inputs(read_text_log(plan, record, token_scores=True), tokenizer=plan.config.tokenizer), record
    if plan.mode == "training-run":
        with record.timed("read"):
            return _read_training_run(plan), record
    if plan.mode == "rescored":
        from reasonlens.analysis.rescore import rescore_log

        with record.timed("read"):
            log = read_text_log(plan, record)
        inputs, scored = rescore_log(plan, log, bar)
        return inputs, record.merge(scored)
    if plan.config.ray:
        from reasonlens.analysis.distributed import rollout_series_ray

        return rollout_series_ray(plan, bar)
    from reasonlens.analysis.generate import rollout_series

    return rollout_series(plan, bar)


def read_text_log(plan: Plan, record: Record, *, token_scores: bool = False) -> pd.DataFrame:
    """The --rollouts log as a rollout table without tags, graded when it has golds (how: ``record.graded``);
    without token arrays unless ``token_scores`` (a token-level log, decoded with --tokenizer: `analysis.logs`)."""
    from reasonlens.analysis.steps import graded_note, prepare_text_log
    from reasonlens.sources.logs import read_layout

    rollouts = read_layout(plan.log, plan.config.rollouts)  # detected while planning
    if token_scores:
        from reasonlens.analysis.logs import decode_responses

        rollouts = decode_responses(rollouts, plan.tokenizer)
    rollouts, graded = prepare_text_log(rollouts, plan.config.answer_field, record.seconds, keep_tokens=token_scores)
    if graded:
        record.graded = graded_note(graded)
    return rollouts


def _read_training_run(plan: Plan) -> Inputs:
    """A `train-hicra` run logged tokens, logprobs, entropies and tags: read, never regenerate or re-tag
    unless the analysis lexicon differs from the run's."""
    from reasonlens.hierarchy.tag import TAG_VERSION
    from reasonlens.sources.logs import read_rollout_log

    rollouts = read_rollout_log(plan.run / "rollouts")
    logged = plan.run_config.get("lexicon") or {}
    same_tags = logged.get("tag_version") == TAG_VERSION and C.GRAMS in rollouts.columns
    return Inputs(rollouts, tokenizer=run_model(plan.run, plan.run_config),
                  tagged_with=logged.get("hash") if same_tags else None)


# --- tag ---------------------------------------------------------------------------------------


def tag_stage(inputs: Inputs, plan: Plan, record: Record, bar) -> pd.DataFrame:
    """The rollout table with the tag columns, tagging only steps no cache file holds for this lexicon."""
    from reasonlens.analysis.steps import tag_step

    rollouts = inputs.rollouts
    if inputs.tagged_with == plan.lexicon.hash:
        return rollouts  # a training run tagged with this very lexicon: its logged mask is kept
    frames = []
    steps = bar.add_task("tag", total=rollouts[C.STEP].nunique())
    for _, frame in rollouts.groupby(C.STEP, sort=True):
        frames.append(tag_step(frame.reset_index(drop=True), plan.out, plan.lexicon, record.seconds))
        bar.advance(steps)
    bar.remove_task(steps)
    return pd.concat(frames, ignore_index=True)


# --- aggregate, detect, render -----------------------------------------------------------------


def finish(plan: Plan, record: Record, inputs: Inputs, rollouts: pd.DataFrame, started: float, trackers=None):
    """Aggregate, detect phases, then write tables, lexicon.txt, figures, report.html, the trackers' new steps
    and summary.json last."""
    from reasonlens.metrics.dynamics import dynamics_table, top_grams
    from reasonlens.metrics.phases import detect_phases
    from reasonlens.analysis.result import Analysis

    out = plan.out
    (out / "summary.json").unlink(missing_ok=True)  # the folder is unfinished until the new one is written
    with record.timed("metrics"):
        dynamics = dynamics_table(rollouts, high_entropy_quantile=plan.config.high_entropy_quantile,
                                  bootstrap=plan.config.bootstrap, seed=plan.config.seed, seconds=record.seconds)
        phases = detect_phases(dynamics)
    summary = _summary(plan, record, inputs, rollouts, phases, started)
    write_outputs(plan, record, summary, dynamics, write_rollouts=lambda path: write_parquet(path, rollouts),
                  top_grams=lambda: top_grams(rollouts, n=12), example_rows=lambda: rollouts)
    summary["trackers"] = export_trackers(plan, record, dynamics, rollouts, summary["phases"], trackers)
    write_summary(out, summary, record, started)
    return Analysis(out, dynamics, rollouts, summary, plan.lexicon.phrases)


def export_trackers(plan: Plan, record: Record, dynamics: pd.DataFrame, rollouts: pd.DataFrame, phases: dict,
                    session=None):
    """Send the steps the --report-to trackers have not had yet; return where each wrote (None: no tracker)."""
    from reasonlens.report.trackers import TrackerSession, parse_report_to

    names = parse_report_to(plan.config.report_to)
    if session is None and not names:
        return None
    config, own = plan.config, session is None
    with record.timed("trackers"):
        if own:
            session = TrackerSession(names, plan.out, tensorboard_dir=config.tensorboard_dir,
                                     trackio_project=config.trackio_project, wandb_run=config.wandb_run)
        try:
            session.export(dynamics, rollouts, phases)
            return session.destinations
        finally:
            if own:
                session.close()


def _summary(plan: Plan, record: Record, inputs: Inputs, rollouts: pd.DataFrame, phases: dict,
             started: float) -> Summary:
    from reasonlens.hierarchy.tag import TAG_VERSION

    lexicon = plan.lexicon
    tokens = int(rollouts[C.LOGPROBS].map(len).sum()) if C.LOGPROBS in rollouts else 0
    log = None
    if plan.log is not None:
        from reasonlens.analysis.logs import log_summary

        log = log_summary(plan.log, rollouts, record.graded, rescored=plan.mode == "rescored")
    return Summary(
        mode=plan.mode, config=dataclasses.asdict(plan.config), out=str(plan.out), provenance=provenance(),
        runtime=record.runtime,
        lexicon={"name": lexicon.name, "hash": lexicon.hash, "size": len(lexicon.phrases), "file": "lexicon.txt"},
        tag_version=TAG_VERSION, tokenizer=inputs.tokenizer, problems=plan.problem_info,
        checkpoints=inputs.checkpoints,
        skipped=(plan.series.skipped if plan.series is not None else []) + record.skipped,
        run_config=plan.run_config, graded=record.graded, log=log, step_checkpoints=record.step_checkpoints,
        phases=phases, n_responses=len(rollouts), tokens_scored=tokens,
        seconds=round(time.time() - started, 2),
        peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1))
