"""Text as an array of code points: the tagger's normalisation, word finding and word text, vectorised.

`hierarchy.batch` runs the tag stage over a whole batch joined into one string. Per character Python
work (``str.translate``, a loop over runs of spaces, a regex per word) costs more there than the
automaton itself, so these helpers work on the (N,) uint32 code points of the text (one UTF-32
encode) with numpy, and decode once where a ``str`` is needed. Each equals a reference kept in
`tagger` / `tag` (``normalize_text``, ``collapse_spaces``, ``WORD_RE``, ``str.lower`` per word);
tests/test_codepoints.py holds them equal on generated text. Lower-casing stays ``str.lower`` (on the
string, before encoding): its case rules are not rebuilt here.
"""

from __future__ import annotations

import functools
from typing import NamedTuple, Optional

import numpy as np

SPACE, APOSTROPHE, RIGHT_QUOTE = ord(" "), ord("'"), 0x2019
LAST_WHITESPACE = 0x3000  # the largest code point with str.isspace() (U+3000; tested over all of Unicode)
CONTEXT_CHARS = ("\u03a3", "\u0130")
"""Characters whose ``str.lower`` depends on their neighbours (capital sigma: final or not) or changes the
length (U+0130; the only one, tested): a word holding one is lowered on its own, as the reference does."""
LOWERED_CONTEXT = (0x3C3, 0x3C2, 0x130)  # what ``lower_text`` makes of them: small sigma, final sigma, U+0130 kept


def code_points(text: str) -> np.ndarray:
    """The code points of ``text`` (N,) uint32 (lone surrogates kept)."""
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


def text_of(codes: np.ndarray) -> str:
    """The string of an array of code points (the inverse of `code_points`); below the surrogates (most
    text) through UTF-16, whose decoder is ~4x faster than UTF-32's; one byte a character through Latin-1."""
    if codes.dtype == np.uint8:
        return codes.tobytes().decode("latin-1")
    if codes.size and codes.max() < 0xD800:
        return codes.astype(np.uint16).tobytes().decode("utf-16-le")
    return np.ascontiguousarray(codes, dtype=np.uint32).tobytes().decode("utf-32-le", "surrogatepass")


@functools.lru_cache(maxsize=1)
def _alnum_table() -> np.ndarray:
    """``table[c]`` is ``chr(c).isalnum()`` (what the regex ``[^\\W_]`` matches) for the Basic Multilingual
    Plane (~10 ms to build)."""
    return np.fromiter((chr(c).isalnum() for c in range(0x10000)), dtype=bool, count=0x10000)


def is_alnum(codes: np.ndarray) -> np.ndarray:
    """Letter-or-digit flags of an array of code points (N,) -> (N,) bool (any unsigned dtype).

    ASCII by unsigned range tests in the array's own dtype (``c | 32`` folds the capitals onto the small
    letters; the subtraction wraps below the range), through one scratch array (each fresh multi-megabyte
    array costs page faults); the characters beyond ASCII (few, in most text) through `_alnum_table`.
    """
    kind = codes.dtype.type
    scratch = np.bitwise_or(codes, kind(32))
    scratch -= kind(ord("a"))
    out = scratch < 26
    np.subtract(codes, kind(ord("0")), out=scratch)
    out |= scratch < 10
    wide = np.flatnonzero(codes > 0x7F)
    if wide.size:
        out[wide] = _wide_alnum(codes[wide].astype(np.uint32))
    return out


def _wide_alnum(codes: np.ndarray) -> np.ndarray:
    """`is_alnum` by table (Basic Multilingual Plane) or ``str.isalnum`` (the few distinct astral characters)."""
    table = _alnum_table()
    astral = codes >= table.size
    if not astral.any():
        return table[codes]
    out = table[np.where(astral, 0, codes)]
    rare, where = np.unique(codes[astral], return_inverse=True)
    out[astral] = np.array([chr(c).isalnum() for c in rare.tolist()])[where]
    return out


@functools.lru_cache(maxsize=1)
def _replacement_table() -> np.ndarray:
    """``table[min(c, LAST_WHITESPACE + 1)]``: what `normalize_codes` writes for ``c`` (0 = keep it)."""
    table = np.array([SPACE if chr(c).isspace() else 0 for c in range(LAST_WHITESPACE + 2)], dtype=np.uint32)
    table[RIGHT_QUOTE] = APOSTROPHE
    return table


