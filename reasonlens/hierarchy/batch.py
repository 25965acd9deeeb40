"""The tag columns of many responses at once, at the speed of the matcher (the fast path of `hierarchy.tag`).

`tag_batch` gives exactly the columns of `tag.tag_response` (the reference, kept and compared in the
tests), but works on arrays: the responses, each lower-cased by ``str.lower`` as the reference does, are
joined by a NUL character (never in a gram, never a letter or digit, so no gram or word crosses it) and
encoded once to code points. On that one array (`hierarchy.codepoints`) the text is normalised and its
space runs cut for the automaton, which runs once over the join with its word-boundary checks vectorised;
the words come from one letter-or-digit pass, and the next non-SG words' text is gathered and decoded at
once. Span unions, word overlap, planning-word counts and per-response bounds are `np.searchsorted` of
sorted arrays. A Python loop remains only per counted gram (the greedy leftmost-longest choice), never
per word. benchmarks/tag_batch.py times it against the bare matcher over each response.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import itertools
from typing import NamedTuple, Optional, Sequence

import ahocorasick
import numpy as np

from reasonlens import columns as C
from reasonlens.hierarchy.codepoints import (CONTEXT_CHARS, Alphabet, alphabet, code_points, collapse_codes, is_alnum,
                                             joined_words, narrow_codes, normalize_codes, pair_keys, text_of,
                                             words)
from reasonlens.hierarchy.matcher import build_automaton, gram_finder, lower_text

SEP = "\x00"


class BatchAutomaton(NamedTuple):
    """The automaton of `find_batch` (values are phrase indices) and per-phrase arrays."""

    automaton: ahocorasick.Automaton
    pair_keys: np.ndarray  # (K,) int64: `codepoints.pair_keys` of the characters around a gram's space
    lengths: np.ndarray  # (P,) phrase length
    head: np.ndarray     # (P,) bool: starts with a letter or digit
    tail: np.ndarray     # (P,) bool: ends with one
    alphabet: Alphabet   # the phrases' characters beyond Latin-1, and a stand-in for the others


@functools.lru_cache(maxsize=8)
def batch_automaton(phrases: tuple[str, ...]) -> Optional[BatchAutomaton]:
    """Like `matcher.build_automaton` but storing phrase indices, or None if it would not build."""
    grams = build_automaton(phrases)
    if grams is None:
        return None
    automaton = ahocorasick.Automaton(ahocorasick.STORE_INTS, ahocorasick.KEY_STRING)
    for index, phrase in enumerate(phrases):
        automaton.add_word(phrase, index)
    automaton.make_automaton()
    return BatchAutomaton(automaton, pair_keys(grams.space_pairs), np.array([len(p) for p in phrases], dtype=np.int64),
                          np.array([p[0].isalnum() for p in phrases]), np.array([p[-1].isalnum() for p in phrases]),
                          alphabet(phrases))


def find_batch(grams: BatchAutomaton, norm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(starts, ends, phrase indices) of every occurrence in a text, sorted by (start, end): the matches of
    `matcher.find_automaton`, as arrays. ``norm`` (N + 1,): the `normalize_codes` of the code points of
    ``lower_text(text)``, or their `narrow_codes` for ``grams.alphabet`` (the same occurrences)."""
    norm, kept, shifts = collapse_codes(norm, grams.pair_keys)
    hits = np.fromiter(itertools.chain.from_iterable(grams.automaton.iter(text_of(norm))),
                       dtype=np.int64).reshape(-1, 2)  # (M, 2): index of the last character, phrase index
    last, index = hits[:, 0], hits[:, 1]
    start = last - grams.lengths[index] + 1  # norm[start - 1] at 0 reads the trailing space
    ok = ~(grams.head[index] & is_alnum(norm[start - 1])) & ~(grams.tail[index] & is_alnum(norm[last + 1]))
    start, end, index = start[ok], last[ok] + 1, index[ok]
    if kept.size:
        start = start + shifts[np.searchsorted(kept, start, side="right")]
        end = end + shifts[np.searchsorted(kept, end - 1, side="right")]
    order = np.lexsort((end, start))
    return start[order], end[order], index[order]


