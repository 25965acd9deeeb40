"""Find strategic grams in text and mark planning tokens (method.md section 1, rules exactly): the matching
functions, free of scikit-learn (`tagger.PlanningTagger` is the estimator around them).

Rules: case-insensitive (equal after ``str.lower``); where a gram begins (ends) with a letter or digit the character before
(after) the match must not be one, so "so" never matches inside "also"; any whitespace run in the
text matches a space of the gram; U+2019 matches "'"; punctuation in a gram ("hmm,", "## step")
is matched literally.

Two matchers return the same occurrences, all of them, overlaps included, sorted by (start, end).

``find_automaton`` (what ``gram_finder`` and ``PlanningTagger`` run, ~8x faster): an Aho-Corasick automaton
(pyahocorasick, in C) scans a normalised copy of the text: ``lower_text``, every whitespace
character a plain space, U+2019 an apostrophe, runs of spaces cut to one. The word-boundary checks
run on the occurrences it reports, and an offset map, built only where runs were cut, takes them
back to the original text. It needs grams in canonical form (``is_canonical``, what
``lexicon.normalize_phrase`` makes); a lexicon with any other phrase falls back to the reference.

``find_regex`` (the reference, and the baseline of benchmarks/tagger.py): the whole lexicon
compiled into ONE regex, a character trie of the grams inside a lookahead, tried at every
position. Grams matching at one position are prefixes of each other, so they lie on one trie path;
each gram end is an empty capture group, so a single attempt reports every gram starting there.
It runs on the lower-cased text (same length, so offsets refer to the original).
"""

from __future__ import annotations

import bisect
import functools
import re
from typing import Callable, Iterable, NamedTuple, Optional, Sequence

import ahocorasick


_ALNUM = r"[^\W_]"                      # a Unicode letter or digit (== str.isalnum, tested)
_START_GUARD = rf"(?<!{_ALNUM})"
_START_GUARD_AFTER_FIRST = rf"(?<!{_ALNUM}.)"  # the same check, placed after the first character
_END_GUARD = rf"(?!{_ALNUM})"


class Match(NamedTuple):
    """One occurrence: text[start:end] matched the canonical lexicon phrase ``gram``."""

    start: int
    end: int
    gram: str


def lower_text(text: str) -> str:
    """``text`` lower-cased character by character, same length (so match offsets stay valid).

    Case-insensitive matching means equality after ``str.lower``; the rare character whose lower
    case is longer (U+0130) is kept as is.
    """
    low = text.lower()
    if len(low) == len(text):
        return low
    return "".join(c.lower() if len(c.lower()) == 1 else c for c in text)


# ---- reference matcher: one regex ------------------------------------------------------------
def _char_regex(ch: str) -> str:
    if ch == " ":
        return r"\s+"
    if ch == "'":
        return "['\u2019]"
    return re.escape(ch)


def gram_regex(phrase: str) -> str:
    """Regex for one canonical phrase with the spec's boundary rules, to run on ``lower_text(text)``.

    The naive per-gram form, written straight from the rules: the reference in the tests.
    """
    body = "".join(_char_regex(ch) for ch in phrase)
    head = _START_GUARD if phrase[0].isalnum() else ""
    tail = _END_GUARD if phrase[-1].isalnum() else ""
    return head + body + tail


def _build_trie(phrases: Sequence[str]) -> dict:
    """Nested dicts keyed by character; key None holds the index of the phrase ending there."""
    root: dict = {}
    for index, phrase in enumerate(phrases):
        node = root
        for ch in phrase:
            node = node.setdefault(ch, {})
        node[None] = index
    return root


