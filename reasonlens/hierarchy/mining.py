"""Mine a Strategic-Gram lexicon from correct responses (method.md section 2, paper section 2.1).

n-grams (3-5 words) -> embed each unique n-gram once -> cluster -> Cluster Document Frequency
(distinct responses with at least one member) -> keep the top 20% of clusters -> their n-grams.

Decisions where the paper is silent (recorded in ``config_``): words are lower-cased letter runs
(inner ' and - kept, U+2019 -> '), a comma stays on its word ("wait, no"); digits and other
punctuation (. ! ? : ; = ( ) ...) end a phrase, so no n-gram crosses them or holds a number; only
n-grams found in at least ``min_df`` responses, at most the ``max_ngrams`` most frequent, are
embedded (clustering is quadratic in their number); agglomerative clustering uses average linkage
on cosine distance, threshold 0.5 by default (on a planted corpus MiniLM gave one cluster per
family at 0.5, and split families at 0.3); k-means runs on unit-normalised embeddings.
"""

from __future__ import annotations

import math
import re
import textwrap
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from reasonlens.errors import ReasonlensError
from reasonlens.hierarchy.lexicon import Lexicon
from reasonlens.hierarchy.mine_config import MINER_PARAMS, MineConfig
from reasonlens.options import field_docs

CLUSTERINGS = ("agglomerative", "kmeans")
_BREAK = re.compile(r"[^\w\s',\-]|[\d_]+")
_WORD = re.compile(r"[^\W\d_]+(?:['\-][^\W\d_]+)*,?")


def extract_ngrams(text: str, ngram_range: tuple[int, int] = (3, 5)) -> list[str]:
    """Word n-grams of ``text`` (with repeats), lower-cased, never across a phrase break.

    >>> extract_ngrams("Wait, no. Let's try 2 ways", (2, 3))
    ['wait, no', "let's try"]
    """
    low, high = ngram_range
    out = []
    for segment in _BREAK.split(text.lower().replace("\u2019", "'")):
        words = _WORD.findall(segment)
        for n in range(low, high + 1):
            for i in range(len(words) - n + 1):
                out.append(" ".join(words[i:i + n]).rstrip(","))
    return out


def index_documents(responses: Iterable[str], ngram_range) -> tuple[dict[str, int], list[np.ndarray]]:
    """Vocabulary of all n-grams (gram -> id) and, per response, the ids of its distinct n-grams."""
    vocab: dict[str, int] = {}
    docs = []
    for text in responses:
        ids = {vocab.setdefault(g, len(vocab)) for g in extract_ngrams(text, ngram_range)}
        docs.append(np.fromiter(ids, dtype=np.int64, count=len(ids)))
    return vocab, docs


def cluster_document_frequency(doc_labels: Sequence[np.ndarray], n_clusters: int) -> np.ndarray:
    """CDF(c) = number of documents with at least one n-gram labelled c (labels < 0 are ignored).

    >>> cluster_document_frequency([np.array([0, 0, 1]), np.array([1, -1]), np.array([])], 3).tolist()
    [1, 2, 0]
    """
    cdf = np.zeros(n_clusters, dtype=np.int64)
    for labels in doc_labels:
        present = np.unique(np.asarray(labels, dtype=np.int64))
        cdf[present[present >= 0]] += 1
    return cdf


def select_top_clusters(cdf: np.ndarray, sizes: np.ndarray, top_fraction: float) -> np.ndarray:
    """Boolean mask of the ``round(top_fraction * K)`` (at least 1) clusters with the highest CDF.

    Ties are broken by larger size, then lower cluster id, so the choice is deterministic.
    >>> select_top_clusters(np.array([5, 9, 5, 1]), np.array([1, 1, 3, 1]), 0.5).tolist()
    [False, True, True, False]
    """
    k = len(cdf)
    n_keep = min(k, max(1, int(round(top_fraction * k))))
    order = np.lexsort((np.arange(k), -np.asarray(sizes), -np.asarray(cdf)))
    keep = np.zeros(k, dtype=bool)
    keep[order[:n_keep]] = True
    return keep


def cluster_embeddings(x: np.ndarray, clustering: str, *, distance_threshold: float,
                       n_clusters: int | None, seed: int) -> np.ndarray:
    """Cluster labels (N,) of unit-normalised embeddings x (N, D)."""
    if len(x) < 2:
        return np.zeros(len(x), dtype=np.int64)
    if clustering == "kmeans":
        from sklearn.cluster import KMeans

        k = n_clusters or max(2, int(round(math.sqrt(len(x) / 2))))
        return KMeans(n_clusters=min(k, len(x)), random_state=seed, n_init=4).fit_predict(x)
    from sklearn.cluster import AgglomerativeClustering

    if n_clusters is not None:
        model = AgglomerativeClustering(n_clusters=min(n_clusters, len(x)), metric="cosine", linkage="average")
    else:
        model = AgglomerativeClustering(n_clusters=None, distance_threshold=distance_threshold,
                                        metric="cosine", linkage="average")
    return model.fit_predict(x)


