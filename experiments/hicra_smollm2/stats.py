"""The study's statistics: a nested bootstrap over seeds and, within each seed, prompts.

Runs differ by seed (initialisation and sampled prompts), and a run's metric is a mean over its
evaluation prompts, so both levels are resampled: seeds with replacement, then each drawn seed's
prompts with replacement. The percentile interval of the mean of such means never leaves the range
of the data, so bounded metrics (accuracy) stay in [0, 1], unlike a t-interval (0.56 to 1.01 on three
seeds). With per-seed values only (the committed results.csv), the prompt level is a single value and
the bootstrap is over seeds; with three seeds its 95% interval is then the seeds' range. Paired method
differences use the same resampling on per-seed (per-prompt) differences: same seeds, same prompts.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

REPLICATES = 4000


def nested_bootstrap(groups: Sequence[Sequence[float]], n: int = REPLICATES, seed: int = 0,
                     level: float = 0.95) -> tuple[float, float, float, int]:
    """Mean over seeds of each seed's mean over prompts, its percentile interval, and the number of seeds.

    ``groups``: one array per seed of per-prompt values (a single value when only the seed's mean is known).
    NaN values are left out; a seed without values is dropped. Fewer than two values in all: NaN interval.

    >>> nested_bootstrap([[1.0], [0.0], [1.0]])[0]  # doctest: +ELLIPSIS
    0.666...
    """
    clean = [g[~np.isnan(g)] for g in (np.asarray(x, dtype=float).ravel() for x in groups)]
    clean = [g for g in clean if g.size]
    if not clean:
        return math.nan, math.nan, math.nan, 0
    point = float(np.mean([g.mean() for g in clean]))
    if len(clean) == 1 and clean[0].size == 1:
        return point, math.nan, math.nan, 1
    rng = np.random.default_rng(seed)
    per_seed = np.column_stack([g[rng.integers(0, g.size, (n, g.size))].mean(axis=1) for g in clean])  # (n, S)
    drawn = rng.integers(0, len(clean), (n, len(clean)))  # (n, S) seeds drawn by each replicate
    replicates = np.take_along_axis(per_seed, drawn, axis=1).mean(axis=1)
    low, high = np.percentile(replicates, [50 * (1 - level), 50 * (1 + level)])
    return point, float(low), float(high), len(clean)
