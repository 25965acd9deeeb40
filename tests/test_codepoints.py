"""hierarchy.codepoints (the tag stage's text helpers on code point arrays) against their references:
matcher.normalize_text / collapse_spaces, tag.WORD_RE, str.isalnum and str.lower per word."""

import sys

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from reasonlens.hierarchy import batch
from reasonlens.hierarchy import codepoints as cp
from reasonlens.hierarchy.tag import WORD_RE, _tagger
from reasonlens.hierarchy.lexicon import load_lexicon
from reasonlens.hierarchy.matcher import build_automaton, collapse_spaces, lower_text, normalize_text

# whitespace of every kind (tab, newline, NEL, NBSP, U+3000, line separator), both apostrophes, sigma and
# U+0130 (case rules with context / longer lower case), an astral letter and symbol, a control character
PIECES = ["a", "B", "so", "but", "wait", "can", "we", " ", "  ", "\t", "\n\n", "\x0b", "\x1c", "\x85", "\xa0",
          "\u3000", "\u2028", "'", "\u2019", "\u03a3", "O\u03a3", "\u0130", "\U0001d400", "\U0001f600", "\x01",
          ".", ",", "_", "3", "\ud800"]
TEXTS = st.lists(st.sampled_from(PIECES) | st.text(max_size=3).filter(lambda t: "\x00" not in t),
                 max_size=30).map("".join)
PAIRS = st.frozensets(st.sampled_from(["ab", "bw", "tw", "ns", "oc", "ac", "a'", "\u03c3a", "a\U0001d400"]),
                      max_size=5)


def _low(text):
    return cp.code_points(lower_text(text))


@settings(max_examples=300, deadline=None)
@given(TEXTS)
def test_normalize_codes_equals_normalize_text(text):
    assert cp.text_of(cp.normalize_codes(_low(text))) == normalize_text(text)


@settings(max_examples=300, deadline=None)
@given(TEXTS, PAIRS)
def test_collapse_codes_equals_collapse_spaces(text, pairs):
    norm = normalize_text(text)
    collapsed, kept, shifts = cp.collapse_codes(cp.normalize_codes(_low(text)), cp.pair_keys(pairs))
    assert (cp.text_of(collapsed), kept.tolist(), shifts.tolist()) == collapse_spaces(norm, pairs)


def test_collapse_codes_by_hand():
    # collapse_spaces' own example: the run between "a" and "b" is cut (pair "ab"), the one after "." is not
    norm = cp.code_points("a  b.   c")
    collapsed, kept, shifts = cp.collapse_codes(norm, cp.pair_keys(frozenset({"ab", "bc"})))
    assert (cp.text_of(collapsed), kept.tolist(), shifts.tolist()) == ("a b.   c", [1], [0, 1])


def test_collapse_codes_with_the_paper_lexicon():
    pairs = build_automaton(_tagger(load_lexicon("paper"))[0]).space_pairs
    text = "But \t wait,  so  we can\u00a0\u00a0see  that.\n\nLet\u2019s   check."
    norm = normalize_text(text)
    collapsed, kept, shifts = cp.collapse_codes(cp.normalize_codes(_low(text)), cp.pair_keys(pairs))
    assert (cp.text_of(collapsed), kept.tolist(), shifts.tolist()) == collapse_spaces(norm, pairs)
    assert kept.size >= 3  # "but   wait", "so  we", "can  see" are cut


def test_unicode_facts_the_helpers_rely_on():
    # over every code point: the table's end (U+3000 is the last whitespace), one length-changing lower case
    # (U+0130), and str.lower never makes a letter or digit of anything else, nor the reverse
    chars = [chr(c) for c in range(sys.maxunicode + 1)]
    assert max(ord(ch) for ch in chars if ch.isspace()) == cp.LAST_WHITESPACE
    assert [ord(ch) for ch in chars if len(ch.lower()) != 1] == [0x130]
    assert all(ch.isalnum() == ch.lower().isalnum() for ch in chars if len(ch.lower()) == 1)
    flags = cp.is_alnum(np.arange(sys.maxunicode + 1, dtype=np.uint32))
    assert flags.tolist() == [ch.isalnum() for ch in chars]
    assert cp.is_alnum(np.arange(256, dtype=np.uint8)).tolist() == [ch.isalnum() for ch in chars[:256]]  # bytes too


@settings(max_examples=300, deadline=None)
@given(TEXTS)
def test_words_from_the_text_its_lower_case_or_narrow_codes_equal_the_word_regex(text):
    expected = [m.span() for m in WORD_RE.finditer(text)]
    narrow = cp.narrow_codes(_low(text), cp.alphabet(("so", "but wait")))[:-1]
    for codes in (cp.code_points(text), _low(text), narrow):
        starts, ends = cp.words(codes)
        assert list(zip(starts.tolist(), ends.tolist())) == expected


def test_words_by_hand():
    # "it's" is one word (inner apostrophe), "x''y" two, "'a" one (a leading apostrophe is not inner),
    # "\U0001d400" (mathematical bold A) is a letter beyond the Basic Multilingual Plane
    text = "it's x''y 'a \U0001d400b_c"
    starts, ends = cp.words(cp.code_points(text))
    assert [text[a:b] for a, b in zip(starts, ends)] == ["it's", "x", "y", "a", "\U0001d400b", "c"]


