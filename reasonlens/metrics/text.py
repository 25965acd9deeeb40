"""Word-level views of response text, for logs without tokens: words, planning words, reflection markers.

A *word* is a maximal run of letters or digits, with inner apostrophes kept ("that's" is one word);
punctuation and math symbols are not words. All matching goes through the PlanningTagger, so the
whole-word, case-insensitive rules are the same as for strategic grams.
"""

from __future__ import annotations

import functools
import re
from typing import Sequence

from ..hierarchy.tagger import overlap_mask, span_union

WORD_RE = re.compile(r"[^\W_]+(?:['\u2019][^\W_]+)*")

REFLECTION_MARKERS = (
    "wait", "hmm", "let me check", "let me double-check", "double-check", "double check",
    "let me verify", "verify", "re-check", "recheck", "on second thought", "let me reconsider",
)
"""Backtracking / verification phrases counted by ``reflection_counts`` (whole words, any case;
"verify" does not match "verified"). Occurrences are counted longest first without overlap, so
"let me verify" counts once."""


def word_spans(text: str) -> list[tuple[int, int]]:
    """Character (start, end) of every word of ``text``."""
    return [m.span() for m in WORD_RE.finditer(text)]


def word_count(text: str) -> int:
    """Number of words (see module docstring) in ``text``."""
    return sum(1 for _ in WORD_RE.finditer(text))


def planning_word_counts(text: str, found: Sequence) -> tuple[int, int]:
    """(planning words, all words) of one response; ``found`` = ``tagger.find(text)``.

    A word is planning if it overlaps any gram occurrence (their union, overlaps included), the
    same rule as the token-level planning mask with words in place of tokens.
    """
    spans = word_spans(text)
    return sum(overlap_mask(span_union(found), spans)), len(spans)


@functools.lru_cache(maxsize=1)
def _reflection_tagger():
    """The PlanningTagger over REFLECTION_MARKERS, built once."""
    from ..hierarchy.tagger import PlanningTagger

    return PlanningTagger(list(REFLECTION_MARKERS))


def reflection_counts(responses: Sequence[str], tagger=None) -> list[int]:
    """Reflection-marker occurrences per response (``tagger`` defaults to one over REFLECTION_MARKERS)."""
    tagger = tagger if tagger is not None else _reflection_tagger()
    return [sum(tagger.count(text).values()) for text in responses]
