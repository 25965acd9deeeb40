"""Drawing helpers shared by the report's figures: long-form lines per class and run, their bootstrap
bands, 'unavailable' panels and phase boundaries. Plot functions live in `figures` and `text_panels`.
"""

from __future__ import annotations

import pandas as pd

from reasonlens.metrics import columns as dc

PLANNING_COLOR = "#d95f02"
EXECUTION_COLOR = "#1f77b4"
ALL_COLOR = "#7f7f7f"
RUN_COLORS = ("#1f77b4", "#d95f02", "#2ca02c", "#9467bd", "#8c564b", "#e377c2")
LINESTYLES = ("-", "--", ":", "-.")
NO_TOKEN_PROBS = "unavailable: no token probabilities"
NO_DATA = "unavailable: no data"
PHASE_LABELS = {"consolidation": "consolidation ends", "exploration": "exploration begins"}
PHASE_COLORS = {"consolidation": "#555555", "exploration": "#2ca02c"}
BAND_ALPHA = 0.18


def axes_or_new(ax):
    """The given Axes, or one on a fresh pyplot-free Figure."""
    if ax is not None:
        return ax
    from matplotlib.figure import Figure

    return Figure(figsize=(6.4, 4.2), layout="constrained").add_subplot()


def unavailable_panel(ax, title: str, reason: str):
    """A panel that says why it has no curve."""
    ax.set_title(title)
    ax.text(0.5, 0.5, reason, ha="center", va="center", transform=ax.transAxes,
            fontsize=11, color="#666666", wrap=True)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_color("#cccccc")
    return ax


def runs_of(df: pd.DataFrame) -> list:
    return list(dict.fromkeys(df["run"])) if "run" in df.columns else [None]


def require_columns(df, columns: list[str], what: str) -> None:
    """Raise a ReasonlensError naming the missing columns of a plotted table."""
    missing = [c for c in columns if df is None or c not in df.columns]
    if missing:
        from reasonlens.errors import ReasonlensError

        have = [] if df is None else list(df.columns)
        raise ReasonlensError(f"{what}: the table lacks column(s) {missing} (it has {have[:12]}); "
                              "pass the dynamics table of `reasonlens analyze` (OUT/dynamics.parquet).")


def draw_lines(df, series, ax, *, title, ylabel, reason):
    """Draw ``series`` [(column, label, color)] against step; class = colour, run = line style."""
    require_columns(df, [dc.STEP] + [col for col, _, _ in series], title)
    ax = axes_or_new(ax)
    present = [s for s in series if df[s[0]].notna().any()]
    if not present:
        return unavailable_panel(ax, title, reason)
    runs, empty = runs_of(df), []
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


def restyle(ax, label: str, **props):
    """Set ``props`` on the lines whose label starts with ``label`` (every run's), then redraw the legend."""
    for line in ax.lines:
        if line.get_label().startswith(label):
            line.set(**props)
    if ax.lines:
        ax.legend(fontsize=8, loc="best")  # the legend copies line styles when drawn
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


