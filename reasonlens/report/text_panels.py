"""The panels a text-only analysis supports (no token probabilities): planning share, reflection rate,
strategic-gram entropies, their change, accuracy with pass@k, and length, each with its bootstrap band.

Text logs (verl, TRL) carry no log-probabilities, so the paper's perplexity and token-entropy panels
cannot be drawn; these are the curves the text itself holds. `figures.text_figure` lays them out.
"""

from __future__ import annotations

import pandas as pd

from reasonlens.metrics import columns as dc
from reasonlens.report.plotting import ALL_COLOR, EXECUTION_COLOR, NO_DATA, PLANNING_COLOR, draw_lines

NO_GRAMS = "unavailable: no strategic grams matched"
ACCURACY_COLOR = "#2ca02c"
LENGTH_COLOR = "#9467bd"


def _unit(df: pd.DataFrame) -> str:
    """'tokens' or 'words': what lengths and the planning share count."""
    known = df[dc.LENGTH_UNIT].dropna() if dc.LENGTH_UNIT in df.columns else pd.Series(dtype=object)
    return str(known.iloc[0]) if len(known) else "tokens"


def plot_planning_ratio(df: pd.DataFrame, *, ax=None):
    """Share of the response (words in text-only mode) that overlaps a strategic gram."""
    return draw_lines(df, [(dc.PLANNING_RATIO, "planning share", PLANNING_COLOR)], ax,
                  title="Planning share of the response", ylabel=f"share of {_unit(df)}", reason=NO_DATA)


def plot_reflection_rate(df: pd.DataFrame, *, ax=None):
    """Backtracking and verification markers per response."""
    return draw_lines(df, [(dc.REFLECTION_RATE, "reflection markers", EXECUTION_COLOR)], ax,
                  title="Reflection markers per response", ylabel="markers per response", reason=NO_DATA)


def plot_gram_entropies(df: pd.DataFrame, *, ax=None):
    """SG semantic entropy and the conditional procedural entropy H(next n-gram | gram), nats."""
    return draw_lines(df, [(dc.SG_SEMANTIC_ENTROPY, "SG semantic entropy", PLANNING_COLOR),
                       (dc.SG_CONDITIONAL_ENTROPY, "H(next | gram)", ALL_COLOR)], ax,
                  title="Strategic-gram entropies", ylabel="entropy (nats)", reason=NO_GRAMS)


def plot_accuracy_pass(df: pd.DataFrame, *, ax=None):
    """Accuracy and unbiased pass@k (k = the table's ``pass_k``)."""
    k = int(df[dc.PASS_K].dropna().iloc[0]) if dc.PASS_K in df.columns and df[dc.PASS_K].notna().any() else None
    series = [(dc.ACCURACY, "accuracy", ACCURACY_COLOR)]
    if dc.PASS_AT_K in df.columns and k != 1:  # pass@1 is the accuracy again
        series.append((dc.PASS_AT_K, f"pass@{k or 'k'}", EXECUTION_COLOR))
    return draw_lines(df, series, ax, title="Accuracy and pass@k", ylabel="share correct", reason=NO_DATA)


def plot_length(df: pd.DataFrame, *, ax=None):
    """Mean response length."""
    return draw_lines(df, [(dc.MEAN_LENGTH, "mean length", LENGTH_COLOR)], ax, title="Response length",
                  ylabel=f"mean length ({_unit(df)})", reason=NO_DATA)


TEXT_PANELS = (plot_planning_ratio, plot_reflection_rate, plot_gram_entropies, plot_accuracy_pass, plot_length)
"""In figure order; `figures.text_figure` puts the SG entropy change panel after the gram entropies."""
