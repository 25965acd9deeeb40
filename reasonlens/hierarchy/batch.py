"""The tag columns of many responses at once, at the speed of the matcher (the fast path of `hierarchy.tag`).

`tag_batch` gives exactly the columns of `tag.tag_response` (the reference, kept and compared in the
tests), but works on arrays: the responses are joined by a NUL character (never in a gram, never a
letter or digit, so no gram or word crosses it), the automaton runs once over the join with its
word-boundary checks vectorised, and the words come from one pass of a letter-or-digit lookup over
the join's code points. Span unions, word overlap, planning-word counts and the next non-SG words are
then `np.searchsorted` of sorted span arrays against word start/end arrays. Python loops remain only
per counted gram (the greedy leftmost-longest choice and the three next words' text), never per word.
"""

from __future__ import annotations

import functools
import itertools
from typing import NamedTuple, Optional, Sequence

import ahocorasick
import numpy as np

from reasonlens import columns as C
from reasonlens.hierarchy.tagger import PlanningTagger, build_automaton, collapse_spaces, normalize_text

SEP = "\x00"
_APOSTROPHES = (ord("'"), 0x2019)


@functools.lru_cache(maxsize=1)
def _alnum_table() -> np.ndarray:
    """``table[c]`` is ``chr(c).isalnum()`` (what the regex ``[^\\W_]`` matches) for the Basic Multilingual
    Plane (~10 ms to build)."""
    return np.fromiter((chr(c).isalnum() for c in range(0x10000)), dtype=bool, count=0x10000)


def is_alnum(codes: np.ndarray) -> np.ndarray:
    """Letter-or-digit flags of an array of code points (N,) -> (N,) bool."""
    table = _alnum_table()
    astral = codes >= table.size
    if not astral.any():
        return table[codes]
    out = table[np.where(astral, 0, codes)]
    rare, where = np.unique(codes[astral], return_inverse=True)  # few distinct: ask str.isalnum
    out[astral] = np.array([chr(c).isalnum() for c in rare.tolist()])[where]
    return out


def code_points(text: str) -> np.ndarray:
    """The code points of ``text`` (N,) uint32 (lone surrogates kept)."""
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


