"""The panels a text-only analysis supports (no token probabilities): planning share, reflection rate,
strategic-gram entropies, their change, accuracy with pass@k, and length, each with its bootstrap band.

Text logs (verl, TRL) carry no log-probabilities, so the paper's perplexity and token-entropy panels
cannot be drawn; these are the curves the text itself holds, in the style of `report.figures`.
"""

from __future__ import annotations

import pandas as pd

from reasonlens.metrics import columns as dc
from reasonlens.report.figures import (ALL_COLOR, EXECUTION_COLOR, NO_DATA, PLANNING_COLOR, _lines, draw_phases,
                                       plot_sg_entropy_change)

NO_GRAMS = "unavailable: no strategic grams matched"
ACCURACY_COLOR = "#2ca02c"
LENGTH_COLOR = "#9467bd"


def _unit(df: pd.DataFrame) -> str:
    """'tokens' or 'words': what lengths and the planning share count."""
    known = df[dc.LENGTH_UNIT].dropna() if dc.LENGTH_UNIT in df.columns else pd.Series(dtype=object)
    return str(known.iloc[0]) if len(known) else "tokens"


def plot_planning_ratio(df: pd.DataFrame, *, ax=None):
    """Share of the response (words in text-only mode) that overlaps a strategic gram."""
    return _lines(df, [(dc.PLANNING_RATIO, "planning share", PLANNING_COLOR)], ax,
                  title="Planning share of the response", ylabel=f"share of {_unit(df)}", reason=NO_DATA)


def plot_reflection_rate(df: pd.DataFrame, *, ax=None):
    """Backtracking and verification markers per response."""
    return _lines(df, [(dc.REFLECTION_RATE, "reflection markers", EXECUTION_COLOR)], ax,
                  title="Reflection markers per response", ylabel="markers per response", reason=NO_DATA)


def plot_gram_entropies(df: pd.DataFrame, *, ax=None):
    """SG semantic entropy and the conditional procedural entropy H(next n-gram | gram), nats."""
    return _lines(df, [(dc.SG_SEMANTIC_ENTROPY, "SG semantic entropy", PLANNING_COLOR),
                       (dc.SG_CONDITIONAL_ENTROPY, "H(next | gram)", ALL_COLOR)], ax,
                  title="Strategic-gram entropies", ylabel="entropy (nats)", reason=NO_GRAMS)


def plot_accuracy_pass(df: pd.DataFrame, *, ax=None):
    """Accuracy and unbiased pass@k (k = the table's ``pass_k``)."""
    k = int(df[dc.PASS_K].dropna().iloc[0]) if dc.PASS_K in df.columns and df[dc.PASS_K].notna().any() else None
    series = [(dc.ACCURACY, "accuracy", ACCURACY_COLOR)]
    if dc.PASS_AT_K in df.columns and k != 1:  # pass@1 is the accuracy again
        series.append((dc.PASS_AT_K, f"pass@{k or 'k'}", EXECUTION_COLOR))
    return _lines(df, series, ax, title="Accuracy and pass@k", ylabel="share correct", reason=NO_DATA)


def plot_length(df: pd.DataFrame, *, ax=None):
    """Mean response length."""
    return _lines(df, [(dc.MEAN_LENGTH, "mean length", LENGTH_COLOR)], ax, title="Response length",
                  ylabel=f"mean length ({_unit(df)})", reason=NO_DATA)


TEXT_PANELS = (plot_planning_ratio, plot_reflection_rate, plot_gram_entropies, plot_sg_entropy_change,
               plot_accuracy_pass, plot_length)


def text_figure(dynamics: pd.DataFrame, phases: dict | None = None):
    """Six panels for a table without token probabilities, phase boundaries on each curve panel."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(16, 9), layout="constrained")
    for plot, ax in zip(TEXT_PANELS, fig.subplots(2, 3).flat):
        plot(dynamics, ax=ax)
        if ax.lines:
            draw_phases(ax, phases)
    fig.suptitle("Reasoning dynamics from text (no token probabilities)", fontsize=14, fontweight="bold")
    return fig
