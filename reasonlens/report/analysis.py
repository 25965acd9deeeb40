"""The notebook API: ``load_analysis(OUT)`` reads a finished analysis back; ``compare`` overlays several.

An analysis folder holds ``summary.json`` (config, lexicon, phases), ``dynamics.parquet`` (or
``.csv``) and ``rollouts.parquet``, as ``reasonlens analyze`` writes them.
"""

from __future__ import annotations

import functools
import html
import json
from pathlib import Path

import pandas as pd

from reasonlens import columns as C
from reasonlens.errors import ReasonlensError
from reasonlens.records import write_csv, write_text
from reasonlens.report import figures, highlight, narrative
from reasonlens.report import html as report_html


class Analysis:
    """A finished analysis: ``.dynamics`` (one row per step), ``.rollouts`` (one row per response),
    ``.summary`` (summary.json), ``.phases``, ``.config``, and plot methods returning Figures.

    Examples
    --------
    >>> a = load_analysis("runs/grpo/reasonlens")  # doctest: +SKIP
    >>> a.plot_entropy()                            # doctest: +SKIP
    """

    def __init__(self, path: Path, dynamics: pd.DataFrame, rollouts: pd.DataFrame, summary: dict):
        self.path = Path(path)
        self.dynamics = dynamics
        self.rollouts = rollouts
        self.summary = summary
        self._tagger = None

    def __repr__(self) -> str:
        return (f"Analysis({str(self.path)!r}, steps={len(self.dynamics)}, "
                f"responses={len(self.rollouts)}, lexicon={self.lexicon.get('name')!r})")

    @property
    def phases(self) -> dict:
        return self.summary.get("phases") or {}

    @property
    def config(self) -> dict:
        return self.summary.get("config") or {}

    @property
    def lexicon(self) -> dict:
        return self.summary.get("lexicon") or {}

    def phase_sentences(self) -> list[str]:
        """Each phase in plain words (with its evidence), as the report states them."""
        return [s + (f" Evidence: {e}" if e else "") for s, e in narrative.phase_sentences(self.phases, self.dynamics)]

    def plot_dynamics(self):
        """The paper's four-panel figure with phase boundaries."""
        return figures.dynamics_figure(self.dynamics, self.phases)

    def plot_entropy(self):
        """Token entropy of planning, execution and all tokens per step."""
        return figures.entropy_figure(self.dynamics, self.phases)

    def plot_overlap(self):
        """P(high entropy | planning) and P(planning | high entropy) per step."""
        return figures.overlap_figure(self.dynamics, self.phases)

    def plot_advantages(self):
        """Mean per-token credit on planning vs execution tokens (train-hicra runs)."""
        return figures.advantages_figure(self.dynamics, self.phases)

    def plot_top_grams(self, n: int = 12):
        """Heatmap of the most frequent strategic grams per step (counted with the analysis lexicon)."""
        from reasonlens.metrics.dynamics import top_grams

        return figures.top_grams_figure(top_grams(self.rollouts, self.tagger()), n=n)

    def tagger(self):
        """The PlanningTagger of the analysis' lexicon (built once, on first use)."""
        if self._tagger is None:
            from reasonlens.hierarchy.tagger import PlanningTagger

            self._tagger = PlanningTagger(self.config.get("lexicon") or self.lexicon.get("name") or "paper")
        return self._tagger

    @functools.cached_property
    def tokenizer(self):
        """The tokenizer that decodes ``token_ids`` (recorded in summary.json), or None if it cannot load."""
        from reasonlens.models.loading import load_tokenizer

        spec = self.summary.get("tokenizer")
        try:
            return load_tokenizer(spec) if spec else None
        except (ReasonlensError, OSError, ValueError):
            return None  # a moved or deleted model folder: fall back to span highlighting

    def show_response(self, i: int, *, tokenizer=None):
        """Response ``i`` (row position in ``.rollouts``) with planning tokens highlighted, as HTML.

        Token-level highlighting with entropy on hover uses ``tokenizer``, by default the one the
        analysis recorded; without one, planning spans are highlighted in the plain text."""
        if not 0 <= i < len(self.rollouts):
            n = len(self.rollouts)
            raise ReasonlensError(f"show_response: index i={i} is out of range; this analysis has "
                                  f"{n} responses (rows of .rollouts): pass 0..{n - 1}.")
        row = self.rollouts.iloc[i]
        tokenizer = tokenizer if tokenizer is not None else self.tokenizer
        has_tokens = (highlight.token_texts(row, tokenizer) is not None
                      and highlight.is_list(row.get(C.PLANNING_MASK)))
        body = highlight.response_html(row, tokenizer=tokenizer, tagger=None if has_tokens else self.tagger())
        markup = (f"<style>{highlight.RESPONSE_CSS}</style><p><b>{html.escape(report_html.example_meta(row))}"
                  f"</b></p><div class=\"resp\">{body}</div>")
        try:
            from IPython.display import HTML
        except ImportError:
            return _HTMLText(markup)
        return HTML(markup)


