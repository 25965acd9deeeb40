"""Matplotlib figures of the dynamics table: the paper's four-panel figure and its companions.

Plot functions follow seaborn: ``(df, *, ax=None) -> Axes``. ``df`` is the dynamics table (one row
per step) or the long-form comparison table (the same plus a ``run`` column: one line style per run).
Figures are built on ``matplotlib.figure.Figure`` (no pyplot state), so they work headless and in
Jupyter alike. Where the table has a metric's ``<metric>_ci_low``/``_ci_high`` columns (``analyze
--bootstrap``), its 95% interval is shaded around the curve (one band per class and run). Text-only
analyses (no token probabilities) get the panels text supports (`report.text_panels`); in a comparison,
a metric that is all NaN for every run becomes a panel saying so, never empty axes.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from reasonlens.metrics import columns as dc
from reasonlens.records import atomic_path
from reasonlens.report.plotting import (ALL_COLOR, EXECUTION_COLOR, NO_DATA, NO_TOKEN_PROBS, PLANNING_COLOR,
                                        RUN_COLORS, axes_or_new, draw_lines, require_columns, restyle, runs_of, unavailable_panel,
                                        draw_band, draw_phases, has_token_probabilities)
from reasonlens.report.text_panels import TEXT_PANELS

DPI = 120


def plot_rel_ppl(df: pd.DataFrame, *, ax=None):
    """Relative perplexity (PPL / PPL at the first step) of planning vs execution tokens."""
    ax = draw_lines(df, [(dc.REL_PPL_PLANNING, "planning", PLANNING_COLOR),
                     (dc.REL_PPL_EXECUTION, "execution", EXECUTION_COLOR)], ax,
                title="Relative perplexity by token class", ylabel="PPL / PPL(first step)",
                reason=NO_TOKEN_PROBS)
    if ax.lines:
        ax.axhline(1.0, color="#999999", linewidth=0.8, zorder=0)
    return ax


def plot_entropy(df: pd.DataFrame, *, ax=None):
    """Mean token entropy (nats) of planning, execution and all response tokens."""
    ax = draw_lines(df, [(dc.ENTROPY_PLANNING, "planning", PLANNING_COLOR),
                     (dc.ENTROPY_EXECUTION, "execution", EXECUTION_COLOR),
                     (dc.ENTROPY_ALL, "all tokens", ALL_COLOR)], ax,
                title="Token entropy by class", ylabel="entropy (nats)", reason=NO_TOKEN_PROBS)
    # a wide pale band behind the classes: with few planning tokens it equals execution
    return restyle(ax, "all tokens", zorder=1, linewidth=5, alpha=0.35, marker="")


def plot_sg_entropy_change(df: pd.DataFrame, *, ax=None):
    """Strategic-gram semantic entropy as a ratio to the first step (lexicon-size free)."""
    ax = draw_lines(df, [(dc.SG_SEMANTIC_ENTROPY_CHANGE, "SG semantic entropy", PLANNING_COLOR)], ax,
                title="Strategic-gram semantic entropy change", ylabel="H / H(first step)",
                reason="unavailable: no strategic grams matched")
    if ax.lines:
        ax.axhline(1.0, color="#999999", linewidth=0.8, zorder=0)
    return ax


def plot_accuracy_length(df: pd.DataFrame, *, ax=None):
    """Accuracy (left axis) and mean response length (right axis, dashed) per step."""
    ax = draw_lines(df, [(dc.ACCURACY, dc.ACCURACY, "#2ca02c")], ax, title="Accuracy and response length",
                ylabel=dc.ACCURACY, reason=NO_DATA)
    if not ax.lines or df[dc.MEAN_LENGTH].isna().all():
        return ax
    right = ax.twinx()
    for i, run in enumerate(runs_of(df)):
        sub = (df if run is None else df[df["run"] == run]).sort_values(dc.STEP)
        name, color = ("mean length", "#9467bd") if run is None else (f"mean length · {run}",
                                                                     RUN_COLORS[i % len(RUN_COLORS)])
        right.plot(sub[dc.STEP], sub[dc.MEAN_LENGTH], color=color, marker="s", markersize=3,
                   linewidth=1.4, linestyle=":" if run is not None else "--", label=name)
        draw_band(right, sub, dc.MEAN_LENGTH, color)
    unit = df[dc.LENGTH_UNIT].dropna().iloc[0] if dc.LENGTH_UNIT in df and df[dc.LENGTH_UNIT].notna().any() else "tokens"
    right.set_ylabel(f"mean length ({unit})", color="#9467bd")
    handles, labels = ax.get_legend_handles_labels()
    more, more_labels = right.get_legend_handles_labels()
    ax.legend(handles + more, labels + more_labels, fontsize=8, loc="best")
    return ax


def plot_overlap(df: pd.DataFrame, *, ax=None):
    """P(high entropy | planning) and P(planning | high entropy), with the planning base rate."""
    require_columns(df, [dc.STEP, dc.P_HIGH_GIVEN_PLANNING, dc.P_PLANNING_GIVEN_HIGH], "Planning vs high-entropy tokens")
    if not any(df[c].notna().any() for c in (dc.P_HIGH_GIVEN_PLANNING, dc.P_PLANNING_GIVEN_HIGH)):
        return unavailable_panel(axes_or_new(ax), "Planning vs high-entropy tokens", NO_TOKEN_PROBS)
    ax = draw_lines(df, [(dc.P_HIGH_GIVEN_PLANNING, "P(high | planning)", PLANNING_COLOR),
                     (dc.P_PLANNING_GIVEN_HIGH, "P(planning | high)", EXECUTION_COLOR),
                     (dc.PLANNING_RATIO, "P(planning) (base rate)", ALL_COLOR)], ax,
                title="Planning vs high-entropy tokens", ylabel="probability", reason=NO_TOKEN_PROBS)
    # a reference, not a measurement: P(planning | high) near it = no enrichment
    restyle(ax, "P(planning) (base rate)", linestyle=":")
    ax.set_ylim(0, 1.02)
    return ax


def plot_advantages(df: pd.DataFrame, *, ax=None):
    """Mean per-token credit on planning vs execution tokens (training runs: what the loss used)."""
    return draw_lines(df, [(dc.ADVANTAGE_PLANNING, "planning tokens", PLANNING_COLOR),
                       (dc.ADVANTAGE_EXECUTION, "execution tokens", EXECUTION_COLOR)], ax,
                  title="Mean advantage by token class", ylabel="mean advantage",
                  reason="no per-token advantages: only train-hicra runs log them")


def advantages_figure(dynamics: pd.DataFrame, phases: dict | None = None):
    """One-panel Figure of ``plot_advantages`` with phase boundaries."""
    return _single(plot_advantages, dynamics, phases)


def plot_top_grams(df: pd.DataFrame, *, ax=None, n: int = 12):
    """Heatmap of the ``n`` most frequent strategic grams (rows) over steps (columns).

    ``df`` is long-form: columns ``step, gram, count``.
    """
    title = "Top strategic grams per step"
    require_columns(df, [dc.STEP, "gram", "count"], title)
    ax = axes_or_new(ax)
    if df.empty or df["count"].sum() == 0:
        return unavailable_panel(ax, title, "unavailable: no strategic grams matched")
    top = df.groupby("gram")["count"].sum().nlargest(n).index
    grid = (df[df["gram"].isin(top)].pivot_table(index="gram", columns=dc.STEP, values="count",
                                                 aggfunc="sum", fill_value=0)
            .reindex(top))  # (grams, steps), most frequent gram first
    image = ax.imshow(grid.to_numpy(), aspect="auto", cmap="Oranges", interpolation="nearest")
    ax.set_yticks(range(len(grid.index)), [f'"{g}"' for g in grid.index], fontsize=9)
    stride = max(1, math.ceil(len(grid.columns) / 12))
    ticks = list(range(0, len(grid.columns), stride))
    ax.set_xticks(ticks, [str(grid.columns[i]) for i in ticks])
    if grid.size <= 120:
        peak = grid.to_numpy().max()
        for (r, c), value in pd.DataFrame(grid.to_numpy()).stack().items():
            ax.text(c, r, int(value), ha="center", va="center", fontsize=7,
                    color="white" if value > 0.6 * peak else "#333333")
    ax.set_xlabel(dc.STEP)
    ax.set_title(title)
    ax.figure.colorbar(image, ax=ax, label="occurrences", shrink=0.8)
    return ax


def dynamics_figure(dynamics: pd.DataFrame, phases: dict | None = None):
    """The paper's four panels (RelPPL, entropy by class, SG entropy change, accuracy+length), or for a
    table without token probabilities the six panels text supports (`text_panels.text_figure`).

    Returns a ``matplotlib.figure.Figure``; phase boundaries are drawn on every panel.
    """
    from matplotlib.figure import Figure

    if not has_token_probabilities(dynamics):
        return text_figure(dynamics, phases)

    fig = Figure(figsize=(13, 9), layout="constrained")
    axes = fig.subplots(2, 2)
    panels = (plot_rel_ppl, plot_entropy, plot_sg_entropy_change, plot_accuracy_length)
    for plot, ax in zip(panels, axes.flat):
        plot(dynamics, ax=ax)
        if ax.lines:
            draw_phases(ax, phases)
    fig.suptitle("Two-phase reasoning dynamics", fontsize=14, fontweight="bold")
    return fig


def text_figure(dynamics: pd.DataFrame, phases: dict | None = None):
    """Six panels for a table without token probabilities (`text_panels`), phase boundaries on each curve panel."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(16, 9), layout="constrained")
    panels = TEXT_PANELS[:3] + (plot_sg_entropy_change,) + TEXT_PANELS[3:]
    for plot, ax in zip(panels, fig.subplots(2, 3).flat):
        plot(dynamics, ax=ax)
        if ax.lines:
            draw_phases(ax, phases)
    fig.suptitle("Reasoning dynamics from text (no token probabilities)", fontsize=14, fontweight="bold")
    return fig