def words(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(starts, ends) of every word: a maximal run of letters or digits with inner apostrophes
    (``tag.WORD_RE``: an apostrophe joins two runs when a letter or digit is on each side of it)."""
    alnum = is_alnum(codes)  # (N,) True = letter or digit
    inner = np.zeros_like(alnum)
    if codes.size > 2:
        middle = codes[1:-1]
        apostrophe = (middle == _APOSTROPHES[0]) | (middle == _APOSTROPHES[1])
        inner[1:-1] = apostrophe & alnum[:-2] & alnum[2:]
    word = np.concatenate(([False], alnum | inner, [False]))  # (N + 2,) padded so edges count
    edges = np.flatnonzero(word[1:] != word[:-1])
    return edges[0::2], edges[1::2]


class BatchAutomaton(NamedTuple):
    """The automaton of `find_batch` (values are phrase indices) and per-phrase arrays."""

    automaton: ahocorasick.Automaton
    space_pairs: frozenset
    lengths: np.ndarray  # (P,) phrase length
    head: np.ndarray     # (P,) bool: starts with a letter or digit
    tail: np.ndarray     # (P,) bool: ends with one


@functools.lru_cache(maxsize=8)
def batch_automaton(phrases: tuple[str, ...]) -> Optional[BatchAutomaton]:
    """Like `tagger.build_automaton` but storing phrase indices, or None if it would not build."""
    grams = build_automaton(phrases)
    if grams is None:
        return None
    automaton = ahocorasick.Automaton(ahocorasick.STORE_INTS, ahocorasick.KEY_STRING)
    for index, phrase in enumerate(phrases):
        automaton.add_word(phrase, index)
    automaton.make_automaton()
    return BatchAutomaton(automaton, grams.space_pairs, np.array([len(p) for p in phrases], dtype=np.int64),
                          np.array([p[0].isalnum() for p in phrases]), np.array([p[-1].isalnum() for p in phrases]))


def find_batch(grams: BatchAutomaton, text: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(starts, ends, phrase indices) of every occurrence in ``text``, sorted by (start, end): the
    matches of `tagger.find_automaton`, as arrays."""
    norm, kept, shifts = collapse_spaces(normalize_text(text), grams.space_pairs)
    hits = np.fromiter(itertools.chain.from_iterable(grams.automaton.iter(norm)), dtype=np.int64).reshape(-1, 2)
    # (M, 2): index of the last character, phrase index
    last, index = hits[:, 0], hits[:, 1]
    start = last - grams.lengths[index] + 1
    codes = code_points(norm)  # norm ends with a space: codes[start - 1] at 0 reads it
    ok = ~(grams.head[index] & is_alnum(codes[start - 1])) & ~(grams.tail[index] & is_alnum(codes[last + 1]))
    start, end, index = start[ok], last[ok] + 1, index[ok]
    if kept:
        kept_arr, shift_arr = np.array(kept), np.array(shifts)
        start = start + shift_arr[np.searchsorted(kept_arr, start, side="right")]
        end = end + shift_arr[np.searchsorted(kept_arr, end - 1, side="right")]
    order = np.lexsort((end, start))
    return start[order], end[order], index[order]


def _find_each(tagger: PlanningTagger, texts: Sequence[str], bases: np.ndarray):
    """`find_batch`'s arrays from ``tagger.find`` on each text (a lexicon the automaton cannot hold)."""
    rows = [(m.start + base, m.end + base, m.gram) for text, base in zip(texts, bases.tolist())
            for m in tagger.find(text)]
    position = {p: i for i, p in enumerate(tagger.lexicon_.phrases)}
    return (np.array([r[0] for r in rows], dtype=np.int64), np.array([r[1] for r in rows], dtype=np.int64),
            np.array([position[r[2]] for r in rows], dtype=np.int64))


def union(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (start, end) intervals merged where they overlap or touch (`tagger.span_union`)."""
    if starts.size == 0:
        return starts, ends
    reach = np.maximum.accumulate(ends)  # (M,) the furthest end so far
    new = np.concatenate(([True], starts[1:] > reach[:-1]))
    first = np.flatnonzero(new)
    return starts[first], np.maximum.reduceat(ends, first)


def leftmost_longest(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Indices of the occurrences chosen left to right, longest first, without overlap
    (`tagger.leftmost_longest`) among matches sorted by (start, end)."""
    if starts.size == 0:
        return starts
    longest = np.flatnonzero(np.concatenate((starts[1:] != starts[:-1], [True])))  # last (longest) per start
    follow = np.searchsorted(starts[longest], ends[longest], side="left").tolist()
    chosen, i, n = [], 0, len(longest)
    while i < n:  # one step per counted gram
        chosen.append(i)
        i = follow[i]
    return longest[chosen]


def overlaps(span_starts: np.ndarray, span_ends: np.ndarray, starts: np.ndarray, ends: np.ndarray,
             lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """True where [starts, ends) shares a character with one of the disjoint sorted spans ``lo:hi`` of its
    own response (`tagger.overlap_mask`, one bisect per item, vectorised)."""
    i = np.maximum(np.searchsorted(span_ends, starts, side="right"), lo)  # first span ending after start
    inside = i < hi
    hit = np.zeros(starts.size, dtype=bool)
    hit[inside] = span_starts[i[inside]] < ends[inside]
    return hit & (starts < ends)


def _per_response(owner: np.ndarray, n: int) -> np.ndarray:
    """(n + 1,) boundaries: items ``b[r]:b[r + 1]`` belong to response r (``owner`` sorted)."""
    return np.searchsorted(owner, np.arange(n + 1), side="left")


def _split(values: list, bounds: np.ndarray) -> list[list]:
    """``values`` cut at ``bounds`` (from `_per_response`) into one list per response."""
    cuts = bounds.tolist()
    return [values[a:b] for a, b in zip(cuts[:-1], cuts[1:])]


def next_words(text: str, counted_ends: np.ndarray, owner: np.ndarray, free_starts: np.ndarray,
               free_ends: np.ndarray, free_owner: np.ndarray, n: int) -> list[str]:
    """For each counted occurrence (end, response), its next ``n`` non-SG words of the same response,
    space-joined and lower-cased ("" if fewer follow): `tag.next_word_ngrams` over arrays."""
    i = np.searchsorted(free_starts, counted_ends, side="left")  # first free word starting after the gram
    last = i + n - 1
    ok = last < free_starts.size
    ok[ok] = free_owner[last[ok]] == owner[ok]
    take = i[ok, None] + np.arange(n)  # (K, n) the free words of each n-gram
    words = word_texts(text, free_starts[take].ravel(), free_ends[take].ravel())
    grams = iter([" ".join(words[k:k + n]) for k in range(0, len(words), n)])
    return [next(grams) if good else "" for good in ok.tolist()]


def word_texts(text: str, starts: np.ndarray, ends: np.ndarray) -> list[str]:
    """``text[a:b].lower()`` for each (a, b): each word lowered on its own, as the reference does (a final
    sigma depends on the word's edges), and only the words asked for (lowering the whole text costs more)."""
    return [text[a:b].lower() for a, b in zip(starts.tolist(), ends.tolist())]


def tag_batch(texts: Sequence[str], tagger: PlanningTagger, planning: np.ndarray, reflection: np.ndarray,
              offsets: Optional[Sequence] = None, n_next: int = 3) -> dict[str, list]:
    """The tag columns (`tag.TAG_COLUMNS`, and ``planning_mask`` with ``offsets``) of ``texts``, one
    list per column, identical to `tag.tag_response` on each text.

    ``tagger`` (fitted) holds the lexicon and the reflection markers; ``planning`` / ``reflection`` (P,) bool
    say which of its phrases belong to each. ``offsets``: per text, its tokens' [start, end] spans.
    """
    text = SEP.join(texts)
    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    bases = np.concatenate(([0], np.cumsum(lengths + 1)[:-1]))  # (R,) where each text starts in the join
    phrases = tagger.lexicon_.phrases
    grams = batch_automaton(phrases)
    starts, ends, index = find_batch(grams, text) if grams is not None else _find_each(tagger, texts, bases)
    owner = np.searchsorted(bases, starts, side="right") - 1  # (M,) response of each occurrence
    n = len(texts)

    keep = planning[index]
    span_starts, span_ends = union(starts[keep], ends[keep])
    span_owner = np.searchsorted(bases, span_starts, side="right") - 1
    span_bounds = _per_response(span_owner, n)
    counted = np.flatnonzero(keep)[leftmost_longest(starts[keep], ends[keep])]
    reflect = np.flatnonzero(reflection[index])
    reflected = reflect[leftmost_longest(starts[reflect], ends[reflect])]

    word_starts, word_ends = words(code_points(text))
    word_owner = np.searchsorted(bases, word_starts, side="right") - 1
    in_gram = overlaps(span_starts, span_ends, word_starts, word_ends,
                       span_bounds[word_owner], span_bounds[word_owner + 1])
    free = ~in_gram
    following = next_words(text, ends[counted], owner[counted], word_starts[free], word_ends[free],
                           word_owner[free], n_next)
    counted_bounds = _per_response(owner[counted], n)
    local = np.stack([span_starts - bases[span_owner], span_ends - bases[span_owner]], axis=1)
    out = {
        C.PLANNING_SPANS: _split(local.tolist(), span_bounds),
        C.GRAMS: _split([phrases[i] for i in index[counted].tolist()], counted_bounds),
        C.GRAM_NEXT: _split(following, counted_bounds),
        C.N_WORDS: np.bincount(word_owner, minlength=n).tolist(),
        C.N_PLANNING_WORDS: np.bincount(word_owner[in_gram], minlength=n).tolist(),
        C.N_REFLECTIONS: np.bincount(owner[reflected], minlength=n).tolist(),
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
