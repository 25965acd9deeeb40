"""The configuration of one `mine-grams` run: every field documented once (its help), from which the
CLI and the Parameters section of `StrategicGramMiner` are both generated."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Optional

from reasonlens.errors import ReasonlensError
from reasonlens.options import THREADS_HELP, documented, option

# The fields that are `StrategicGramMiner` parameters (the rest say what to read and write).
MINER_PARAMS = ("ngram_range", "min_df", "max_ngrams", "embedder", "batch_size", "clustering",
                "distance_threshold", "n_clusters", "top_fraction", "drop_fraction", "seed")


@documented
@dataclass
class MineConfig:
    """Settings of ``reasonlens mine-grams`` (`hierarchy.mining.mine_file`)."""

    # --- what comes in and goes out ----------------------------------------------------
    rollouts: Optional[Path] = option(None, "rollouts.parquet or .jsonl with response and correct/reward.")
    out: Optional[Path] = option(None, "Lexicon file to write (cluster report: <stem>.clusters.csv).")
    reward_threshold: float = option(0.5, "Without a 'correct' column: keep responses with reward > this.")
    threads: Optional[int] = option(None, THREADS_HELP)
    # --- n-grams -----------------------------------------------------------------------
    ngram_range: str = option("3,5", "Word n-gram lengths LOW,HIGH, inclusive (paper: 3,5); in Python also "
                                     "a pair (3, 5).")
    min_df: int = option(2, "Minimum number of responses an n-gram must occur in.")
    max_ngrams: int = option(5000, "At most this many n-grams (the most frequent) are embedded and clustered "
                                   "(clustering is quadratic in their number).")
    # --- embedding and clustering ------------------------------------------------------
    embedder: str = option("minilm", "'minilm' (bundled all-MiniLM-L6-v2), a sentence-transformers folder or "
                                     "hub id; in Python also any object whose .encode(texts) returns an (N, D) array.")
    batch_size: int = option(256, "Texts per embedding call.")
    clustering: str = option("agglomerative", "'agglomerative' (cosine --distance-threshold) or 'kmeans' "
                                              "(--n-clusters, default round(sqrt(N/2))).")
    distance_threshold: float = option(0.5, "Agglomerative cosine distance threshold.")
    n_clusters: Optional[int] = option(None, "Number of clusters (k-means; with agglomerative it replaces the "
                                             "threshold).")
    # --- selection ---------------------------------------------------------------------
    top_fraction: float = option(0.2, "Share of clusters kept, highest Cluster Document Frequency first "
                                      "(paper: 0.2).")
    drop_fraction: float = option(0.0, "Share of the mined phrases then dropped at random (the paper's "
                                       "robustness check).")
    seed: int = option(0, "Seed for k-means and the random drop.")

    def __post_init__(self):
        for name in ("rollouts", "out"):
            if getattr(self, name) is None:
                raise ReasonlensError(f"mine-grams needs --{name}: " + _field_help(name))
            setattr(self, name, Path(getattr(self, name)))
        parse_ngram_range(self.ngram_range)

    def miner_params(self) -> dict:
        """The keyword arguments of `StrategicGramMiner` (ngram_range as a pair)."""
        params = {name: getattr(self, name) for name in MINER_PARAMS}
        return params | {"ngram_range": parse_ngram_range(self.ngram_range)}


def parse_ngram_range(value) -> tuple[int, int]:
    """``"3,5"`` or ``(3, 5)`` -> ``(3, 5)``; the miner checks that 1 <= low <= high.

    >>> parse_ngram_range("2, 4"), parse_ngram_range([3, 5])
    ((2, 4), (3, 5))
    """
    parts = value.split(",") if isinstance(value, str) else list(value)
    try:
        low, high = (int(p) for p in parts)
    except (TypeError, ValueError):
        raise ReasonlensError(f"ngram_range={value!r} is not two integers: expected LOW,HIGH such as 3,5.") from None
    return low, high


def _field_help(name: str) -> str:
    return next(f.metadata["help"] for f in fields(MineConfig) if f.name == name)
