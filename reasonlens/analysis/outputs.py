"""The files of an analysis folder, written the same way for a table in memory and for a streamed log.

dynamics.csv/.parquet, lexicon.txt and rollouts.parquet, then the figures and report.html, and
summary.json last: a folder without it is unfinished.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import pandas as pd

from reasonlens.analysis.plan import Plan
from reasonlens.analysis.record import Record
from reasonlens.records import write_csv, write_json, write_parquet


def write_outputs(plan: Plan, record: Record, summary: dict, dynamics: pd.DataFrame, *,
                  write_rollouts: Callable[[Path], object], top_grams: Callable[[], pd.DataFrame],
                  example_rows: Callable[[], pd.DataFrame]) -> None:
    """The tables, lexicon.txt, ``write_rollouts(OUT/rollouts.parquet)`` and (with the report) the figures and
    report.html, whose example responses come from ``example_rows()``."""
    from reasonlens.hierarchy.lexicon import write_lexicon

    out = plan.out
    with record.timed("write"):
        write_rollouts(out / "rollouts.parquet")
        write_csv(out / "dynamics.csv", dynamics)
        write_parquet(out / "dynamics.parquet", dynamics)
        write_lexicon(out / "lexicon.txt", plan.lexicon)
    if plan.config.report:
        from reasonlens.report.figures import save_figures
        from reasonlens.report.html import write_report

        with record.timed("report"):
            figures = save_figures(out, dynamics, top_grams(), summary["phases"])
            write_report(out, summary=summary, dynamics=dynamics, rollouts=example_rows(), figures=figures)


def write_summary(out: Path, summary: dict, record: Record, started: float) -> None:
    """summary.json, with the wall time and the seconds per stage: written last."""
    summary["seconds"] = round(time.time() - started, 2)
    summary["stage_seconds"] = {stage: round(t, 3) for stage, t in record.seconds.items()}
    write_json(out / "summary.json", summary)