class _SentenceEmbedder:
    """A sentence-transformers model behind the ``.encode(list[str]) -> (N, D) array`` interface."""

    def __init__(self, spec, batch_size: int):
        from sentence_transformers import SentenceTransformer

        if spec == "minilm":
            from reasonlens.models.bundled import embedder_path

            spec = str(embedder_path())
        try:
            self.model = SentenceTransformer(str(spec), device="cpu", trust_remote_code=False)
        except (OSError, ValueError) as err:
            raise ReasonlensError(
                f"embedding model {spec!r} could not be loaded ({err}): expected 'minilm' (bundled), a "
                "sentence-transformers folder or a cached hub id") from err
        self.batch_size = batch_size

    def encode(self, texts: list[str]) -> np.ndarray:
        return self.model.encode(texts, batch_size=self.batch_size, show_progress_bar=False,
                                 convert_to_numpy=True)


def embed(embedder, texts: Sequence[str], batch_size: int) -> np.ndarray:
    """Unit-normalised embeddings (N, D), encoding ``batch_size`` texts per call."""
    parts = [np.asarray(embedder.encode(list(texts[i:i + batch_size])), dtype=np.float32)
             for i in range(0, len(texts), batch_size)]
    x = np.concatenate(parts) if parts else np.zeros((0, 1), dtype=np.float32)  # (N, D)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


class StrategicGramMiner(BaseEstimator):
    """Learn a strategic-gram lexicon from correct responses (a scikit-learn estimator: get_params,
    clone and repr come from `BaseEstimator`; ``__init__`` only stores; ``fit`` validates).

    Parameters
    ----------
{params}

    Attributes
    ----------
    lexicon_ : Lexicon named ``mined-<hash>``.
    clusters_ : DataFrame with columns cluster, members (list[str]), size, cdf, selected;
        sorted by cdf descending.
    ngrams_ : DataFrame with columns gram, df, cluster.
    config_ : dict of the settings used (JSON-able: ``get_params()`` with the embedder named) and what
        was found (n_responses, n_ngrams_embedded, n_clusters_found), for provenance.

    Examples
    --------
    >>> miner = StrategicGramMiner(embedder=my_encoder).fit(correct_responses)  # doctest: +SKIP
    >>> miner.lexicon_.phrases[:3]  # doctest: +SKIP
    """

    def __init__(self, *, ngram_range=(3, 5), embedder="minilm", clustering="agglomerative",
                 distance_threshold=0.5, n_clusters=None, top_fraction=0.2, drop_fraction=0.0,
                 min_df=2, max_ngrams=5000, batch_size=256, seed=0):
        self.ngram_range = ngram_range
        self.embedder = embedder
        self.clustering = clustering
        self.distance_threshold = distance_threshold
        self.n_clusters = n_clusters
        self.top_fraction = top_fraction
        self.drop_fraction = drop_fraction
        self.min_df = min_df
        self.max_ngrams = max_ngrams
        self.batch_size = batch_size
        self.seed = seed

    def _validate(self) -> None:
        low, high = self.ngram_range
        checks = [
            (isinstance(low, int) and isinstance(high, int) and 1 <= low <= high,
             "ngram_range", self.ngram_range, "two integers 1 <= low <= high, e.g. (3, 5)"),
            (self.clustering in CLUSTERINGS, "clustering", self.clustering, f"one of {list(CLUSTERINGS)}"),
            (0 < self.distance_threshold <= 2, "distance_threshold", self.distance_threshold,
             "a cosine distance in (0, 2], e.g. 0.5"),
            (self.n_clusters is None or self.n_clusters >= 1, "n_clusters", self.n_clusters, "None or >= 1"),
            (0 < self.top_fraction <= 1, "top_fraction", self.top_fraction, "a fraction in (0, 1], e.g. 0.2"),
            (0 <= self.drop_fraction < 1, "drop_fraction", self.drop_fraction, "a fraction in [0, 1), e.g. 0.3"),
            (self.min_df >= 1, "min_df", self.min_df, "an integer >= 1"),
            (self.max_ngrams >= 2, "max_ngrams", self.max_ngrams, "an integer >= 2"),
            (self.batch_size >= 1, "batch_size", self.batch_size, "an integer >= 1"),
        ]
        for ok, name, value, expected in checks:
            if not ok:
                raise ReasonlensError(f"StrategicGramMiner {name}={value!r} is invalid: expected {expected}")

    def _vocabulary(self, responses: list[str]):
        """Kept n-grams (most frequent first), their document frequency, and each doc's kept ids."""
        vocab, docs = index_documents(responses, tuple(self.ngram_range))
        df = np.bincount(np.concatenate(docs), minlength=len(vocab)) if vocab else np.zeros(0, int)
        grams = np.array(list(vocab), dtype=object)
        order = np.lexsort((grams, -df)) if len(grams) else np.zeros(0, int)
        kept = order[df[order] >= self.min_df][: self.max_ngrams]
        if len(kept) < 2:
            raise ReasonlensError(
                f"only {len(kept)} n-gram(s) occur in >= min_df={self.min_df} of the {len(responses)} "
                "responses: expected at least 2; give more (correct) responses or lower min_df")
        return grams[kept].tolist(), df[kept], kept, len(vocab), docs

    def fit(self, responses: Iterable[str], y=None) -> "StrategicGramMiner":
        """Mine the lexicon from ``responses`` (the correct ones; filter before calling)."""
        self._validate()
        responses = [r for r in responses if isinstance(r, str)]
        grams, df, kept, n_vocab, docs = self._vocabulary(responses)
        embedder = self.embedder
        if isinstance(embedder, (str, Path)):  # a name or folder (str has .encode too: test the type)
            embedder = _SentenceEmbedder(embedder, self.batch_size)
        x = embed(embedder, grams, self.batch_size)  # (N, D)
        labels = cluster_embeddings(x, self.clustering, distance_threshold=self.distance_threshold,
                                    n_clusters=self.n_clusters, seed=self.seed)
        self._summarise(grams, df, labels, kept, n_vocab, docs)
        return self

    def _summarise(self, grams, df, labels, kept, n_vocab, docs) -> None:
        k = int(labels.max()) + 1
        label_of = np.full(n_vocab, -1, dtype=np.int64)
        label_of[kept] = labels
        cdf = cluster_document_frequency([label_of[d] for d in docs], k)
        sizes = np.bincount(labels, minlength=k)
        selected = select_top_clusters(cdf, sizes, self.top_fraction)
        members = [[] for _ in range(k)]
        for gram, label in zip(grams, labels):  # grams are most frequent first
            members[label].append(gram)
        self.clusters_ = pd.DataFrame({"cluster": np.arange(k), "members": members, "size": sizes,
                                       "cdf": cdf, "selected": selected})
        self.clusters_ = self.clusters_.sort_values(["cdf", "size", "cluster"], ascending=[False, False, True],
                                                    ignore_index=True)
        self.ngrams_ = pd.DataFrame({"gram": grams, "df": df, "cluster": labels})
        phrases = [g for g, label in zip(grams, labels) if selected[label]]
        if self.drop_fraction > 0:
            rng = np.random.default_rng(self.seed)
            n_drop = min(int(round(self.drop_fraction * len(phrases))), len(phrases) - 1)  # keep >= 1
            dropped = set(rng.choice(len(phrases), size=n_drop, replace=False).tolist())
            phrases = [p for i, p in enumerate(phrases) if i not in dropped]
        lexicon = Lexicon("mined", tuple(phrases))
        self.lexicon_ = Lexicon(f"mined-{lexicon.hash}", lexicon.phrases)
        self.config_ = self.get_params() | {
            "ngram_range": list(self.ngram_range),
            "embedder": (str(self.embedder) if isinstance(self.embedder, (str, Path))
                         else type(self.embedder).__name__),
            "n_responses": len(docs), "n_ngrams_embedded": len(grams), "n_clusters_found": k,
        }


