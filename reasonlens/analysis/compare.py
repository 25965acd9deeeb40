"""`compare`: overlay the dynamics of several finished analyses (GRPO vs HICRA, seeds) in one table and page."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from reasonlens.analysis.result import load_analysis
from reasonlens.errors import ReasonlensError
from reasonlens.records import write_csv, write_text
from reasonlens.report import figures
from reasonlens.report.html import comparison_page


def compare(out_dirs: list, out, labels: list[str] | None = None) -> Path:
    """Overlay the curves of several analyses and return ``out``.

    Writes ``out/comparison.csv`` (the dynamics tables stacked, with a ``run`` column),
    ``out/figures/compare_dynamics.png``, ``compare_overlap.png`` (and ``compare_advantages.png`` for
    training runs) and ``out/comparison.html``.

    Examples
    --------
    >>> compare(["grpo/reasonlens", "hicra/reasonlens"], "cmp", labels=["GRPO", "HICRA"])  # doctest: +SKIP
    PosixPath('cmp')
    """
    if len(out_dirs) < 2:
        raise ReasonlensError(f"compare: got {len(out_dirs)} analysis folder(s); give at least two "
                              "(e.g. `reasonlens compare runs/grpo/reasonlens runs/hicra/reasonlens --out cmp`).")
    paths = [Path(p) for p in out_dirs]
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ReasonlensError(f"compare: --out {out} is an existing file, not a folder: choose a folder.")
    if any(out.resolve() == p.resolve() for p in paths):
        raise ReasonlensError(f"compare: --out {out} is one of the analyses compared; choose another folder.")
    runs = dict(zip(_labels(paths, labels), (load_analysis(p) for p in paths)))
    combined = pd.concat([run.dynamics.assign(run=label) for label, run in runs.items()], ignore_index=True)
    combined = combined[["run"] + [c for c in combined.columns if c != "run"]]
    write_csv(out / "comparison.csv", combined)
    pngs = [figures.save_figure(figures.dynamics_figure(combined), out / "figures" / "compare_dynamics.png"),
            figures.save_figure(figures.overlap_figure(combined), out / "figures" / "compare_overlap.png")]
    if figures.has_advantages(combined):
        pngs.append(figures.save_figure(figures.advantages_figure(combined),
                                        out / "figures" / "compare_advantages.png"))
    blocks = [(label, str(run.path), run.lexicon, run.phase_sentences()) for label, run in runs.items()]
    write_text(out / "comparison.html", comparison_page(blocks, combined, pngs))
    return out


def _labels(paths: list[Path], labels) -> list[str]:
    """User labels, else folder names (made unique with the parent's name when they clash)."""
    if labels:
        if len(labels) != len(paths):
            raise ReasonlensError(f"compare: got {len(labels)} labels for {len(paths)} analyses; "
                                  "give one --label per analysis folder, in the same order, or none.")
        return [str(x) for x in labels]
    names = [p.resolve().name for p in paths]
    if len(set(names)) < len(names):
        names = [f"{p.resolve().parent.name}/{p.resolve().name}" for p in paths]
    return names if len(set(names)) == len(names) else [f"{n} #{i + 1}" for i, n in enumerate(names)]
