"""Find strategic grams in text and mark planning tokens (method.md section 1, rules exactly).

Rules: case-insensitive (equal after ``str.lower``); where a gram begins (ends) with a letter or digit the character before
(after) the match must not be one, so "so" never matches inside "also"; any whitespace run in the
text matches a space of the gram; U+2019 matches "'"; punctuation in a gram ("hmm,", "## step")
is matched literally.

The whole lexicon is compiled into ONE regex: a character trie of the grams inside a lookahead,
tried at every position. Grams matching at one position are prefixes of each other, so they lie
on one trie path; each gram end is an empty capture group, so a single attempt reports every
gram starting there. This yields all occurrences, overlaps included, from one pass over the
lower-cased text (same length, so offsets refer to the original).
"""

from __future__ import annotations

import bisect
import re
from typing import Iterable, NamedTuple, Sequence

from reasonlens.hierarchy.lexicon import Lexicon, LexiconSpec, load_lexicon

_ALNUM = r"[^\W_]"                      # a Unicode letter or digit
_START_GUARD = rf"(?<!{_ALNUM})"
_START_GUARD_AFTER_FIRST = rf"(?<!{_ALNUM}.)"  # the same check, placed after the first character
_END_GUARD = rf"(?!{_ALNUM})"


class Match(NamedTuple):
    """One occurrence: text[start:end] matched the canonical lexicon phrase ``gram``."""

    start: int
    end: int
    gram: str


def _char_regex(ch: str) -> str:
    if ch == " ":
        return r"\s+"
    if ch == "'":
        return "['\u2019]"
    return re.escape(ch)


def gram_regex(phrase: str) -> str:
    """Regex for one canonical phrase with the spec's boundary rules, to run on ``lower_text(text)``.

    The naive per-gram form: the reference in tests and the baseline in benchmarks/bench_tagger.py.
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


def lower_text(text: str) -> str:
    """``text`` lower-cased character by character, same length (so match offsets stay valid).

    Case-insensitive matching means equality after ``str.lower``; the rare character whose lower
    case is longer (U+0130) is kept as is.
    """
    low = text.lower()
    if len(low) == len(text):
        return low
    return "".join(c.lower() if len(c.lower()) == 1 else c for c in text)


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


class PlanningTagger:
    """Strategic-gram matcher over a lexicon (preset name, file path, list of phrases or Lexicon).

    Estimator contract: ``__init__`` stores the argument; ``fit`` loads and compiles the lexicon
    (``lexicon_``, ``pattern_``), and runs on first use if not called.

    Examples
    --------
    >>> tagger = PlanningTagger(["but", "but wait", "so"])
    >>> [(m.start, m.end, m.gram) for m in tagger.find("But wait, also so.")]
    [(0, 3, 'but'), (0, 8, 'but wait'), (15, 17, 'so')]
    >>> tagger.count("But wait, also so.")
    {'but wait': 1, 'so': 1}
    """

    def __init__(self, lexicon: LexiconSpec = "paper"):
        self.lexicon = lexicon

    def fit(self, texts=None, y=None) -> "PlanningTagger":
        """Load and compile the lexicon; ``texts`` is ignored (kept for the estimator API)."""
        self.lexicon_: Lexicon = load_lexicon(self.lexicon)
        self.pattern_, groups, self._chains = compile_lexicon(self.lexicon_.phrases)
        self._group_grams = [None] + [self.lexicon_.phrases[i] for i in groups]
        return self

    def _fitted(self) -> "PlanningTagger":
        return self if hasattr(self, "pattern_") else self.fit()

    def find(self, text: str) -> list[Match]:
        """Every occurrence of every gram, overlaps included, sorted by (start, end)."""
        self._fitted()
        out, grams, chains = [], self._group_grams, self._chains
        for m in self.pattern_.finditer(lower_text(text)):
            if m.lastindex is None:
                continue
            regs, start = m.regs, m.start()
            for g in chains[m.lastindex - 1]:
                end = regs[g][0]
                if end > start:
                    out.append(Match(start, end, grams[g]))
        return out

    def count(self, text: str) -> dict[str, int]:
        """Gram -> occurrences taken left to right, longest first, without overlap."""
        return gram_counts(self.find(text))

    def spans(self, text: str) -> list[tuple[int, int]]:
        """Disjoint sorted character spans covered by any occurrence (the planning characters)."""
        return span_union(self.find(text))

    def token_mask(self, text: str, offsets: Iterable[Sequence[int]]) -> list[bool]:
        """One bool per token: True (planning) where its [start, end) char span overlaps a gram."""
        return overlap_mask(self.spans(text), offsets)

    def __repr__(self) -> str:
        return f"PlanningTagger(lexicon={self.lexicon!r})"
