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

PLANNING_COLOR = "#d95f02"
EXECUTION_COLOR = "#1f77b4"
ALL_COLOR = "#7f7f7f"
RUN_COLORS = ("#1f77b4", "#d95f02", "#2ca02c", "#9467bd", "#8c564b", "#e377c2")
LINESTYLES = ("-", "--", ":", "-.")
NO_TOKEN_PROBS = "unavailable: no token probabilities"
NO_DATA = "unavailable: no data"
PHASE_LABELS = {"consolidation": "consolidation ends", "exploration": "exploration begins"}
PHASE_COLORS = {"consolidation": "#555555", "exploration": "#2ca02c"}
DPI = 120
BAND_ALPHA = 0.18


def _axes(ax):
    """The given Axes, or one on a fresh pyplot-free Figure."""
    if ax is not None:
        return ax
    from matplotlib.figure import Figure

    return Figure(figsize=(6.4, 4.2), layout="constrained").add_subplot()


def _unavailable(ax, title: str, reason: str):
    """A panel that says why it has no curve."""
    ax.set_title(title)
    ax.text(0.5, 0.5, reason, ha="center", va="center", transform=ax.transAxes,
            fontsize=11, color="#666666", wrap=True)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_color("#cccccc")
    return ax


def _runs(df: pd.DataFrame) -> list:
    return list(dict.fromkeys(df["run"])) if "run" in df.columns else [None]


def _require(df, columns: list[str], what: str) -> None:
    """Raise a ReasonlensError naming the missing columns of a plotted table."""
    missing = [c for c in columns if df is None or c not in df.columns]
    if missing:
        from reasonlens.errors import ReasonlensError

        have = [] if df is None else list(df.columns)
        raise ReasonlensError(f"{what}: the table lacks column(s) {missing} (it has {have[:12]}); "
                              "pass the dynamics table of `reasonlens analyze` (OUT/dynamics.parquet).")


def _lines(df, series, ax, *, title, ylabel, reason):
    """Draw ``series`` [(column, label, color)] against step; class = colour, run = line style."""
    _require(df, [dc.STEP] + [col for col, _, _ in series], title)
    ax = _axes(ax)
    present = [s for s in series if df[s[0]].notna().any()]
    if not present:
        return _unavailable(ax, title, reason)
    runs, empty = _runs(df), []
    for i, run in enumerate(runs):
        sub = (df if run is None else df[df["run"] == run]).sort_values(dc.STEP)
        if run is not None and all(sub[col].isna().all() for col, _, _ in present):
            empty.append(str(run))
            continue
        for col, label, color in present:
            if sub[col].isna().all():
                continue  # e.g. no planning tokens in this run: no line, no legend entry
            if len(present) == 1 and run is not None:
                color = RUN_COLORS[i % len(RUN_COLORS)]
            name = label if run is None else f"{label} · {run}"
            ax.plot(sub[dc.STEP], sub[col], color=color, linestyle=LINESTYLES[i % len(LINESTYLES)],
                    marker="o", markersize=3.5, linewidth=1.8, label=name)
            draw_band(ax, sub, col, color)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 5, 10]))  # integer steps: no "2.25"
    ax.set_title(title)
    ax.set_xlabel(dc.STEP)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    if empty:
        ax.text(0.01, 0.01, f"{reason.split(':')[0]} for {', '.join(empty)}", transform=ax.transAxes,
                fontsize=8, color="#666666", va="bottom")
    return ax


def draw_band(ax, df: pd.DataFrame, column: str, color: str):
    """Shade ``column``'s 95% bootstrap interval against step where ``df`` has its interval columns."""
    low, high = dc.ci_low(column), dc.ci_high(column)
    if low not in df.columns or high not in df.columns:
        return ax
    known = df[low].notna() & df[high].notna()
    if known.any():
        ax.fill_between(df.loc[known, dc.STEP], df.loc[known, low], df.loc[known, high], color=color,
                        alpha=BAND_ALPHA, linewidth=0)
    return ax


def has_token_probabilities(df: pd.DataFrame) -> bool:
    """Whether any token-probability metric has a value (text-only analyses have none)."""
    return any(c in df.columns and df[c].notna().any() for c in dc.TOKEN_PROBABILITY_COLUMNS)


def _restyle(ax, label: str, **props):
    """Set ``props`` on the lines whose label starts with ``label`` (every run's), then redraw the legend."""
    for line in ax.lines:
        if line.get_label().startswith(label):
            line.set(**props)
    if ax.lines:
        ax.legend(fontsize=8, loc="best")  # the legend copies line styles when drawn
    return ax


def plot_rel_ppl(df: pd.DataFrame, *, ax=None):
    """Relative perplexity (PPL / PPL at the first step) of planning vs execution tokens."""
    ax = _lines(df, [(dc.REL_PPL_PLANNING, "planning", PLANNING_COLOR),
                     (dc.REL_PPL_EXECUTION, "execution", EXECUTION_COLOR)], ax,
                title="Relative perplexity by token class", ylabel="PPL / PPL(first step)",
                reason=NO_TOKEN_PROBS)
    if ax.lines:
        ax.axhline(1.0, color="#999999", linewidth=0.8, zorder=0)
    return ax