def _emit(node: dict, last: str, state: dict) -> str:
    """Regex for the subtree below ``node`` (reached by the character ``last``); a gram end becomes
    an empty capture group. ``state["stack"]`` holds the groups of the gram ends on the path so far."""
    out = ""
    ends_here = None in node
    if ends_here:
        state["groups"].append(node[None])
        state["chain"].append(state["stack"] + [len(state["groups"])])
        out += f"(?:{_END_GUARD}())?" if last.isalnum() else "()"
        state["stack"].append(len(state["groups"]))
    children = [ch for ch in node if ch is not None]
    if children:
        alts = [_char_regex(ch) + _emit(node[ch], ch, state) for ch in children]
        # Only optional once a gram may have ended on this path: keeps failed starts cheap.
        out += "(?:" + "|".join(alts) + (")?" if state["stack"] else ")")
    if ends_here:
        state["stack"].pop()
    return out


def compile_lexicon(phrases: Sequence[str]) -> tuple[re.Pattern, list[int], list[list[int]]]:
    """One regex for all phrases, to run on ``lower_text(text)``; returns (pattern, phrase index per
    group, groups per path).

    ``chain[g - 1]`` lists the capture groups on the trie path ending at group ``g`` (itself last),
    so the grams found at one position are read from ``match.lastindex`` alone. The start guard
    sits after each first character (``w(?<![^\\W_].)``) and a first-character class leads the
    pattern: this lets the regex engine reject most positions on one character (2.5x faster).
    """
    trie = _build_trie(phrases)
    state = {"groups": [], "chain": [], "stack": []}
    branches = []
    for ch in trie:
        guard = _START_GUARD_AFTER_FIRST if ch.isalnum() else ""
        branches.append(_char_regex(ch) + guard + _emit(trie[ch], ch, state))
    first = "".join(sorted({_first_class(ch) for ch in trie}))
    pattern = re.compile(f"(?=[{first}])(?=" + "|".join(branches) + ")")
    return pattern, state["groups"], state["chain"]


def _first_class(ch: str) -> str:
    return r"\s" if ch == " " else "'\u2019" if ch == "'" else re.escape(ch)


@functools.lru_cache(maxsize=8)
def _compiled(phrases: tuple[str, ...]) -> tuple[re.Pattern, list, list[list[int]]]:
    """``compile_lexicon`` once per phrase tuple, with the gram of each group (index 0 unused)."""
    pattern, groups, chains = compile_lexicon(phrases)
    return pattern, [None] + [phrases[i] for i in groups], chains


def find_regex(phrases: Sequence[str], text: str) -> list[Match]:
    """Every occurrence of every phrase in ``text``, overlaps included, sorted by (start, end), by the
    one-regex trie of ``compile_lexicon`` (the reference; ~3 M chars/s on one core).

    Examples
    --------
    >>> find_regex(["but", "but wait", "so"], "But  wait, also so.")
    [Match(start=0, end=3, gram='but'), Match(start=0, end=9, gram='but wait'), Match(start=16, end=18, gram='so')]
    """
    return _find_compiled(_compiled(tuple(phrases)), text)


def regex_finder(phrases: Sequence[str]) -> Callable[[str], list[Match]]:
    """``find_regex`` with the lexicon looked up once (hashing 249 phrases costs ~2% of a call): the
    baseline of benchmarks/tagger.py, as ``PlanningTagger.find`` ran before the automaton."""
    return functools.partial(_find_compiled, _compiled(tuple(phrases)))


def _find_compiled(compiled: tuple[re.Pattern, list, list[list[int]]], text: str) -> list[Match]:
    """``find_regex`` on the output of ``_compiled``."""
    pattern, grams, chains = compiled
    out = []
    for m in pattern.finditer(lower_text(text)):
        if m.lastindex is None:
            continue
        regs, start = m.regs, m.start()
        for g in chains[m.lastindex - 1]:
            end = regs[g][0]
            if end > start:
                out.append(Match(start, end, grams[g]))
    return out


# ---- fast matcher: Aho-Corasick --------------------------------------------------------------
_ASCII_SPACES = bytes.maketrans(bytes(c for c in range(128) if chr(c).isspace()),
                                b" " * sum(chr(c).isspace() for c in range(128)))