def normalize_codes(low: np.ndarray) -> np.ndarray:
    """`matcher.normalize_text` on the code points of ``lower_text(text)``: every whitespace character a space,
    U+2019 an apostrophe, plus one trailing space (N,) -> (N + 1,) uint32.

    Only a control character (below U+0020) or one beyond ASCII can change: these few are looked up in
    `_replacement_table`.
    """
    norm = np.empty(low.size + 1, dtype=np.uint32)
    norm[:-1] = low
    norm[-1] = SPACE
    odd = np.flatnonzero((low < SPACE) | (low > 0x7F))  # (K,) few, in most text
    replace = _replacement_table()[np.minimum(low[odd], LAST_WHITESPACE + 1)]
    changed = replace != 0
    norm[odd[changed]] = replace[changed]
    return norm


def pair_keys(pairs: frozenset) -> np.ndarray:
    """The two-character strings of ``GramAutomaton.space_pairs`` as sorted int64 keys (see `collapse_codes`)."""
    return np.array(sorted((ord(p[0]) << 21) | ord(p[1]) for p in pairs), dtype=np.int64)


def collapse_codes(norm: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`matcher.collapse_spaces` on the code points of a normalised text (ending with a space): each run of
    2+ spaces between a pair of ``keys`` (`pair_keys`) cut to one space. Returns (collapsed, kept, shifts)
    as arrays, with the meaning of ``collapse_spaces``'s lists."""
    space = norm == SPACE
    double = np.flatnonzero(space[:-1] & space[1:])  # (D,) i: spaces at i and i + 1
    if double.size == 0 or keys.size == 0:
        return norm, np.zeros(0, dtype=np.int64), np.zeros(1, dtype=np.int64)
    first = np.concatenate(([True], double[1:] != double[:-1] + 1))  # (D,) True where a run starts
    starts = double[first]
    ends = double[np.concatenate((np.flatnonzero(first)[1:] - 1, [double.size - 1]))] + 2
    # the characters around each run; a run at 0 reads the trailing space and one at the end reads it
    # too, as collapse_spaces' ``norm[start - 1]`` / ``norm[end:end + 1]`` (never a pair: no gram space
    # sits next to a space)
    around = (norm[starts - 1].astype(np.int64) << 21) | norm[np.minimum(ends, norm.size - 1)]
    at = np.minimum(np.searchsorted(keys, around), keys.size - 1)
    cut = keys[at] == around
    starts, ends = starts[cut], ends[cut]
    if starts.size == 0:
        return norm, np.zeros(0, dtype=np.int64), np.zeros(1, dtype=np.int64)
    dropped = ends - starts - 1  # (K,) spaces cut from each run
    total = np.cumsum(dropped)
    before = total - dropped
    pieces = np.stack([np.concatenate(([0], ends)), np.concatenate((starts + 1, [norm.size]))], axis=1).tolist()
    collapsed = np.concatenate([norm[a:b] for a, b in pieces])  # each run's first space kept, the rest cut
    return collapsed, starts - before, np.concatenate(([0], total))


class Alphabet(NamedTuple):
    """What `narrow_codes` needs of a lexicon: its characters beyond Latin-1, and two Latin-1 ones it lacks."""

    wide: np.ndarray  # (A,) uint32, sorted: the code points above U+00FF in some phrase
    letter: int       # a letter or digit below U+0100 in no phrase (-1: none)
    other: int        # a character below U+0100 in no phrase, not a letter, digit, space or apostrophe (-1: none)


def alphabet(phrases) -> Alphabet:
    """The `Alphabet` of ``phrases``."""
    chars = {ord(ch) for phrase in phrases for ch in phrase}
    free = [c for c in range(1, 0x100) if c not in chars and not chr(c).isspace() and c != APOSTROPHE]
    letter = next((c for c in free if chr(c).isalnum()), -1)
    other = next((c for c in free if not chr(c).isalnum()), -1)
    return Alphabet(np.array(sorted(c for c in chars if c > 0xFF), dtype=np.uint32), letter, other)


def narrow_codes(low: np.ndarray, letters: Alphabet) -> Optional[np.ndarray]:
    """`normalize_codes` in one byte a character, for an automaton over phrases of ``letters``: (N,) -> (N + 1,)
    uint8, or None if a character of the text beyond U+00FF is in some phrase or a stand-in is missing.

    A character beyond U+00FF that no phrase holds becomes a stand-in that no phrase holds either (a letter
    for a letter or digit, else a symbol), so the automaton finds the same occurrences at the same offsets
    and the word-boundary checks read the same. A Latin-1 string costs a quarter of the memory traffic of
    the code points and decodes ~20x faster than UTF-32 when a character beyond U+FFFF is about.
    """
    if min(letters.letter, letters.other) < 0:
        return None
    narrow = np.empty(low.size + 1, dtype=np.uint8)
    narrow[:-1] = low  # wraps beyond U+00FF: each of those is set below
    narrow[-1] = SPACE
    odd = np.flatnonzero((low < SPACE) | (low > 0x7F))  # (K,) few
    codes = low[odd]
    replace = _replacement_table()[np.minimum(codes, LAST_WHITESPACE + 1)]  # (K,) 0 = keep
    wide = np.flatnonzero((codes > 0xFF) & (replace == 0))
    if np.isin(codes[wide], letters.wide).any():
        return None
    replace[wide] = np.where(_wide_alnum(codes[wide]), letters.letter, letters.other)
    changed = replace != 0
    narrow[odd[changed]] = replace[changed]
    return narrow


def words(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(starts, ends) of every word: a maximal run of letters or digits with inner apostrophes
    (``tag.WORD_RE``: an apostrophe joins two runs when a letter or digit is on each side of it).

    ``codes`` may be those of the text, of ``lower_text(text)`` (``str.lower`` keeps a letter or digit one,
    and anything else not one: tested over all of Unicode) or its `narrow_codes` (stand-ins keep letters
    letters; U+2019 is an apostrophe there): all give the same words."""
    word = np.zeros(codes.size + 2, dtype=bool)  # (N + 2,) padded so edges count; True = in a word
    alnum = word[1:-1]
    alnum[:] = is_alnum(codes)
    quote = codes == APOSTROPHE
    if codes.dtype != np.uint8:
        quote |= codes == RIGHT_QUOTE
    quotes = np.flatnonzero(quote)
    quotes = quotes[(quotes > 0) & (quotes < codes.size - 1)]
    inner = quotes[alnum[quotes - 1] & alnum[quotes + 1]]  # decided before any is set: runs stay separate
    alnum[inner] = True
    return np.flatnonzero(word[1:-1] & ~word[:-2]), np.flatnonzero(word[1:-1] & ~word[2:]) + 1


def joined_words(low: np.ndarray, starts: np.ndarray, ends: np.ndarray, n: int, text: Optional[str] = None
                 ) -> list[str]:
    """Groups of ``n`` words, each ``" ".join(text[a:b].lower() for a, b in group)`` (K * n,) -> K strings.

    Gathered from ``low``, the code points of ``lower_text(text)``, and decoded at once (a Python call per
    word costs 3x more). ``text`` is needed only if it holds a `CONTEXT_CHARS` character (None: it holds
    none): a group with one is lowered word by word from it.
    """
    if starts.size == 0:
        return []
    size = ends - starts + 1  # (K * n,) each word and the character after it (a space or the group's end)
    out_at = np.cumsum(size) - size
    at = np.repeat(starts - out_at, size) + np.arange(out_at[-1] + size[-1])
    gathered = low[np.minimum(at, low.size - 1)]  # a word at the very end: its separator slot reads anything
    gathered[out_at + size - 1] = SPACE
    gathered[out_at[n - 1::n] + size[n - 1::n] - 1] = 0  # NUL ends a group: never in a word
    groups = text_of(gathered).split("\x00")[:-1]
    if text is not None:
        # what lower_text made of them: a capital sigma is a small one now, U+0130 stays (a superset: a group
        # with a small sigma of its own is lowered again, to the same text)
        odd = np.flatnonzero(np.isin(gathered, LOWERED_CONTEXT))
        for k in np.unique(np.searchsorted(out_at[::n], odd, side="right") - 1).tolist():
            group = zip(starts[k * n:(k + 1) * n].tolist(), ends[k * n:(k + 1) * n].tolist())
            groups[k] = " ".join(text[a:b].lower() for a, b in group)
    return groups