if StrategicGramMiner.__doc__:  # None under python -OO
    StrategicGramMiner.__doc__ = StrategicGramMiner.__doc__.format(
        params=textwrap.indent(field_docs(MineConfig, MINER_PARAMS), "    "))


def mine_file(config: MineConfig):
    """Mine a lexicon from ``config.rollouts``; write ``config.out`` and ``<out stem>.clusters.csv``.

    Returns (miner, report_path, n_responses).
    """
    from reasonlens.hierarchy.lexicon import write_lexicon
    from reasonlens.models.hardware import runtime, set_threads
    from reasonlens.records import write_csv
    from reasonlens.sources.logs import read_correct_responses

    rollouts, out = config.rollouts, config.out
    report = out.with_name(out.stem + ".clusters.csv")
    if any(p.resolve() == rollouts.resolve() for p in (out, report)):
        raise ReasonlensError(f"mine-grams: --out {out} would overwrite the input {rollouts}; choose another file.")
    if out.is_dir():
        raise ReasonlensError(f"mine-grams: --out {out} is a folder; give the lexicon file to write, e.g. mined.txt.")
    responses = read_correct_responses(rollouts, config.reward_threshold)
    if not responses:
        raise ReasonlensError(f"rollout file {str(rollouts)!r} has no correct responses: nothing to mine from")
    threads = set_threads(config.threads)
    miner = StrategicGramMiner(**config.miner_params()).fit(responses)
    write_lexicon(out, miner.lexicon_, {"source": str(rollouts),
                                        "method": "arXiv 2509.03646 section 2.1 (reasonlens mine-grams)",
                                        "config": miner.config_, "runtime": runtime("cpu", "fp32", threads)})
    table = miner.clusters_.assign(members=miner.clusters_["members"].map(" | ".join))
    write_csv(report, table)
    return miner, report, len(responses)