_WIDE_SPACE = re.compile(r"[^\S\x00-\x7f]")   # a whitespace character outside ASCII (U+00A0, U+3000...)
_new_match = functools.partial(tuple.__new__, Match)  # Match(*t) goes through a Python-level __new__: 3x slower


def is_canonical(phrase: str) -> bool:
    """True if the automaton matches ``phrase`` as ``gram_regex`` does: non-empty, no U+2019, and no
    whitespace but single spaces between words (``lexicon.normalize_phrase`` output always is)."""
    return bool(phrase) and "\u2019" not in phrase and " ".join(phrase.split()) == phrase


class GramAutomaton(NamedTuple):
    """What ``find_automaton`` needs: the automaton, and the character pairs around a gram space."""

    automaton: ahocorasick.Automaton
    space_pairs: frozenset  # {"tw", ",n", ...}: text[i - 1] + text[i + 1] around some gram's space


def build_automaton(phrases: Sequence[str]) -> Optional[GramAutomaton]:
    """Aho-Corasick automaton over ``phrases``, or None if one of them is not ``is_canonical``.

    Each phrase's value is (len - 1, starts with a letter or digit, ends with one, phrase): what
    ``find_automaton`` needs to check the word boundaries of an occurrence without a lookup.
    """
    if not phrases or not all(map(is_canonical, phrases)):
        return None
    automaton = ahocorasick.Automaton(ahocorasick.STORE_ANY, ahocorasick.KEY_STRING)
    for phrase in phrases:
        automaton.add_word(phrase, (len(phrase) - 1, phrase[0].isalnum(), phrase[-1].isalnum(), phrase))
    automaton.make_automaton()
    pairs = frozenset(p[i - 1] + p[i + 1] for p in phrases for i, ch in enumerate(p) if ch == " ")
    return GramAutomaton(automaton, pairs)


def normalize_text(text: str) -> str:
    """``lower_text(text)`` with every whitespace character a space and U+2019 an apostrophe, plus one
    trailing space; offsets unchanged.

    The trailing space lets ``find_automaton`` read the characters around an occurrence without a
    bounds test (``norm[-1]`` stands for "before the text"). ASCII whitespace goes through
    ``bytes.translate`` on the UTF-8 bytes (a table lookup in C, ~30x faster than ``str.translate``;
    multi-byte UTF-8 sequences hold no ASCII byte), the rare wider whitespace through a regex.

    >>> normalize_text("So\\tWait\\u2019s\\u3000x\\n")
    "so wait's x  "
    """
    low = lower_text(text) + " "
    if low.isascii():
        return low.encode("ascii").translate(_ASCII_SPACES).decode("ascii")
    data = low.encode("utf-8", "surrogatepass").translate(_ASCII_SPACES)
    norm = data.decode("utf-8", "surrogatepass").replace("\u2019", "'")
    return _WIDE_SPACE.sub(" ", norm) if _WIDE_SPACE.search(norm) else norm


def collapse_spaces(norm: str, pairs: frozenset) -> tuple[str, list[int], list[int]]:
    """``norm`` with each run of spaces that an occurrence could contain cut to one, and the map back.

    A gram space has gram characters on both sides, so a run can lie inside an occurrence only
    between a pair of ``pairs`` (``GramAutomaton.space_pairs``); every other run (a blank line
    after "." say) stays as it is and keeps the offsets. Returns (collapsed, kept, shifts):
    ``kept[k]`` is the index in ``collapsed`` of the k-th cut run's space, ``shifts[k]`` the
    characters cut by the first k cut runs. A non-space character at index ``i`` of ``collapsed``
    is at ``i + shifts[bisect_right(kept, i)]`` in ``norm``.

    >>> collapse_spaces("a  b.   c", frozenset({"ab", "bc"}))
    ('a b.   c', [1], [0, 1])
    """
    pieces, kept, shifts, cut, done = [], [], [0], 0, 0
    start = norm.find("  ")
    while start >= 0:  # str.find: 4x faster than re.finditer here (runs are short and frequent)
        end = start + 2
        while norm.startswith(" ", end):
            end += 1
        if norm[start - 1] + norm[end:end + 1] in pairs:
            pieces.append(norm[done:start + 1])
            done = end
            kept.append(start - cut)
            cut += end - start - 1
            shifts.append(cut)
        start = norm.find("  ", end)
    if not kept:
        return norm, kept, shifts
    pieces.append(norm[done:])
    return "".join(pieces), kept, shifts


