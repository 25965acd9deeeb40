"""Distribution entropies of a step: SG semantic entropy, conditional procedural entropy and
answer-level semantic entropy (Farquhar et al. 2024 style: a different quantity, named apart).

All in nats unless ``base`` is given. An empty distribution gives NaN (nothing was observed),
never 0.
"""

from __future__ import annotations

import bisect
import functools
import math
from collections import Counter
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np

from ..hierarchy.tagger import leftmost_longest, overlap_mask, span_union
from .text import word_spans


def shannon_entropy(counts: Mapping | Iterable[float], base: float = math.e) -> float:
    """H = -sum p log p of the frequencies ``counts`` (a mapping or a sequence); NaN when the total is 0."""
    values = np.asarray(list(counts.values() if isinstance(counts, Mapping) else counts), dtype=float)
    values = values[values > 0]
    total = values.sum()
    if total == 0:
        return math.nan
    p = values / total
    return float(-(p * np.log(p)).sum() / math.log(base))


def gram_counts(responses: Sequence[str], tagger) -> Counter:
    """Summed ``tagger.count`` (longest-first, non-overlapping occurrences) over ``responses``."""
    total: Counter = Counter()
    for text in responses:
        total.update(tagger.count(text))
    return total


def sg_semantic_entropy(responses: Sequence[str], tagger, base: float = math.e) -> float:
    """Shannon entropy of the step's strategic-gram frequencies, summed over all its responses."""
    return shannon_entropy(gram_counts(responses, tagger), base)


def next_word_ngrams(text: str, found: Sequence, n: int = 3) -> list[tuple[str, tuple[str, ...]]]:
    """(gram, next non-SG word n-gram) for each gram occurrence of ``text``; ``found`` = ``tagger.find(text)``.

    Occurrences are the counted ones (left to right, longest first, no overlap, as in
    ``tagger.count``). The next non-SG word n-gram of an occurrence is the first ``n`` words
    (lower-cased, see ``text.WORD_RE``) that start after the occurrence ends and overlap no gram
    occurrence at all (any of ``found``): grams in between are skipped, so in "so, but wait, we
    add 3" both "so" and "but wait" continue with ("we", "add", "3"). Words may cross sentence
    punctuation but never leave the response; an occurrence followed by fewer than ``n`` such
    words is dropped.
    """
    spans = word_spans(text)
    words = [(a, text[a:b].lower()) for (a, b), planning in zip(spans, overlap_mask(span_union(found), spans))
             if not planning]
    starts = [s for s, _ in words]
    pairs = []
    for m in leftmost_longest(found):
        i = bisect.bisect_left(starts, m.end)
        if i + n <= len(words):
            pairs.append((m.gram, tuple(w for _, w in words[i:i + n])))
    return pairs


def conditional_entropy(pairs: Iterable[tuple], base: float = math.e) -> float:
    """H(Y | X) = sum_x p(x) H(Y | X=x) of observed (x, y) pairs, as H(X, Y) - H(X); NaN for no pairs."""
    joint = Counter(pairs)
    if not joint:
        return math.nan
    marginal: Counter = Counter()
    for (x, _), c in joint.items():
        marginal[x] += c
    return max(0.0, shannon_entropy(joint, base) - shannon_entropy(marginal, base))


def conditional_procedural_entropy(responses: Sequence[str], tagger, n: int = 3,
                                   base: float = math.e) -> float:
    """H(next | g) over the step's gram occurrences g and their next non-SG word n-grams.

    p(g) is the share of kept occurrences (see ``next_word_ngrams``) that are gram g.
    NaN when no occurrence has ``n`` following words.
    """
    return conditional_entropy((pair for text in responses
                                for pair in next_word_ngrams(text, tagger.find(text), n)), base)


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


def answer_semantic_entropy(answers_by_prompt: Iterable[Sequence[str | None]],
                            equivalent: Callable[[str, str], bool] | None = None,
                            base: float = math.e) -> float:
    """Mean over prompts of the entropy of their answers' equivalence-cluster frequencies.

    ``equivalent`` defaults to ``reasonlens.sources.answers.answers_equivalent`` (math-verify).
    None answers form one cluster (see ``cluster_answers``). NaN when there are no prompts.
    """
    if equivalent is None:
        from ..sources.answers import answers_equivalent as equivalent
    equivalent = functools.lru_cache(maxsize=None)(equivalent)  # answers repeat: math-verify is ~10 ms a pair
    values = [shannon_entropy(Counter(cluster_answers(list(a), equivalent)), base)
              for a in answers_by_prompt if len(a)]
    return float(np.mean(values)) if values else math.nan