def _single(plot, df, phases=None, **kwargs):
    """A one-panel Figure from a plot function, with phase boundaries where it has curves."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 5.5), layout="constrained")
    ax = plot(df, ax=fig.add_subplot(), **kwargs)
    if ax.lines:
        draw_phases(ax, phases)
    return fig


def overlap_figure(dynamics: pd.DataFrame, phases: dict | None = None):
    """One-panel Figure of ``plot_overlap`` with phase boundaries."""
    return _single(plot_overlap, dynamics, phases)


def entropy_figure(dynamics: pd.DataFrame, phases: dict | None = None):
    """One-panel Figure of ``plot_entropy`` with phase boundaries."""
    return _single(plot_entropy, dynamics, phases)


def top_grams_figure(top_grams: pd.DataFrame, n: int = 12):
    """Figure of ``plot_top_grams``, its height fitted to the number of grams shown."""
    from matplotlib.figure import Figure

    height = 2.2 + 0.38 * min(n, top_grams["gram"].nunique() if len(top_grams) else 1)
    fig = Figure(figsize=(10, height), layout="constrained")
    plot_top_grams(top_grams, ax=fig.add_subplot(), n=n)
    return fig


def save_figure(fig, path: Path) -> Path:
    """Write ``fig`` as PNG atomically."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=DPI, format="png", facecolor="white")
    return Path(path)