def find_automaton(grams: GramAutomaton, text: str) -> list[Match]:
    """Every occurrence of every phrase of ``build_automaton`` in ``text``, overlaps included, sorted by
    (start, end); the same list as ``find_regex`` (tested), ~8x faster (benchmarks/tagger.py).

    Examples
    --------
    >>> find_automaton(build_automaton(["but", "but wait", "so"]), "But  wait, also so.")
    [Match(start=0, end=3, gram='but'), Match(start=0, end=9, gram='but wait'), Match(start=16, end=18, gram='so')]
    """
    norm, kept, shifts = collapse_spaces(normalize_text(text), grams.space_pairs)
    # iter() yields (index of the last character, value) for every occurrence. norm ends with a
    # space that no gram ends with, so norm[last + 1] exists and norm[start - 1] is that space at 0.
    found = [(last - k, last + 1, gram) for last, (k, head, tail, gram) in grams.automaton.iter(norm)
             if not (head and norm[last - k - 1].isalnum()) and not (tail and norm[last + 1].isalnum())]
    found.sort()  # (start, end) is unique: one canonical gram per span
    if kept:
        right = bisect.bisect_right
        found = [(s + shifts[right(kept, s)], e + shifts[right(kept, e - 1)], g) for s, e, g in found]
    return list(map(_new_match, found))


# ---- counts, spans, token masks --------------------------------------------------------------
def leftmost_longest(matches: Iterable[Match]) -> list[Match]:
    """Non-overlapping occurrences, left to right, the longest at each start ("but wait", not "but")."""
    chosen, end = [], -1
    for m in sorted(matches, key=lambda m: (m.start, -m.end)):
        if m.start >= end and m.end > m.start:
            chosen.append(m)
            end = m.end
    return chosen


def gram_counts(matches: Iterable[Match]) -> dict[str, int]:
    """Gram -> occurrences taken left to right, longest first, without overlap (``leftmost_longest``)."""
    counts: dict[str, int] = {}
    for m in leftmost_longest(matches):
        counts[m.gram] = counts.get(m.gram, 0) + 1
    return counts


def span_union(matches: Iterable[Match]) -> list[tuple[int, int]]:
    """Merge occurrence spans into sorted, disjoint [start, end) intervals."""
    merged: list[list[int]] = []
    for start, end in sorted((m.start, m.end) for m in matches):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(s, e) for s, e in merged]


def overlap_mask(spans: Sequence[tuple[int, int]], offsets: Iterable[Sequence[int]]) -> list[bool]:
    """True for each [s, e) token span that shares at least one character with a disjoint sorted span."""
    ends = [e for _, e in spans]
    mask = []
    for s, e in offsets:
        i = bisect.bisect_right(ends, s)  # first span ending after s
        mask.append(i < len(spans) and spans[i][0] < e and s < e)
    return mask


@functools.lru_cache(maxsize=16)
def gram_finder(phrases: tuple[str, ...]) -> Callable[[str], list[Match]]:
    """``text -> every occurrence`` of ``phrases``, sorted by (start, end): the automaton, or the reference
    regex when a phrase is not canonical.

    >>> [m.gram for m in gram_finder(("so", "but wait"))("But wait, also so.")]
    ['but wait', 'so']
    """
    grams = build_automaton(phrases)
    return functools.partial(find_regex, phrases) if grams is None else functools.partial(find_automaton, grams)
