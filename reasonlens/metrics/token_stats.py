"""Per-token statistics of one step: entropy and perplexity by token class, high-entropy overlap.

Inputs are the per-response arrays of the rollout table (ragged lists), pooled over the step's
responses: every token weighs the same, as in the paper's token-level averages. A class with no
tokens gives NaN, never 0.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

ArrayLike = Sequence[float] | np.ndarray


def pool(arrays: Sequence[ArrayLike], dtype=float) -> np.ndarray:
    """Concatenate ragged per-response arrays into one flat array: (sum T_i,)."""
    parts = [np.asarray(a, dtype=dtype).ravel() for a in arrays]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)


def mean_by_class(values: np.ndarray, planning: np.ndarray) -> dict[str, float]:
    """Mean of ``values`` (N,) over planning, execution and all tokens (``planning`` (N,), True = planning)."""
    values = np.asarray(values, dtype=float)
    planning = np.asarray(planning, dtype=bool)
    return {"planning": _mean(values[planning]), "execution": _mean(values[~planning]),
            "all": _mean(values)}


def perplexity_by_class(logprobs: np.ndarray, planning: np.ndarray) -> dict[str, float]:
    """PPL_c = exp(mean over tokens of class c of -log p(o_t)), for planning, execution and all tokens."""
    nll = mean_by_class(-np.asarray(logprobs, dtype=float), planning)
    return {name: math.exp(v) if np.isfinite(v) else math.nan for name, v in nll.items()}


def relative_to_first(values: Sequence[float]) -> np.ndarray:
    """Each value divided by the first one (the first step); all NaN when the first is NaN or 0."""
    values = np.asarray(values, dtype=float)
    if values.size == 0 or not np.isfinite(values[0]) or values[0] == 0:
        return np.full(values.shape, math.nan)
    return values / values[0]


def high_entropy_mask(entropies: np.ndarray, quantile: float = 0.3) -> np.ndarray:
    """True for the top ``quantile`` share of tokens by entropy (N,).

    The threshold is the entropy of the ceil(quantile * N)-th highest token; tokens tied with it
    are all high, so the share can exceed ``quantile`` on ties.
    """
    entropies = np.asarray(entropies, dtype=float)
    if entropies.size == 0:
        return np.zeros(0, dtype=bool)
    n_high = max(1, math.ceil(quantile * entropies.size))
    threshold = np.partition(entropies, entropies.size - n_high)[entropies.size - n_high]  # n_high-th highest
    return entropies >= threshold


def high_entropy_overlap(entropies: np.ndarray, planning: np.ndarray,
                         quantile: float = 0.3, high: np.ndarray | None = None) -> dict[str, float]:
    """P(high | planning) and P(planning | high) for one step's pooled tokens (N,); ``high`` reuses a mask."""
    high = high_entropy_mask(entropies, quantile) if high is None else high
    planning = np.asarray(planning, dtype=bool)
    both = float(np.sum(high & planning))
    n_plan, n_high = float(planning.sum()), float(high.sum())
    return {"p_high_given_planning": both / n_plan if n_plan else math.nan,
            "p_planning_given_high": both / n_high if n_high else math.nan}


def _mean(values: np.ndarray) -> float:
    """Mean, NaN for an empty array (no warning)."""
    return float(values.mean()) if values.size else math.nan