def plot_entropy(df: pd.DataFrame, *, ax=None):
    """Mean token entropy (nats) of planning, execution and all response tokens."""
    ax = _lines(df, [(dc.ENTROPY_PLANNING, "planning", PLANNING_COLOR),
                     (dc.ENTROPY_EXECUTION, "execution", EXECUTION_COLOR),
                     (dc.ENTROPY_ALL, "all tokens", ALL_COLOR)], ax,
                title="Token entropy by class", ylabel="entropy (nats)", reason=NO_TOKEN_PROBS)
    # a wide pale band behind the classes: with few planning tokens it equals execution
    return _restyle(ax, "all tokens", zorder=1, linewidth=5, alpha=0.35, marker="")


def plot_sg_entropy_change(df: pd.DataFrame, *, ax=None):
    """Strategic-gram semantic entropy as a ratio to the first step (lexicon-size free)."""
    ax = _lines(df, [(dc.SG_SEMANTIC_ENTROPY_CHANGE, "SG semantic entropy", PLANNING_COLOR)], ax,
                title="Strategic-gram semantic entropy change", ylabel="H / H(first step)",
                reason="unavailable: no strategic grams matched")
    if ax.lines:
        ax.axhline(1.0, color="#999999", linewidth=0.8, zorder=0)
    return ax


def plot_accuracy_length(df: pd.DataFrame, *, ax=None):
    """Accuracy (left axis) and mean response length (right axis, dashed) per step."""
    ax = _lines(df, [(dc.ACCURACY, dc.ACCURACY, "#2ca02c")], ax, title="Accuracy and response length",
                ylabel=dc.ACCURACY, reason=NO_DATA)
    if not ax.lines or df[dc.MEAN_LENGTH].isna().all():
        return ax
    right = ax.twinx()
    for i, run in enumerate(_runs(df)):
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
    _require(df, [dc.STEP, dc.P_HIGH_GIVEN_PLANNING, dc.P_PLANNING_GIVEN_HIGH], "Planning vs high-entropy tokens")
    if not any(df[c].notna().any() for c in (dc.P_HIGH_GIVEN_PLANNING, dc.P_PLANNING_GIVEN_HIGH)):
        return _unavailable(_axes(ax), "Planning vs high-entropy tokens", NO_TOKEN_PROBS)
    ax = _lines(df, [(dc.P_HIGH_GIVEN_PLANNING, "P(high | planning)", PLANNING_COLOR),
                     (dc.P_PLANNING_GIVEN_HIGH, "P(planning | high)", EXECUTION_COLOR),
                     (dc.PLANNING_RATIO, "P(planning) (base rate)", ALL_COLOR)], ax,
                title="Planning vs high-entropy tokens", ylabel="probability", reason=NO_TOKEN_PROBS)
    # a reference, not a measurement: P(planning | high) near it = no enrichment
    _restyle(ax, "P(planning) (base rate)", linestyle=":")
    ax.set_ylim(0, 1.02)
    return ax


def plot_advantages(df: pd.DataFrame, *, ax=None):
    """Mean per-token credit on planning vs execution tokens (training runs: what the loss used)."""
    return _lines(df, [(dc.ADVANTAGE_PLANNING, "planning tokens", PLANNING_COLOR),
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
    _require(df, [dc.STEP, "gram", "count"], title)
    ax = _axes(ax)
    if df.empty or df["count"].sum() == 0:
        return _unavailable(ax, title, "unavailable: no strategic grams matched")
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


def draw_phases(ax, phases: dict | None):
    """Vertical line + label at each detected phase boundary."""
    from matplotlib.transforms import blended_transform_factory, offset_copy

    if not phases:
        return ax
    # x in data (the step), y in axes fraction; shifted 3 points left so the line does not cross the label
    trans = offset_copy(blended_transform_factory(ax.transData, ax.transAxes), fig=ax.figure, x=-3, units="points")
    for name, phase in phases.items():
        if not isinstance(phase, dict) or not phase.get("detected") or phase.get(dc.STEP) is None:
            continue
        color = PHASE_COLORS.get(name, "#555555")
        ax.axvline(phase[dc.STEP], color=color, linestyle="--", linewidth=1.2, zorder=1)
        ax.text(phase[dc.STEP], 0.97, f" {PHASE_LABELS.get(name, name)} (step {phase['step']})",
                transform=trans, rotation=90, va="top", ha="right", fontsize=8, color=color)
    return ax


def dynamics_figure(dynamics: pd.DataFrame, phases: dict | None = None):
    """The paper's four panels (RelPPL, entropy by class, SG entropy change, accuracy+length), or for a
    table without token probabilities the six panels text supports (`text_panels.text_figure`).

    Returns a ``matplotlib.figure.Figure``; phase boundaries are drawn on every panel.
    """
    from matplotlib.figure import Figure

    if not has_token_probabilities(dynamics):
        from reasonlens.report.text_panels import text_figure

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
