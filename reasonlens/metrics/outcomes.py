"""Outcome metrics over sampled answers: unbiased pass@k (Chen et al. 2021) and its k grid."""

from __future__ import annotations

import math
from typing import Iterable

import numpy as np

from ..errors import ReasonlensError


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k of one prompt with ``n`` samples, ``c`` of them correct: 1 - C(n-c,k)/C(n,k).

    Computed as 1 - prod_{i=n-c+1}^{n} (1 - k/i), which never forms the huge binomials.
    """
    if not 0 <= c <= n or k < 1 or k > n:
        raise ReasonlensError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}: "
                              "use k no larger than the samples per prompt.")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def mean_pass_at_k(groups: Iterable[tuple[int, int]], k: int) -> float:
    """Mean pass@k over prompts given as (n, c) pairs; prompts with fewer than k samples are skipped.

    NaN when no prompt has k samples.
    """
    groups = [(n, c) for n, c in groups if n >= k]
    value = {pair: pass_at_k(*pair, k) for pair in set(groups)}  # prompts share a few (n, c): each computed once
    return float(np.mean([value[pair] for pair in groups])) if groups else math.nan


def powers_of_two_upto(n: int) -> list[int]:
    """[1, 2, 4, ...] up to and including the largest power of 2 <= n (empty for n < 1)."""
    return [2 ** i for i in range(int(math.log2(n)) + 1)] if n >= 1 else []
