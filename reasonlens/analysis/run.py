"""`analyze()`: plan -> read, generate or re-score -> tag -> aggregate -> detect -> render.

Everything the run needs is checked first (`plan.make_plan`: inputs, lexicon, problems, output
folder), so a bad option fails in seconds, before any model loads. Two stages are cached per step,
each file written atomically with a JSON sidecar holding its key: ``OUT/rollouts/step_NNNNNN.parquet``
(generation or re-scoring; `rollouts`, `rescoring`) and ``OUT/tags/step_NNNNNN.parquet`` (keyed by the
lexicon hash and the step's text). A killed run resumes where it stopped, a changed setting recomputes
instead of mixing results, and a fully cached rerun loads no model and runs no tagger.
``summary.json`` is written last: an analysis folder without it is unfinished. A --rollouts log alone
(text-only) goes step by step through `analysis.stream` instead: every core, bounded memory, the same tables.
"""

from __future__ import annotations

import time

import pandas as pd

from reasonlens import columns as C
from reasonlens.analysis.config import AnalyzeConfig
from reasonlens.analysis.plan import Inputs, Plan, make_plan, run_model
from reasonlens.analysis.summary import build_summary
from reasonlens.progress import progress_bar
from reasonlens.records import write_csv, write_json, write_parquet

def analyze(config: AnalyzeConfig, *, progress: bool = True):
    """Run the whole analysis described by ``config``; return the `Analysis` (its ``.path`` is the folder).

    Examples
    --------
    >>> from reasonlens import AnalyzeConfig, analyze          # doctest: +SKIP
    >>> a = analyze(AnalyzeConfig(path="ckpts/", samples=4))    # doctest: +SKIP
    >>> a.dynamics[["step", "rel_ppl_execution"]]               # doctest: +SKIP
    """
    started = time.time()
    plan = make_plan(config)
    plan.seconds["plan"] = time.time() - started  # discovery, problems, lexicon, output checks
    if plan.mode == "text-only":  # a log: step by step on every core, in bounded memory
        from reasonlens.analysis.stream import finish_stream, stream_log

        with progress_bar(progress) as bar:
            inputs, aggregates = stream_log(plan, bar)
        return finish_stream(plan, inputs, aggregates, started)
    with progress_bar(progress) as bar:
        inputs = read_inputs(plan, bar)
        rollouts = tag_stage(inputs, plan, bar)
    return finish(plan, inputs, rollouts, started)


# --- read or generate --------------------------------------------------------------------------


def read_inputs(plan: Plan, bar) -> Inputs:
    """The rollout table of the plan's source: a training run's logs, re-scored or generated rollouts."""
    if plan.mode == "training-run":
        with plan.timed("read"):
            return _read_training_run(plan)
    if plan.mode == "rescored":
        from reasonlens.analysis.rescore import rescore_log

        with plan.timed("read"):
            log = read_text_log(plan)
        return rescore_log(plan, log, bar)
    if plan.config.ray:
        from reasonlens.analysis.distributed import rollout_series_ray

        return rollout_series_ray(plan, bar)
    from reasonlens.analysis.generate import rollout_series

    return rollout_series(plan, bar)


def read_text_log(plan: Plan) -> pd.DataFrame:
    """The --rollouts log as a rollout table without token arrays or tags, graded when it has golds."""
    from reasonlens.analysis.steps import graded_note, prepare_text_log
    from reasonlens.sources.logs import read_rollout_log

    rollouts, graded = prepare_text_log(read_rollout_log(plan.config.rollouts), plan.config.answer_field, plan.seconds)
    if graded:
        plan.graded = graded_note(graded)
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


def tag_stage(inputs: Inputs, plan: Plan, bar) -> pd.DataFrame:
    """The rollout table with the tag columns, tagging only steps no cache file holds for this lexicon."""
    from reasonlens.analysis.steps import tag_step

    rollouts = inputs.rollouts
    if inputs.tagged_with == plan.lexicon.hash:
        return rollouts  # a training run tagged with this very lexicon: its logged mask is kept
    frames = []
    steps = bar.add_task("tag", total=rollouts[C.STEP].nunique())
    for _, frame in rollouts.groupby(C.STEP, sort=True):
        frames.append(tag_step(frame.reset_index(drop=True), plan.out, plan.lexicon, plan.seconds))
        bar.advance(steps)
    bar.remove_task(steps)
    return pd.concat(frames, ignore_index=True)


# --- aggregate, detect, render -----------------------------------------------------------------


def finish(plan: Plan, inputs: Inputs, rollouts: pd.DataFrame, started: float):
    """Aggregate, detect phases, then write tables, lexicon.txt, figures, report.html and summary.json last."""
    from reasonlens.hierarchy.lexicon import write_lexicon
    from reasonlens.metrics.dynamics import dynamics_table, top_grams
    from reasonlens.metrics.phases import detect_phases
    from reasonlens.analysis.result import Analysis

    out = plan.out
    (out / "summary.json").unlink(missing_ok=True)  # the folder is unfinished until the new one is written
    with plan.timed("metrics"):
        dynamics = dynamics_table(rollouts, high_entropy_quantile=plan.config.high_entropy_quantile)
        phases = detect_phases(dynamics)
    tokens = int(rollouts[C.LOGPROBS].map(len).sum()) if C.LOGPROBS in rollouts else 0
    summary = build_summary(plan, inputs, len(rollouts), tokens, phases, started)
    with plan.timed("write"):
        write_parquet(out / "rollouts.parquet", rollouts)
        write_csv(out / "dynamics.csv", dynamics)
        write_parquet(out / "dynamics.parquet", dynamics)
        write_lexicon(out / "lexicon.txt", plan.lexicon)
    if plan.config.report:
        from reasonlens.report.figures import save_figures
        from reasonlens.report.html import write_report

        with plan.timed("report"):
            figures = save_figures(out, dynamics, top_grams(rollouts, n=12), summary["phases"])
            write_report(out, summary=summary, dynamics=dynamics, rollouts=rollouts, figures=figures)
    summary["seconds"] = round(time.time() - started, 2)
    summary["stage_seconds"] = {stage: round(t, 3) for stage, t in plan.seconds.items()}
    write_json(out / "summary.json", summary)
    return Analysis(out, dynamics, rollouts, summary, plan.lexicon.phrases)
