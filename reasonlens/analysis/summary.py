"""summary.json: its layout (`Summary`) and how an analysis fills it (`build_summary`), for every mode."""

from __future__ import annotations

import dataclasses
import resource
import time
from typing import Any, Optional, TypedDict

from reasonlens.analysis.plan import Inputs, Plan
from reasonlens.records import provenance


class Summary(TypedDict, total=False):
    """Layout of OUT/summary.json: the numbers' origin sits next to them."""

    mode: str                  # "checkpoints" | "training-run" | "eval" | "text-only" | "rescored"
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
    step_checkpoints: Optional[list]  # rescored: [{"step", "checkpoint", "checkpoint_step", "exact"}], skipped steps
    phases: dict[str, Any]     # detect_phases(): consolidation / exploration, with evidence
    n_responses: int
    tokens_scored: int
    seconds: float             # wall time of the whole analysis
    stage_seconds: dict        # plan, read, load, generate, score, grade, tag, metrics, write, report; summed
                               # over steps (and over workers: more than `seconds` when they overlap)
    workers: Any               # text-only: processes that ran the steps (an int, or "ray")
    peak_rss_mb: float         # this process's peak resident memory


def build_summary(plan: Plan, inputs: Inputs, n_responses: int, tokens: int, phases: dict, started: float) -> Summary:
    """The summary of a finished analysis (``seconds`` and ``stage_seconds`` are set again when it is written)."""
    from reasonlens.hierarchy.tag import TAG_VERSION

    lexicon = plan.lexicon
    return Summary(
        mode=plan.mode, config=dataclasses.asdict(plan.config), out=str(plan.out), provenance=provenance(),
        runtime=plan.runtime,
        lexicon={"name": lexicon.name, "hash": lexicon.hash, "size": len(lexicon.phrases), "file": "lexicon.txt"},
        tag_version=TAG_VERSION, tokenizer=inputs.tokenizer, problems=plan.problem_info,
        checkpoints=inputs.checkpoints, skipped=plan.series.skipped if plan.series is not None else [],
        run_config=plan.run_config, graded=plan.graded, step_checkpoints=plan.step_checkpoints,
        phases=phases, n_responses=n_responses, tokens_scored=tokens,
        seconds=round(time.time() - started, 2),
        peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1))
