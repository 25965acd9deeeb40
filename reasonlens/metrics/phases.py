"""Two-phase detection (method.md section 4) from the dynamics table, with its evidence.

Phase 1 (procedural consolidation) ends at the knee of the execution relative-perplexity curve:
a steep fall followed by a flat stretch. Phase 2 (strategic exploration) starts where the SG
semantic entropy begins a sustained rise. Both are found the same way (`locate_boundary`):

1. noise: the standard error of each point from its bootstrap interval, (hi - lo) / (2 * 1.96)
   (``analyze --bootstrap``), pooled as sigma = sqrt(mean se^2). Without interval columns, the
   curve-shape fallback: sigma = 1.4826 * MAD(second differences) / sqrt(6), the robust standard
   deviation around any piecewise-linear trend; floored at 1e-3 * max|y| so noise-free curves work;
2. a continuous two-line ("hinge") fit y = a + b min(x - x_k, 0) + c max(x - x_k, 0), weighted by
   1/se^2, at every candidate boundary k at once, and a single line for comparison. If the points
   scatter around the best hinge more than their noise allows (bootstrap: chi-square above its 99th
   percentile, e.g. steps that differ by more than sampling; fallback: any excess, since the MAD of a
   few points can undershoot), the noise is scaled up to that scatter;
3. gates: the hinge must beat the line by ``penalty_scale * log(n)`` in chi-square, and the fitted
   fall (knee) or rise (onset) must reach ``min_effect * sigma``; a knee also needs the slope after it
   to be at most ``flat_ratio`` of the slope before, an onset a rise whose 3-point running median never
   falls back by more than that;
4. the boundary's step interval: the k whose hinge chi-square is within 3.84 (chi-square(1) 95%)
   of the best.
Defaults (min_effect 3, penalty_scale 1) come from the power study in experiments/phase_detector
(README there): on flat curves with our runs' noise they raise a false alarm in at most 2.3% of curves
for 8 to 64 checkpoints; 80% power needs a knee of 4-8 standard errors and a rise of 4.

Checkpoints are treated as equally spaced for the change search; slopes in the evidence are per
step unit. A curve that is missing (text-only logs), too short, flat or pure noise gives
``detected: False`` with the reason, never an invented boundary.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..errors import ReasonlensError
from ..records import to_jsonable
from . import columns as dc


def detect_phases(dynamics: pd.DataFrame, *, min_steps: int = 4, min_effect: float = 3.0,
                  flat_ratio: float = 0.25, min_rise_steps: int = 3, penalty_scale: float = 1.0) -> dict:
    """Find the end of procedural consolidation and the onset of strategic exploration.

    Parameters
    ----------
    dynamics : the dynamics table (``step``, ``rel_ppl_execution``, ``sg_semantic_entropy``).
    min_steps : fewest finite points a curve needs.
    min_effect : a fall/rise must exceed this many noise standard deviations.
    flat_ratio : after the knee, |slope| must be at most this share of the fall's slope.
    min_rise_steps : a rise is sustained if it lasts at least this many steps (differences).
    penalty_scale : the hinge must beat a line by penalty_scale * log(n) in chi-square (higher = fewer boundaries).

    Returns
    -------
    dict (JSON-able) ``{"consolidation": {...}, "exploration": {...}}``, each with ``detected``,
    ``step`` (int or None), ``step_interval`` ([low, high] steps, or None), ``evidence`` (curve, steps,
    values, noise and its source, hinge fit, line fit, penalty, thresholds, ``compared``: what was
    compared with what) and ``reason`` in plain words. With ``<curve>_ci_low/_ci_high`` columns the
    noise of each point is its bootstrap standard error.

    Example
    -------
    >>> detect_phases(dynamics_table(rollouts))["exploration"]["step"]  # doctest: +SKIP
    """
    if dc.STEP not in dynamics.columns:
        raise ReasonlensError(f"dynamics table lacks '{dc.STEP}' (has {list(dynamics.columns)}): "
                              "pass the output of dynamics_table.")
    if min_steps < 3 or min_effect <= 0 or not 0 < flat_ratio < 1 or min_rise_steps < 1 or penalty_scale <= 0:
        raise ReasonlensError(f"detect_phases settings out of range: min_steps={min_steps} (>= 3), "
                              f"min_effect={min_effect} (> 0), flat_ratio={flat_ratio} (in (0, 1)), "
                              f"min_rise_steps={min_rise_steps} (>= 1), penalty_scale={penalty_scale} (> 0).")
    gates = dict(min_steps=min_steps, min_effect=min_effect, flat_ratio=flat_ratio,
                 min_rise_steps=min_rise_steps, penalty_scale=penalty_scale)
    table = dynamics.sort_values(dc.STEP)
    return {
        "consolidation": _phase(table, dc.REL_PPL_EXECUTION, "consolidation", gates,
                                missing="no token probabilities (text-only rollouts): execution "
                                        "perplexity is unavailable"),
        "exploration": _phase(table, dc.SG_SEMANTIC_ENTROPY, "exploration", gates,
                              missing="no strategic grams were found at any step"),
    }


def robust_noise(y: np.ndarray) -> float:
    """Robust standard deviation of ``y`` (n,) around a piecewise-linear trend, from its second differences."""
    y = np.asarray(y, dtype=float)
    floor = 1e-3 * float(np.max(np.abs(y))) if y.size else 0.0
    if y.size < 3:
        return max(floor, 1e-12)
    d2 = np.diff(y, 2)
    mad = float(np.median(np.abs(d2 - np.median(d2))))
    return max(1.4826 * mad / math.sqrt(6), floor, 1e-12)


Z95 = 1.96  # the normal quantile the intervals' width is read with: se = width / (2 * 1.96)
HINGE_CHI2 = 3.841458820694124  # chi-square(1) 95%: the boundary's step interval


def standard_errors(table: pd.DataFrame, column: str) -> np.ndarray | None:
    """Each point's bootstrap standard error (hi - lo) / (2 * 1.96), or None without usable interval columns.

    A point with a zero-width interval (a ratio's first step, 1 by definition) gets the median of the
    others: its noise is carried by them, and a weight of 1/0 would pin the fits to it.
    """
    low, high = dc.ci_low(column), dc.ci_high(column)
    if low not in table.columns or high not in table.columns:
        return None
    se = (table[high].to_numpy(dtype=float) - table[low].to_numpy(dtype=float)) / (2 * Z95)
    positive = se[np.isfinite(se) & (se > 0)]
    if not np.isfinite(se).all() or positive.size < max(2, se.size // 2):
        return None
    return np.where(se > 0, se, float(np.median(positive)))


def hinge_fits(x: np.ndarray, y: np.ndarray, se: np.ndarray, candidates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted hinge fits at each candidate index k: coefficients (K, 3) = (a, b before, c after) and chi2 (K,)."""
    w = 1.0 / se  # (n,)
    d = x[None, :] - x[candidates][:, None]  # (K, n)
    design = np.stack([np.ones_like(d), np.minimum(d, 0.0), np.maximum(d, 0.0)], axis=2) * w[None, :, None]
    target = y * w
    gram = np.einsum("kni,knj->kij", design, design)  # (K, 3, 3)
    coef = np.linalg.solve(gram, np.einsum("kni,n->ki", design, target)[..., None])[..., 0]
    resid = np.einsum("kni,ki->kn", design, coef) - target
    return coef, np.sum(resid ** 2, axis=1)


def line_chi2(x: np.ndarray, y: np.ndarray, se: np.ndarray) -> tuple[float, float]:
    """Slope and chi-square of the weighted least-squares line through the curve."""
    w = 1.0 / se
    design = np.column_stack([np.ones_like(x), x]) * w[:, None]
    coef, *_ = np.linalg.lstsq(design, y * w, rcond=None)
    return float(coef[1]), float(np.sum((design @ coef - y * w) ** 2))


def _phase(table, column, kind, gates, missing) -> dict:
    """Run one phase finder on one curve of the table, or say why it cannot run."""
    if column not in table.columns or not table[column].notna().any():
        return _result(None, {"curve": column, "settings": gates}, missing)
    sub = table[table[column].notna()]
    return locate_boundary(sub[dc.STEP].to_numpy(), sub[column].to_numpy(dtype=float),
                           standard_errors(sub, column), kind, column=column, **gates)


def locate_boundary(steps: np.ndarray, y: np.ndarray, se: np.ndarray | None, kind: str, *, column: str = "",
                    min_steps: int = 4, min_effect: float = 3.0, flat_ratio: float = 0.25, min_rise_steps: int = 3,
                    penalty_scale: float = 1.0) -> dict:
    """The consolidation knee (``kind="consolidation"``) or exploration onset of one curve, with evidence.

    ``steps``, ``y`` and ``se`` (per-point standard errors, or None for the curve-shape fallback) are (n,).
    Returns the phase record of `detect_phases` (``detected``, ``step``, ``step_interval``, ``evidence``, ``reason``).
    """
    gates = dict(min_steps=min_steps, min_effect=min_effect, flat_ratio=flat_ratio, min_rise_steps=min_rise_steps,
                 penalty_scale=penalty_scale)
    evidence = {"curve": column, "settings": gates, "steps": list(steps), "values": list(y)}
    last = len(y) - 1 - (2 if kind == "consolidation" else min_rise_steps)  # points needed after the boundary
    if len(y) < min_steps or last < 1:
        return _result(None, evidence, f"too few steps: {len(y)} with a finite '{column}', need {min_steps}")
    fit = _fit(np.arange(len(y), dtype=float), y, se, np.arange(1, last + 1), penalty_scale)
    fit["min_change"] = min_effect * fit["sigma"]
    evidence |= {k: fit[k] for k in ("noise_source", "noise_sigma", "scatter_inflation", "penalty", "min_change",
                                     "line_chi2", "hinge_chi2", "hinge_step", "slope_before", "slope_after")
                 if k in fit} | {"hinge_step": int(steps[fit["k"]])}
    finder = _consolidation if kind == "consolidation" else _exploration
    index, extra, reason = finder(steps, y, fit, gates)
    evidence |= extra
    if index is None:
        return _result(None, evidence, reason)
    inside = [int(k) for k in fit["candidates"][fit["chi2"] - fit["chi2"].min() <= HINGE_CHI2]] + [index]
    return _result(int(steps[index]), evidence, reason, [int(steps[min(inside)]), int(steps[max(inside)])])


def _fit(x, y, se, candidates, penalty_scale) -> dict:
    """Noise, the best hinge (index k, slopes per point) and the line's chi-square, noise scaled to any excess scatter."""
    from scipy.special import chdtri  # chi-square quantiles without importing scipy.stats (~1 s)

    floor, bootstrap = max(1e-3 * float(np.max(np.abs(y))), 1e-12), se is not None
    if bootstrap:
        source, se = "bootstrap standard errors of the points", np.maximum(se, floor)
    else:
        source, se = "curve shape (MAD of second differences; no interval columns)", np.full(y.size, robust_noise(y))
    coef, chi2 = hinge_fits(x, y, se, candidates)
    slope, chi2_line = line_chi2(x, y, se)
    best, dof = int(np.argmin(chi2)), max(len(y) - 4, 1)  # hinge: a, b, c and k
    excess = chi2[best] / dof
    # bootstrap: only scatter sampling noise would rarely reach; fallback: any excess over the MAD estimate
    scale = math.sqrt(excess) if excess > (chdtri(dof, 0.01) / dof if bootstrap else 1.0) else 1.0
    out = {"noise_source": source, "sigma": float(np.sqrt(np.mean(se ** 2))) * scale, "candidates": candidates,
           "chi2": chi2 / scale ** 2, "line_slope": slope, "line_chi2": chi2_line / scale ** 2,
           "hinge_chi2": float(chi2[best]) / scale ** 2, "k": int(candidates[best]),
           "slope_before": float(coef[best, 1]), "slope_after": float(coef[best, 2]),
           "penalty": penalty_scale * math.log(len(y))}
    out["noise_sigma"] = out["sigma"]
    if scale > 1:
        out["scatter_inflation"] = scale
    return out


def _consolidation(steps, y, fit, gates):
    """Knee: the hinge beats the line, the fitted fall before it reaches min_effect sigma, the slope after is flat.

    Returns (index or None, extra evidence, reason)."""
    k, before, after = fit["k"], fit["slope_before"], fit["slope_after"]
    fall, gain = -before * k, fit["line_chi2"] - fit["hinge_chi2"]
    compared = (f"fitted fall {fall:.3g} up to step {int(steps[k])} vs {gates['min_effect']:g} x noise sigma "
                f"{fit['sigma']:.2g} = {fit['min_change']:.2g}; slope after {after:.2g} vs {gates['flat_ratio']:g} x "
                f"slope before {before:.2g} per point; hinge beats a line by chi2 {gain:.3g} vs penalty "
                f"{fit['penalty']:.3g}")
    extra = {"fall_before_knee": fall, "compared": compared}
    if fall < fit["min_change"]:
        total = -fit["line_slope"] * (len(y) - 1)
        return None, extra, (f"the curve falls by {total:.3g}, less than {gates['min_effect']:g} noise sigmas "
                             f"({fit['min_change']:.2g})" if total < fit["min_change"] else
                             "no steep fall followed by a flat stretch")
    if abs(after) > gates["flat_ratio"] * abs(before) or gain < fit["penalty"]:
        return None, extra, "no steep fall followed by a flat stretch"
    return k, extra, (f"execution relative perplexity fell by {fall:.3g} (noise sigma {fit['sigma']:.2g}) until step "
                      f"{int(steps[k])}, then flattened (slope {after:.2g} vs {before:.2g} per point)")


def _exploration(steps, y, fit, gates):
    """Onset: where a rise of >= min_effect sigma starts that lasts to the end and never falls back.

    The hinge's bend if it beats the line, else the first step when the whole curve rises.
    Returns (index or None, extra evidence, reason)."""
    k, before, after, n = fit["k"], fit["slope_before"], fit["slope_after"], len(y)
    gain, min_change = fit["line_chi2"] - fit["hinge_chi2"], fit["min_change"]
    if gain >= fit["penalty"] and after > max(before, 0.0) and before * k < min_change:
        index, rise = k, after * (n - 1 - k)
    else:
        index, rise = 0, fit["line_slope"] * (n - 1)
    smooth = pd.Series(y[index:]).rolling(3, center=True, min_periods=1).median().to_numpy()  # one outlier is no fall
    fallback = float(np.max(np.maximum.accumulate(smooth) - smooth))  # deepest fall below the running peak
    compared = (f"fitted rise {rise:.3g} from step {int(steps[index])} vs {gates['min_effect']:g} x noise sigma "
                f"{fit['sigma']:.2g} = {min_change:.2g}; deepest fall back {fallback:.3g}; hinge beats a line by "
                f"chi2 {gain:.3g} vs penalty {fit['penalty']:.3g}")
    extra = {"rise_to_end": rise, "fall_back": fallback, "compared": compared}
    if rise < min_change or fallback > min_change or n - 1 - index < gates["min_rise_steps"]:
        return None, extra, (f"no sustained rise of at least {gates['min_effect']:g} noise sigmas ({min_change:.2g}) "
                             f"over {gates['min_rise_steps']} or more steps")
    return index, extra, (f"SG semantic entropy rises by {rise:.3g} from step {int(steps[index])} to the end and "
                          f"never falls back by more than {min_change:.2g} ({gates['min_effect']:g} noise sigmas)")


def _result(step, evidence, reason, interval=None) -> dict:
    """One phase's JSON-able record (numpy scalars to Python, NaN to None); ``step_interval`` [low, high]."""
    return {"detected": step is not None, "step": step, "step_interval": interval,
            "evidence": to_jsonable(evidence), "reason": reason}
