"""Distribution entropies of a step: SG semantic entropy, conditional procedural entropy and
answer-level semantic entropy (Farquhar et al. 2024 style: a different quantity, named apart).

All in nats unless ``base`` is given. An empty distribution gives NaN (nothing was observed),
never 0.
"""

from __future__ import annotations

import functools
import math
from collections import Counter
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np


def shannon_entropy(counts: Mapping | Iterable[float], base: float = math.e) -> float:
    """H = -sum p log p of the frequencies ``counts`` (a mapping or a sequence); NaN when the total is 0.

    >>> shannon_entropy([3])  # one outcome: 0.0, never -0.0 (which tables would print as "-0.0")
    0.0
    """
    values = np.asarray(list(counts.values() if isinstance(counts, Mapping) else counts), dtype=float)
    values = values[values > 0]
    total = values.sum()
    if total == 0:
        return math.nan
    p = values / total
    return float(-(p * np.log(p)).sum() / math.log(base)) + 0.0


def sg_semantic_entropy(grams: Iterable[Sequence[str]], base: float = math.e) -> float:
    """Shannon entropy of the strategic-gram frequencies over responses (each a list of counted grams).

    >>> round(sg_semantic_entropy([["so", "wait"], ["so"]]), 5)  # p = 2/3, 1/3
    0.63651
    """
    return shannon_entropy(Counter(g for response in grams for g in response), base)


def conditional_entropy(pairs: Iterable[tuple], base: float = math.e) -> float:
    """H(Y | X) = sum_x p(x) H(Y | X=x) of observed (x, y) pairs, as H(X, Y) - H(X); NaN for no pairs."""
    joint = Counter(pairs)
    if not joint:
        return math.nan
    marginal: Counter = Counter()
    for (x, _), c in joint.items():
        marginal[x] += c
    return max(0.0, shannon_entropy(joint, base) - shannon_entropy(marginal, base))


def conditional_procedural_entropy(grams: Iterable[Sequence[str]], nexts: Iterable[Sequence[str]],
                                   base: float = math.e) -> float:
    """H(next | g) over the gram occurrences g of the responses and their next non-SG word n-grams.

    ``grams`` and ``nexts`` hold, per response, aligned lists (``hierarchy.tag``'s ``grams`` and
    ``gram_next``); an occurrence whose next n-gram is "" (too few words follow) is left out, so
    p(g) is the share of the kept occurrences that are gram g. NaN when none is kept.
    """
    return conditional_entropy(((g, n) for gs, ns in zip(grams, nexts) for g, n in zip(gs, ns) if n), base)


def cluster_answers(answers: Sequence[str | None], equivalent: Callable[[str, str], bool]) -> list[int]:
    """Cluster label per answer: equal to the first cluster whose representative is equivalent.

    Greedy in order; the representative is the cluster's first answer, passed as ``equivalent``'s
    first (gold) argument. All None answers (no final answer found) share one cluster of their own.
    """
    reps: list[str | None] = []
    labels = []
    for ans in answers:
        ans = None if ans is None else str(ans).strip()
        for i, rep in enumerate(reps):
            if rep == ans or (rep is not None and ans is not None and equivalent(rep, ans)):
                labels.append(i)
                break
        else:
            reps.append(ans)
            labels.append(len(reps) - 1)
    return labels


def cluster_pairs(answers: Sequence[str | None]) -> list[tuple[str, str]]:
    """Every (representative, answer) pair `cluster_answers` may pass to ``equivalent``: each distinct answer
    after each distinct answer before it (stripped; None left out). The verdicts can then be found ahead.

    >>> cluster_pairs(["1", None, " 2", "1", "3"])
    [('1', '2'), ('1', '3'), ('2', '3')]
    """
    seen = list(dict.fromkeys(str(a).strip() for a in answers if a is not None))
    return [(rep, ans) for i, ans in enumerate(seen) for rep in seen[:i]]


def cached_equivalence(equivalent: Callable[[str, str], bool] | None = None) -> Callable[[str, str], bool]:
    """``equivalent`` (default: ``sources.answers.answers_equivalent``, math-verify) memoised: answers repeat
    across samples and steps, and math-verify takes ~10 ms a pair."""
    if equivalent is None:
        from ..sources.answers import answers_equivalent as equivalent
    return functools.lru_cache(maxsize=None)(equivalent)


def prompt_answer_entropies(answers_by_prompt: Iterable[Sequence[str | None]],
                            equivalent: Callable[[str, str], bool], base: float = math.e) -> np.ndarray:
    """Entropy of each prompt's answer-cluster frequencies (P,); NaN for a prompt without answers.

    The bootstrap resamples these per-prompt values (the clusters of a prompt move with it).
    """
    return np.array([_cluster_entropy(cluster_answers(list(a), equivalent), base) if len(a) else math.nan
                     for a in answers_by_prompt], dtype=float)


def _cluster_entropy(labels: list[int], base: float) -> float:
    """`shannon_entropy` of the cluster frequencies; one cluster (the common case) is 0.0 at once."""
    return 0.0 if max(labels) == 0 else shannon_entropy(Counter(labels), base)


def answer_semantic_entropy(answers_by_prompt: Iterable[Sequence[str | None]],
                            equivalent: Callable[[str, str], bool] | None = None,
                            base: float = math.e) -> float:
    """Mean over prompts of the entropy of their answers' equivalence-cluster frequencies.

    ``equivalent`` defaults to ``cached_equivalence()`` (math-verify, memoised); a given one is used as it
    is (wrap it in `cached_equivalence` to share one memo across calls). None answers form one cluster
    (see ``cluster_answers``). NaN when there are no prompts.
    """
    equivalent = equivalent or cached_equivalence()
    values = prompt_answer_entropies(answers_by_prompt, equivalent, base)
    values = values[np.isfinite(values)]
    return float(values.mean()) if values.size else math.nan