def _find_each(phrases: tuple[str, ...], texts: Sequence[str], bases: np.ndarray):
    """`find_batch`'s arrays from `matcher.gram_finder` on each text (a lexicon the automaton cannot hold)."""
    find = gram_finder(phrases)
    rows = [(m.start + base, m.end + base, m.gram) for text, base in zip(texts, bases.tolist()) for m in find(text)]
    position = {p: i for i, p in enumerate(phrases)}
    return (np.array([r[0] for r in rows], dtype=np.int64), np.array([r[1] for r in rows], dtype=np.int64),
            np.array([position[r[2]] for r in rows], dtype=np.int64))


def union(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (start, end) intervals merged where they overlap or touch (`matcher.span_union`)."""
    if starts.size == 0:
        return starts, ends
    reach = np.maximum.accumulate(ends)  # (M,) the furthest end so far
    new = np.concatenate(([True], starts[1:] > reach[:-1]))
    first = np.flatnonzero(new)
    return starts[first], np.maximum.reduceat(ends, first)


def leftmost_longest(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Indices of the occurrences chosen left to right, longest first, without overlap
    (`matcher.leftmost_longest`) among matches sorted by (start, end)."""
    if starts.size == 0:
        return starts
    longest = np.flatnonzero(np.concatenate((starts[1:] != starts[:-1], [True])))  # last (longest) per start
    follow = np.searchsorted(starts[longest], ends[longest], side="left").tolist()
    chosen, i, n = [], 0, len(longest)
    while i < n:  # one step per counted gram
        chosen.append(i)
        i = follow[i]
    return longest[chosen]


def covered(span_starts: np.ndarray, span_ends: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Sorted indices of the items meeting a span: `overlaps` for sorted, disjoint, non-empty items (words) each
    inside its response, from the spans' side. The words meeting span k are ``first[k]:last[k]``, two bisects
    per span (spans are ~20x fewer than words); the ranges are merged and listed, never a per-word array."""
    first = np.searchsorted(ends, span_starts, side="right")  # (S,) first word ending after the span starts
    last = np.searchsorted(starts, span_ends, side="left")    # (S,) first word starting at or after its end
    first, last = union(first, last)  # (G,) disjoint word ranges
    size = last - first
    before = np.cumsum(size) - size
    return np.repeat(first - before, size) + np.arange(size.sum())  # (H,) each range's words, in order


def overlaps(span_starts: np.ndarray, span_ends: np.ndarray, starts: np.ndarray, ends: np.ndarray,
             lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """True where [starts, ends) shares a character with one of the disjoint sorted spans ``lo:hi`` of its
    own response (`matcher.overlap_mask`, one bisect per item, vectorised)."""
    i = np.maximum(np.searchsorted(span_ends, starts, side="right"), lo)  # first span ending after start
    inside = i < hi
    hit = np.zeros(starts.size, dtype=bool)
    hit[inside] = span_starts[i[inside]] < ends[inside]
    return hit & (starts < ends)


def _split(values: list, bounds: np.ndarray) -> list[list]:
    """``values`` cut at ``bounds`` ((R + 1,): items ``b[r]:b[r + 1]`` are response r's) into one list per response."""
    cuts = bounds.tolist()
    return [values[a:b] for a, b in zip(cuts[:-1], cuts[1:])]


def next_words(low: np.ndarray, counted_ends: np.ndarray, limits: np.ndarray, free_starts: np.ndarray,
               free_ends: np.ndarray, n: int, text: Optional[str] = None) -> list[str]:
    """For each counted occurrence, its next ``n`` non-SG words before its response ends (``limits``, (K,)),
    space-joined and lower-cased ("" if fewer follow): `tag.next_word_ngrams` over arrays. ``low`` and ``text``
    as in `codepoints.joined_words`."""
    i = np.searchsorted(free_starts, counted_ends, side="left")  # first free word starting after the gram
    last = i + n - 1
    ok = last < free_starts.size
    ok[ok] = free_starts[last[ok]] < limits[ok]
    take = (i[ok, None] + np.arange(n)).ravel()  # (K * n,) the free words of each n-gram
    following = np.full(ok.size, "", dtype=object)
    following[ok] = joined_words(low, free_starts[take], free_ends[take], n, text)
    return following.tolist()


@contextlib.contextmanager
def _collector_paused():
    """The cyclic garbage collector off while the columns' many small lists are built: they hold no cycles, and
    a full collection that their allocations trigger midway costs more than the tagging (60-90 ms a 1000 responses)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@_collector_paused()
def tag_batch(texts: Sequence[str], phrases: tuple[str, ...], planning: np.ndarray, reflection: np.ndarray,
              offsets: Optional[Sequence] = None, n_next: int = 3) -> dict[str, list]:
    """The tag columns (`tag.TAG_COLUMNS`, and ``planning_mask`` with ``offsets``) of ``texts``, one
    list per column, identical to `tag.tag_response` on each text.

    ``phrases`` are the lexicon's and the reflection markers; ``planning`` / ``reflection`` (P,) bool say
    which of them belong to each. ``offsets``: per text, its tokens' [start, end] spans.
    """
    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    bases = np.concatenate(([0], np.cumsum(lengths + 1)))  # (R + 1,) where each text starts in the join, and the end
    # (N,) shared by the matcher and the next words' text; lowered text by text, as the reference is (an
    # all-ASCII text takes str.lower's fast path, the join rarely is one)
    low = code_points(SEP.join(map(lower_text, texts)))
    grams = batch_automaton(phrases)
    # (N + 1,) one byte a character where the lexicon allows (nearly always): the automaton's text and the words'
    norm = None if grams is None else narrow_codes(low, grams.alphabet)
    if grams is None:
        starts, ends, index = _find_each(phrases, texts, bases)
    else:
        starts, ends, index = find_batch(grams, normalize_codes(low) if norm is None else norm)

    keep = planning[index]
    span_starts, span_ends = union(starts[keep], ends[keep])
    span_bounds = np.searchsorted(span_starts, bases)  # (R + 1,) spans of response r: b[r]:b[r + 1]
    counted = np.flatnonzero(keep)[leftmost_longest(starts[keep], ends[keep])]
    counted_bounds = np.searchsorted(starts[counted], bases)
    reflect = np.flatnonzero(reflection[index])
    reflected = starts[reflect[leftmost_longest(starts[reflect], ends[reflect])]]

    word_starts, word_ends = words(low if norm is None else norm[:-1])
    word_bounds = np.searchsorted(word_starts, bases)
    in_gram = covered(span_starts, span_ends, word_starts, word_ends)  # (H,) sorted word indices
    free = np.ones(word_starts.size, dtype=bool)  # (W,) True = overlaps no gram
    free[in_gram] = False
    owner = np.searchsorted(bases, starts[counted], side="right") - 1  # (K,) response of each counted gram
    # the join of the texts themselves only where str.lower has context (rare): joined_words lowers those words alone
    text = SEP.join(texts) if any(ch in t for t in texts for ch in CONTEXT_CHARS) else None
    following = next_words(low, ends[counted], bases[owner + 1] - 1, word_starts[free], word_ends[free], n_next, text)
    span_owner = np.repeat(np.arange(len(texts)), np.diff(span_bounds))
    local = np.stack([span_starts - bases[span_owner], span_ends - bases[span_owner]], axis=1)
    out = {
        C.PLANNING_SPANS: _split(local.tolist(), span_bounds),
        C.GRAMS: _split(np.array(phrases, dtype=object)[index[counted]].tolist(), counted_bounds),
        C.GRAM_NEXT: _split(following, counted_bounds),
        C.N_WORDS: np.diff(word_bounds).tolist(),
        C.N_PLANNING_WORDS: np.diff(np.searchsorted(in_gram, word_bounds)).tolist(),
        C.N_REFLECTIONS: np.diff(np.searchsorted(reflected, bases)).tolist(),
    }
    if offsets is not None:
        out[C.PLANNING_MASK] = _token_masks(offsets, bases, span_starts, span_ends, span_bounds)
    return out


def _token_masks(offsets: Sequence, bases: np.ndarray, span_starts: np.ndarray, span_ends: np.ndarray,
                 span_bounds: np.ndarray) -> list[list[bool]]:
    """Per response, one bool per token: True where its [start, end) overlaps one of its planning spans."""
    counts = np.fromiter((0 if o is None else len(o) for o in offsets), dtype=np.int64, count=len(offsets))
    pairs = np.array([tuple(p) for o in offsets if o is not None for p in o], dtype=np.int64).reshape(-1, 2)
    owner = np.repeat(np.arange(len(offsets)), counts)
    shift = bases[owner]
    hit = overlaps(span_starts, span_ends, pairs[:, 0] + shift, pairs[:, 1] + shift,
                   span_bounds[owner], span_bounds[owner + 1])
    masks = _split(hit.tolist(), np.concatenate(([0], np.cumsum(counts))))
    return [None if o is None else mask for o, mask in zip(offsets, masks)]  # no tokens, no mask