def has_advantages(dynamics: pd.DataFrame) -> bool:
    """Whether the table has per-token credit columns (train-hicra runs)."""
    return dc.ADVANTAGE_PLANNING in dynamics.columns


def save_figures(out_dir, dynamics: pd.DataFrame, top_grams: pd.DataFrame | None = None, phases=None) -> list[Path]:
    """Write ``OUT/figures/{dynamics,overlap,advantages,top_grams}.png`` and return their paths.

    ``overlap.png`` only with token probabilities; ``advantages.png`` only for training runs (the
    dynamics table has advantage columns).

    Parameters
    ----------
    out_dir : analysis folder; figures go to ``out_dir/figures``.
    dynamics : the dynamics table (one row per step).
    top_grams : a ``(step, gram, count)`` table (``metrics.dynamics.top_grams``), or None to skip the heatmap.
    phases : ``detect_phases`` output, drawn as vertical lines.

    Returns
    -------
    list of Path, the PNGs written (dpi 120).

    Examples
    --------
    >>> save_figures("out", dynamics, top_grams(rollouts), summary["phases"])  # doctest: +SKIP
    [PosixPath('out/figures/dynamics.png'), PosixPath('out/figures/overlap.png'), ...]
    """
    folder = Path(out_dir) / "figures"
    paths = [save_figure(dynamics_figure(dynamics, phases), folder / "dynamics.png")]
    if has_token_probabilities(dynamics):  # text only: no high-entropy tokens to overlap with
        paths.append(save_figure(overlap_figure(dynamics, phases), folder / "overlap.png"))
    if has_advantages(dynamics):
        paths.append(save_figure(advantages_figure(dynamics, phases), folder / "advantages.png"))
    if top_grams is not None:
        paths.append(save_figure(top_grams_figure(top_grams), folder / "top_grams.png"))
    return paths