@settings(max_examples=300, deadline=None)
@given(TEXTS, st.integers(1, 3), st.data())
def test_joined_words_equal_lowering_word_by_word(text, n, data):
    spans = [m.span() for m in WORD_RE.finditer(text)]
    picks = data.draw(st.lists(st.integers(0, max(len(spans) - n, 0)), max_size=6)) if len(spans) >= n else []
    group_spans = [spans[i + j] for i in picks for j in range(n)]  # overlapping groups, any order
    starts = np.array([a for a, _ in group_spans], dtype=np.int64)
    ends = np.array([b for _, b in group_spans], dtype=np.int64)
    expected = [" ".join(text[a:b].lower() for a, b in group_spans[k:k + n]) for k in range(0, len(group_spans), n)]
    assert cp.joined_words(_low(text), starts, ends, n, text) == expected
    if not any(ch in text for ch in cp.CONTEXT_CHARS):
        assert cp.joined_words(_low(text), starts, ends, n) == expected


def test_joined_words_by_hand():
    # "O\u03a3" lowered alone ends in a final sigma; in "O\u03a3.A" lower_text gives a small one (a cased letter
    # follows past the full stop), so that group is lowered word by word: "o\u03c2 a"
    text = "O\u03a3.A Big Dog"
    assert "\u03c3" in lower_text(text)
    starts, ends = np.array([0, 3, 5, 9]), np.array([2, 4, 8, 12])
    assert cp.joined_words(_low(text), starts, ends, 2, text) == ["o\u03c2 a", "big dog"]
    # U+0130 lowers to 2 characters ("i" and a combining dot): lower_text keeps it, the group is lowered alone
    text = "\u0130x Big"
    assert cp.joined_words(_low(text), np.array([0, 3]), np.array([2, 6]), 2, text) == ["i\u0307x big"]


def test_covered_by_hand():
    # words [0,2) [3,5) [6,9) [10,12); spans [1,4) meet the first two, [9,10) none (ends touch only), [11,20) the last
    starts, ends = np.array([0, 3, 6, 10]), np.array([2, 5, 9, 12])
    hit = batch.covered(np.array([1, 9, 11]), np.array([4, 10, 20]), starts, ends)
    assert hit.tolist() == [0, 1, 3]
    # two spans inside one word ("a's'b's" with the gram "'s"), and a span over two words: listed once each
    hit = batch.covered(np.array([1, 5, 10]), np.array([3, 7, 14]), np.array([0, 10, 12]), np.array([7, 11, 15]))
    assert hit.tolist() == [0, 1, 2]


WIDE_PHRASES = ("so", "x\u00e9", "\u00fcber", "wait a")  # Latin-1 only: the texts' wider characters are stood in for
WIDER = ["\u2192", "\u00fcber", "x\U0001d400", "\u03c3", "\u0416", "\U0001f600"]  # arrow, Cyrillic, astral letter/emoji


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(PIECES + WIDER) | TEXTS, max_size=12).map("".join))
def test_narrow_codes_find_and_bound_what_the_full_codes_do(text):
    grams = batch.batch_automaton(WIDE_PHRASES)
    norm = cp.normalize_codes(_low(text))
    narrow = cp.narrow_codes(_low(text), grams.alphabet)
    assert narrow.dtype == np.uint8 and narrow.size == norm.size
    latin = norm < 0x100
    assert (narrow[latin] == norm[latin]).all()  # the same text where it fits in a byte
    assert (cp.is_alnum(narrow) == cp.is_alnum(norm)).all()  # stand-ins keep letter-or-digit
    assert list(grams.automaton.iter(cp.text_of(narrow))) == list(grams.automaton.iter(cp.text_of(norm)))


def test_narrow_codes_gives_way_to_wide_phrases():
    # a phrase holding U+2192 and a text holding it: no byte may stand for it, so None (find_batch then
    # scans the code points); a text without it narrows: the letter U+0416 becomes "0" (the first letter or
    # digit in no phrase), the symbol U+2200 becomes U+0001, the tab a space, plus the trailing space
    letters = cp.alphabet(("\u2192 so", "so"))
    assert cp.narrow_codes(cp.code_points("a \u2192 so"), letters) is None
    assert cp.text_of(cp.narrow_codes(cp.code_points("\u0416\u2200 so\t"), letters)) == "0\x01 so  "


def test_alphabet_by_hand():
    # the wide characters of the phrases, sorted; the stand-ins: the first letter or digit ("1": "0" is in a
    # phrase) and the first other character from U+0001 that no phrase holds (U+0001-U+0003 are: U+0004)
    letters = cp.alphabet(("\x01a0\u2192", "\x02\U0001d400", "\x03"))
    assert letters.wide.tolist() == [0x2192, 0x1D400] and (letters.letter, letters.other) == (ord("1"), 4)
    # a lexicon holding all of Latin-1 has no stand-in: the text is not narrowed
    full = cp.alphabet(("".join(map(chr, range(1, 0x100))),))
    assert (full.letter, full.other) == (-1, -1) and cp.narrow_codes(cp.code_points("ab"), full) is None
