"""The analysis in plain words: what the phases are, where they begin, and the numbers behind them.

Pure functions of the dynamics table and the ``detect_phases`` dict; the HTML report and the
comparison page render their sentences. Changes are given with their 95% interval where the table
has bootstrap interval columns (two steps' errors combined as independent), as "no change beyond
noise" when it covers zero, and never as a percentage of a value near zero.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from reasonlens.metrics import columns as dc

PHASE_NAMES = {"consolidation": "Procedural consolidation", "exploration": "Strategic exploration"}


NEAR_ZERO = 0.1  # below this |before|, a relative change says little ("rose 27% (0.004 → 0.005)"): none is given
Z95 = 1.96


def _fmt(value: float) -> str:
    """Two decimals, or two significant digits for values under 0.1 (so 0.004 never prints as 0.00)."""
    return f"{value:.2f}" if abs(value) >= NEAR_ZERO or value == 0 else f"{value:.2g}"


def change(before: float, after: float, unit: str = "", interval: tuple[float, float] | None = None) -> str:
    """A change in words: 'fell 38% (1.00 → 0.62)', or with the 95% ``interval`` of the change
    'rose by 0.12 (0.30 → 0.42; 95% interval +0.05 to +0.19)' / 'showed no change beyond noise (…)'.

    The relative change is given only when |before| >= NEAR_ZERO; otherwise the absolute one.
    """
    values = f"{_fmt(before)} → {_fmt(after)}{unit}"
    delta = after - before
    if interval is not None and all(math.isfinite(v) for v in interval):
        low, high = interval
        bounds = f"95% interval {low:+.2g} to {high:+.2g}"
        if low <= 0 <= high:
            return f"showed no change beyond noise ({values}; change {delta:+.2g}, {bounds})"
        return f"{'rose' if delta > 0 else 'fell'} by {abs(delta):.2g}{unit} ({values}; {bounds})"
    if math.isclose(before, after, rel_tol=1e-3, abs_tol=1e-12):
        return f"stayed at {_fmt(after)}{unit}"
    if abs(before) < NEAR_ZERO:
        return f"{'rose' if delta > 0 else 'fell'} by {abs(delta):.2g}{unit} ({values})"
    pct = abs(delta) / abs(before) * 100
    return f"{'rose' if delta > 0 else 'fell'} {pct:.0f}% ({values})"


def _value(dynamics: pd.DataFrame, step, column: str) -> float:
    if column not in dynamics.columns:
        return math.nan
    rows = dynamics.loc[dynamics[dc.STEP] == step, column]
    return float(rows.iloc[0]) if len(rows) else math.nan


def standard_error(dynamics: pd.DataFrame, rows: pd.Series, column: str) -> float:
    """Standard error of the mean of ``column`` over the selected rows, from their bootstrap intervals
    (se = width / (2 * 1.96), steps taken as independent); NaN without interval columns."""
    low, high = dc.ci_low(column), dc.ci_high(column)
    if low not in dynamics.columns or high not in dynamics.columns or not rows.any():
        return math.nan
    se = (dynamics.loc[rows, high] - dynamics.loc[rows, low]).to_numpy(dtype=float) / (2 * Z95)
    return float(np.sqrt(np.sum(se ** 2)) / se.size)


def change_interval(delta: float, se_before: float, se_after: float) -> tuple[float, float] | None:
    """95% interval of a change between two independent estimates with these standard errors."""
    se = math.hypot(se_before, se_after)
    return (delta - Z95 * se, delta + Z95 * se) if math.isfinite(se) else None


def _clauses(dynamics: pd.DataFrame, start, end, metrics: list[tuple[str, str, str]]) -> list[str]:
    """'<label> <change>' for each (column, label, unit) known at both steps, with its interval if known."""
    out = []
    for column, label, unit in metrics:
        a, b = _value(dynamics, start, column), _value(dynamics, end, column)
        if not (math.isnan(a) or math.isnan(b)):
            ses = [standard_error(dynamics, dynamics[dc.STEP] == s, column) for s in (start, end)]
            out.append(f"{label} {change(a, b, unit, change_interval(b - a, *ses))}")
    return out


CURVE_KEYS = ("steps", "values")  # the curve itself: already in the dynamics table and the figures


def _number(value) -> str:
    if isinstance(value, float):
        return "unavailable" if math.isnan(value) else f"{value:.4g}"
    if isinstance(value, dict):
        return "(" + ", ".join(f"{k.replace('_', ' ')} {_number(v)}" for k, v in value.items()) + ")"
    if isinstance(value, list):
        return "[" + ", ".join(_number(v) for v in value) + "]"
    return "unavailable" if value is None else str(value)


def format_evidence(evidence) -> str:
    """'key = value; …' with numbers to 4 significant digits; the raw curve (steps, values) left out."""
    if not isinstance(evidence, dict):
        return ""
    return "; ".join(f"{key.replace('_', ' ')} = {_number(value)}"
                     for key, value in evidence.items() if key not in CURVE_KEYS)


def phase_sentence(name: str, phase: dict, dynamics: pd.DataFrame) -> str:
    """One phase in words: where it starts or ends and how the curves moved, or why it was not found."""
    title = PHASE_NAMES.get(name, name.capitalize())
    reason = str(phase.get("reason") or "").removeprefix("not detected: ").rstrip(".")
    if not phase.get("detected"):
        return f"{title}: not detected: {reason or 'no reason given'}."
    step = phase["step"]
    interval = phase.get("step_interval")
    within = f" (step interval {interval[0]}–{interval[1]})" if interval and interval[0] != interval[1] else ""
    steps = sorted(dynamics[dc.STEP]) if len(dynamics) else [step]
    if name == "consolidation":
        head, start, end = f"{title} ends at step {step}{within}", steps[0], step
        metrics = [(dc.REL_PPL_EXECUTION, "execution RelPPL", ""),
                   (dc.ENTROPY_EXECUTION, "execution-token entropy", " nats")]
    else:
        head, start, end = f"{title} begins at step {step}{within}", step, steps[-1]
        metrics = [(dc.SG_SEMANTIC_ENTROPY_CHANGE, "SG semantic entropy (× first step)", ""),
                   (dc.ACCURACY, "accuracy", ""), (dc.MEAN_LENGTH, "mean length", "")]
    clauses = _clauses(dynamics, start, end, metrics)
    text = head + (f": from step {start} to {end}, " + ", ".join(clauses) if clauses and start != end else "")
    return text + "." + (f" Detector: {reason}." if reason else "")


def phase_sentences(phases: dict | None, dynamics: pd.DataFrame) -> list[tuple[str, str]]:
    """[(sentence, evidence text)] for consolidation then exploration (then any other phase)."""
    if not phases:
        return [("Phase detection was not run for this analysis.", "")]
    order = [n for n in PHASE_NAMES if n in phases] + [n for n in phases if n not in PHASE_NAMES]
    return [(phase_sentence(n, phases[n], dynamics), format_evidence(phases[n].get("evidence")))
            for n in order if isinstance(phases[n], dict)]


def quarter_trend(dynamics: pd.DataFrame, metrics: list[tuple[str, str]], min_steps: int = 8) -> str:
    """'Averaged over the first and the last quarter of the steps (5 each), mean reward rose 80% (0.30 → 0.54).'

    Per-step values of a training run rest on a few samples each; the mean of the first and last quarter
    says whether a curve moved beyond that noise. Empty below ``min_steps`` steps or without the columns.
    """
    table = dynamics.sort_values(dc.STEP)
    k = len(table) // 4
    if len(table) < min_steps or k < 2:
        return ""
    first, last = table.index.isin(table.index[:k]), table.index.isin(table.index[-k:])
    clauses = []
    for col, label in metrics:
        if col in table and table[col].head(k).notna().all() and table[col].tail(k).notna().all():
            a, b = float(table[col].head(k).mean()), float(table[col].tail(k).mean())
            ses = [standard_error(table, pd.Series(rows, index=table.index), col) for rows in (first, last)]
            clauses.append(f"{label} {change(a, b, interval=change_interval(b - a, *ses))}")
    return (f"Averaged over the first and the last quarter of the steps ({k} each), {' and '.join(clauses)}."
            if clauses else "")


def log_lines(log: dict) -> list[str]:
    """Where a --rollouts log's reward and correctness came from, what it cannot give, and disagreeing steps."""
    lines = []
    if log.get("framework"):
        sources = [f"the reward is {log['reward_from']}" if log.get("reward_from") else "no reward is logged",
                   f"correctness: {log['correct_from']}" if log.get("correct_from") else "no correctness"]
        lines.append(f"Rollout log written by {log['framework']}: {'; '.join(sources)}.")
    lines += [f"{what.capitalize()} metrics are unavailable: {why}." for what, why in (log.get("unavailable") or {}).items()]
    for gap in log.get("reward_accuracy_gaps") or []:
        lines.append(f"Warning, step {gap['step']}: the logged reward averages {gap['mean_reward']:.3g} but accuracy "
                     f"is {gap['accuracy']:.1%}. Likely cause: {gap['cause']}.")
    return lines