class _HTMLText(str):
    """HTML markup that Jupyter-like front ends render (used when IPython is not installed)."""

    def _repr_html_(self) -> str:
        return str(self)


def _read_dynamics(path: Path) -> pd.DataFrame:
    if (path / "dynamics.parquet").exists():
        return pd.read_parquet(path / "dynamics.parquet")
    return pd.read_csv(path / "dynamics.csv")


def load_analysis(out_dir) -> Analysis:
    """Read the analysis folder ``out_dir`` written by ``reasonlens analyze``.

    Raises ReasonlensError naming what is missing when ``out_dir`` is not an analysis folder.

    Examples
    --------
    >>> a = load_analysis("runs/grpo/reasonlens")            # doctest: +SKIP
    >>> a.dynamics[["step", "rel_ppl_execution"]]; a.phases  # doctest: +SKIP
    """
    path = Path(out_dir)
    missing = [name for name, ok in (("summary.json", (path / "summary.json").is_file()),
                                     ("dynamics.parquet or dynamics.csv",
                                      (path / "dynamics.parquet").is_file() or (path / "dynamics.csv").is_file()))
               if not ok]
    if not path.is_dir() or missing:
        raise ReasonlensError(f"load_analysis: {str(path)!r} is not an analysis folder "
                              f"({'it does not exist' if not path.is_dir() else 'missing ' + ', '.join(missing)}); "
                              "pass the output folder of `reasonlens analyze` (its --out).")
    try:
        summary = json.loads((path / "summary.json").read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ReasonlensError(f"load_analysis: {path / 'summary.json'} is not valid JSON ({err}); "
                              "rerun `reasonlens analyze` to rewrite it.") from None
    rollouts_file = path / "rollouts.parquet"
    rollouts = pd.read_parquet(rollouts_file) if rollouts_file.is_file() else pd.DataFrame(columns=[C.STEP])
    return Analysis(path, _read_dynamics(path), rollouts, summary)


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


def _comparison_html(runs: dict[str, Analysis], combined: pd.DataFrame, pngs: list[Path]) -> str:
    """The comparison page: one block per run (phases in words), the figures, the combined table."""
    esc = html.escape
    blocks = []
    for label, run in runs.items():
        items = "".join(f"<li>{esc(s)}</li>" for s in run.phase_sentences())
        blocks.append(f"<h3>{esc(label)}</h3><p class=\"sub\">{esc(str(run.path))} · lexicon "
                      f"{esc(str(run.lexicon.get('name')))} ({esc(str(run.lexicon.get('hash')))})</p><ul>{items}</ul>")
    hashes = {run.lexicon.get("hash") for run in runs.values()}
    warn = ("<p><b>Note:</b> these analyses use different strategic-gram lexicons, so planning/execution "
            "curves are not strictly comparable.</p>" if len(hashes) > 1 else "")
    body = ["<h1>reasonlens comparison</h1>", warn, "<h2>Runs and phases</h2>", *blocks,
            "<h2>Figures</h2>", *(report_html.figure_html(p) for p in pngs),
            "<h2>Combined dynamics table</h2>", report_html.table_html(combined)]
    return report_html.page("reasonlens comparison", "\n".join(body))


def compare(out_dirs: list, out, labels: list[str] | None = None) -> Path:
    """Overlay the curves of several analyses (GRPO vs HICRA, seeds) and return ``out``.

    Writes ``out/comparison.csv`` (the dynamics tables stacked, with a ``run`` column),
    ``out/figures/compare_dynamics.png``, ``compare_overlap.png`` and ``out/comparison.html``.

    Examples
    --------
    >>> compare(["grpo/reasonlens", "hicra/reasonlens"], "cmp", labels=["GRPO", "HICRA"])  # doctest: +SKIP
    PosixPath('cmp')
    """
    if len(out_dirs) < 2:
        raise ReasonlensError(f"compare: got {len(out_dirs)} analysis folder(s); give at least two "
                              "(e.g. `reasonlens compare runs/grpo/reasonlens runs/hicra/reasonlens --out cmp`).")
    paths = [Path(p) for p in out_dirs]
    runs = dict(zip(_labels(paths, labels), (load_analysis(p) for p in paths)))
    combined = pd.concat([run.dynamics.assign(run=label) for label, run in runs.items()], ignore_index=True)
    combined = combined[["run"] + [c for c in combined.columns if c != "run"]]
    out = Path(out)
    write_csv(out / "comparison.csv", combined)
    pngs = [figures.save_figure(figures.dynamics_figure(combined), out / "figures" / "compare_dynamics.png"),
            figures.save_figure(figures.overlap_figure(combined), out / "figures" / "compare_overlap.png")]
    if "advantage_planning" in combined.columns:
        pngs.append(figures.save_figure(figures.advantages_figure(combined),
                                        out / "figures" / "compare_advantages.png"))
    write_text(out / "comparison.html", _comparison_html(runs, combined, pngs))
    return out