def overview(summary: dict, dynamics: pd.DataFrame, unavailable: list[str], text_only: bool) -> list[str]:
    """A few sentences: how much was analysed, how accuracy and length moved, what is unavailable.

    ``unavailable`` lists the all-NaN token-probability columns; ``text_only`` says why they are NaN.
    """
    lines = []
    if len(dynamics):
        steps = sorted(dynamics[dc.STEP])
        n = int(dynamics[dc.N_RESPONSES].sum()) if dc.N_RESPONSES in dynamics else summary.get(dc.N_RESPONSES)
        lines.append(f"{len(steps)} steps analysed (step {steps[0]} to {steps[-1]}), {n} responses in all.")
        unit = (f" {dynamics['length_unit'].dropna().iloc[0]}"
                if dc.LENGTH_UNIT in dynamics and dynamics[dc.LENGTH_UNIT].notna().any() else "")
        moved = _clauses(dynamics, steps[0], steps[-1], [(dc.ACCURACY, "accuracy", ""),
                                                          (dc.MEAN_LENGTH, "mean response length", unit)])
        if moved and steps[0] != steps[-1]:
            lines.append(f"From the first to the last step, {' and '.join(moved)}.")
        trend = quarter_trend(dynamics, [(dc.MEAN_REWARD, "mean reward"), (dc.ACCURACY, "accuracy")])
        if trend:
            lines.append(trend)
    lexicon = summary.get("lexicon") or {}
    if lexicon:
        lines.append(f"Planning tokens are those overlapping a strategic gram of the "
                     f"“{lexicon.get('name')}” lexicon (hash {lexicon.get('hash')}).")
    log = summary.get("log") or {}
    lines += log_lines(log)
    if "entropy" in (log.get("unavailable") or {}):
        unavailable = [c for c in unavailable if c not in dc.ENTROPY_COLUMNS]  # said why in log_lines
    if unavailable and text_only:
        lines.append("This analysis has no token probabilities (text-only): "
                     f"{', '.join(unavailable)} are unavailable, not estimated.")
    elif unavailable:
        lines.append(f"{', '.join(unavailable)} are unavailable at every step: no response token fell in "
                     "that class (e.g. no strategic gram matched).")
    return lines
