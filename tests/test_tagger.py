"""PlanningTagger: each matching rule of method.md section 1 on hand-labelled text, plus properties.

The Aho-Corasick matcher (``find_automaton``, what ``PlanningTagger.find`` runs) is checked against
two independent references: the one-regex trie (``find_regex``) and one regex per gram
(``naive_find`` below), on hand-labelled cases, hypothesis texts and the benchmark corpus.
"""

import copy
import pickle
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmark_modules import benchmark_module
from reasonlens.hierarchy.lexicon import Lexicon
from reasonlens.hierarchy.matcher import (GramAutomaton, Match, build_automaton, collapse_spaces, find_automaton,
                                          find_regex, gram_regex, is_canonical, leftmost_longest, normalize_text,
                                          overlap_mask, regex_finder, span_union)
from reasonlens.hierarchy.tagger import PlanningTagger


def found(tagger, text):
    """(matched text, gram) pairs, in order; the regex reference must agree exactly."""
    matches = tagger.find(text)
    assert matches == find_regex(tagger.lexicon_.phrases, text)
    return [(text[m.start:m.end], m.gram) for m in matches]


@pytest.mark.parametrize("phrases, text, expected", [
    (["so"], "So we add; also so.", [("So", "so"), ("so", "so")]),               # case, not inside "also"
    (["so"], "so2 x9so soon", []),                                               # digits count as word chars
    (["but wait"], "BUT   wait\n\tbut\nwait", [("BUT   wait", "but wait"), ("but\nwait", "but wait")]),
    (["that's"], "that\u2019s it, that's it", [("that\u2019s", "that's"), ("that's", "that's")]),
    (["hmm,"], "Hmm, hmm,x hmm ,", [("Hmm,", "hmm,"), ("hmm,", "hmm,")]),       # ends with ',': no end check
    (["wait, no"], "wait, no. Wait,  no! wait,no", [("wait, no", "wait, no"), ("Wait,  no", "wait, no")]),
    (["does this make sense?"], "Does this make sense?Yes", [("Does this make sense?", "does this make sense?")]),
    (["## step"], "x## Step 1 ## steps", [("## Step", "## step")]),              # '#' start: no start check
    (["let's"], "lets let's let\u2019s", [("let's", "let's"), ("let\u2019s", "let's")]),
    (["step-by-step reasoning"], "Step-by-step  reasoning", [("Step-by-step  reasoning", "step-by-step reasoning")]),
    (["so"], "naïveso élanso so_", [("so", "so")]),                               # unicode letters block; '_' doesn't
    (["but wait"], "but\n\nwait. but\u00a0wait but\u3000 \twait", [("but\n\nwait", "but wait"),
     ("but\u00a0wait", "but wait"), ("but\u3000 \twait", "but wait")]),           # blank line, wide spaces
    (["so"], "İso İ so so\u0130", [("so", "so")]),                               # U+0130 lowers to 2 chars
    (["we can"], "  \n We\t\tcan  \n", [("We\t\tcan", "we can")]),             # runs at both text ends
    (["so"], "so", [("so", "so")]),                                              # the whole text
    (["let's go"], "LET\u2019S\r\n  GO", [("LET\u2019S\r\n  GO", "let's go")]),     # U+2019 and a run together
    (["wait, no"], "x.\n\nwait,\n\nno 1wait, no", [("wait,\n\nno", "wait, no")]),   # digit before; run after ','
], ids=["case-whole-word", "digits", "whitespace-runs", "apostrophe", "trailing-comma", "comma-gram",
        "question-mark", "hash-gram", "contraction", "hyphen", "unicode-letters", "blank-line-and-wide-spaces",
        "dotted-capital-i", "runs-at-ends", "whole-text", "apostrophe-and-run", "runs-next-to-punctuation"])
def test_matching_rules(phrases, text, expected):
    assert found(PlanningTagger(phrases), text) == expected


def test_find_reports_overlapping_occurrences_with_canonical_grams():
    tagger = PlanningTagger(["we can use", "use the fact that", "use the fact", "we can"])
    text = "Then We can use the fact that x is even."
    # hand-labelled: "We can" 5-11, "We can use" 5-15, "use the fact" 12-24, "use the fact that" 12-29
    assert [(m.start, m.end, m.gram) for m in tagger.find(text)] == [
        (5, 11, "we can"), (5, 15, "we can use"), (12, 24, "use the fact"), (12, 29, "use the fact that")]


def test_find_sorts_by_start_when_a_gram_lies_inside_another():
    # The automaton reports occurrences by end: "the fact" (4-12) before "use the fact that" (0-17).
    tagger = PlanningTagger(["use the fact that", "the fact"])
    assert tagger.find("Use the fact that") == [Match(0, 17, "use the fact that"), Match(4, 12, "the fact")]
    assert tagger.find("Use the fact that") == find_regex(tagger.lexicon_.phrases, "Use the fact that")


def test_count_is_leftmost_longest_without_overlap():
    tagger = PlanningTagger(["but", "but wait", "wait", "wait, no"])
    # "But wait" -> 'but wait' (not 'but', not 'wait'); "wait, no" -> 'wait, no'; lone "but" -> 'but'
    assert tagger.count("But wait, this is it. wait, no. but") == {"but wait": 1, "wait, no": 1, "but": 1}


def test_count_on_the_paper_lexicon():
    tagger = PlanningTagger("paper")
    # "we can use the fact that": we can / we can use / use the fact / use the fact that all occur;
    # leftmost-longest takes "we can use" (5..15), then "the fact that" is not a gram -> 1 gram only.
    assert tagger.count("Then we can use the fact that x.") == {"we can use": 1}
    assert tagger.count("But wait, so") == {"but wait": 1, "so": 1}


def test_token_mask_marks_tokens_overlapping_any_span():
    tagger = PlanningTagger(["but wait"])
    text = "ok but wait."
    offsets = [(0, 2), (2, 6), (6, 11), (11, 12), (12, 12)]  # "ok", " but", " wait", ".", empty
    assert tagger.token_mask(text, offsets) == [False, True, True, False, False]


def test_pure_helpers_on_hand_computed_values():
    ms = [Match(0, 3, "a"), Match(0, 8, "b"), Match(5, 10, "c"), Match(12, 14, "d")]
    assert leftmost_longest(ms) == [Match(0, 8, "b"), Match(12, 14, "d")]   # c overlaps b
    assert span_union(ms) == [(0, 10), (12, 14)]
    # tokens [9,12) overlaps (0,10); [10,12) touches only; [13,20) overlaps (12,14)
    assert overlap_mask([(0, 10), (12, 14)], [(9, 12), (10, 12), (13, 20), (14, 14)]) == [True, False, True, False]


def test_estimator_contract_lazy_fit():
    tagger = PlanningTagger("paper")
    assert vars(tagger) == {"lexicon": "paper"}   # __init__ stores only
    assert not hasattr(tagger, "lexicon_")
    assert tagger.find("so") and tagger.lexicon_.name == "paper"
    assert tagger.fit() is tagger and len(tagger.lexicon_) == 249


def test_bad_lexicon_fails_at_fit_not_init(tmp_path):
    from reasonlens.errors import ReasonlensError

    tagger = PlanningTagger(tmp_path / "missing.txt")
    with pytest.raises(ReasonlensError, match="does not exist"):
        tagger.find("so")


def test_fit_builds_one_automaton_for_the_whole_lexicon():
    tagger = PlanningTagger("paper").fit()
    assert isinstance(tagger.automaton_, GramAutomaton)
    assert len(tagger.automaton_.automaton) == 249   # one key per gram
    # "but wait" -> "tw"; "wait, no" -> ",n"; "## step" -> "#s": the pairs a collapsed run can join
    assert {"tw", ",n", "#s"} <= tagger.automaton_.space_pairs and "zz" not in tagger.automaton_.space_pairs


def test_non_canonical_lexicon_falls_back_to_the_regex():
    # A Lexicon built by hand skips normalize_phrase: its phrases keep their literal regex meaning.
    tagger = PlanningTagger(Lexicon("raw", ("but  wait", "that\u2019s"))).fit()
    assert tagger.automaton_ is None
    # "but  wait" needs two whitespace characters (\s+\s+); "that\u2019s" is literal, "that's" is not it
    assert found(tagger, "but wait, but \n wait; that's that\u2019s") == [
        ("but \n wait", "but  wait"), ("that\u2019s", "that\u2019s")]


@pytest.mark.parametrize("phrase, expected", [
    ("but wait", True), ("hmm,", True), ("", False), (" so", False), ("so ", False), ("but  wait", False),
    ("but\twait", False), ("that\u2019s", False), ("but\u00a0wait", False)],
    ids=["words", "punctuation", "empty", "leading-space", "trailing-space", "double-space", "tab", "u2019", "nbsp"])
def test_is_canonical(phrase, expected):
    assert is_canonical(phrase) is expected


def test_normalize_text_keeps_offsets():
    # lower case, each whitespace character -> one space, U+2019 -> "'", one trailing space added
    assert normalize_text("So\tWAIT\u2019s\u00a0x\r\n") == "so wait's x   "
    assert normalize_text("İ\x1c") == "İ  "        # U+0130 kept (its lower case is 2 chars); \x1c is whitespace


def test_collapse_spaces_cuts_only_runs_an_occurrence_can_span():
    # runs: "a  b" (pair "ab": cut), "b.   c" (".c": kept), "c    d" ("cd": cut)
    collapsed, kept, shifts = collapse_spaces("a  b.   c    d", frozenset({"ab", "cd"}))
    assert collapsed == "a b.   c d"
    assert kept == [1, 8] and shifts == [0, 1, 4]     # cut 1 char at run 0, 3 more at run 1
    # "d" is at 9 in collapsed: 9 + shifts[bisect_right([1, 8], 9)] = 9 + 4 = 13 in the input
    assert "a  b.   c    d"[13] == "d"
    assert collapse_spaces("a b", frozenset({"ab"})) == ("a b", [], [0])


def test_every_code_point_classified_like_the_regex():
    # The automaton path replaces the regex classes by str methods: check them on all of Unicode.
    every = "".join(map(chr, range(0x110000)))
    assert re.findall(r"\s", every) == [c for c in every if c.isspace()]
    assert re.findall(r"[^\W_]", every) == [c for c in every if c.isalnum()]   # the boundary class
    lowered = [c.lower() if len(c.lower()) == 1 else c for c in every]          # lower_text, per character
    assert normalize_text(every) == "".join(" " if c.isspace() else "'" if c == "\u2019" else c
                                            for c in lowered) + " "


def test_fitted_tagger_pickles_and_copies():
    tagger = PlanningTagger(["but wait", "so"]).fit()
    text = "But\n\nwait, so."
    for clone in (pickle.loads(pickle.dumps(tagger)), copy.deepcopy(tagger)):
        assert isinstance(clone.automaton_, GramAutomaton)   # rebuilt from lexicon_ on load
        assert clone.lexicon_ == tagger.lexicon_ and clone.find(text) == tagger.find(text)
    lazy = pickle.loads(pickle.dumps(PlanningTagger(["so"])))  # unfitted: still fits on first use
    assert vars(lazy) == {"lexicon": ["so"]} and lazy.find("so") == [Match(0, 2, "so")]


def test_tagger_is_a_sklearn_estimator():
    from sklearn.base import clone

    tagger = PlanningTagger(["so"]).fit()
    assert repr(tagger) == "PlanningTagger(lexicon=['so'])" and repr(PlanningTagger()) == "PlanningTagger()"
    copy = clone(tagger)  # the parameters, not the learned state
    assert copy.get_params() == {"lexicon": ["so"]} and not hasattr(copy, "lexicon_")
    assert copy.find("so") == [Match(0, 2, "so")]


# ---- properties ------------------------------------------------------------------------------
WORDS = ["so", "also", "but", "wait", "Wait,", "no", "we", "can", "use", "the", "fact", "that", "that\u2019s",
         "hmm,", "##", "step", "x1", "?", "does", "this", "make", "sense?", "let's", "Let\u2019s", "it"]
LEXICON = ["so", "but", "but wait", "wait", "wait, no", "we can", "we can use", "use the fact that",
           "the fact", "hmm,", "## step", "does this make sense?", "let's", "that's", "it"]
texts = st.lists(st.tuples(st.sampled_from(WORDS), st.sampled_from([" ", "  ", "\n", "", ", "])),
                 max_size=30).map(lambda parts: "".join(w + s for w, s in parts))
TAGGER = PlanningTagger(LEXICON).fit()


def naive_find(phrases, text):
    """Reference: one regex per gram, lookahead for overlapping occurrences, IGNORECASE on the raw text."""
    out = []
    for phrase in phrases:
        pattern = re.compile("(?=(" + gram_regex(phrase) + "))", re.IGNORECASE)
        out += [Match(m.start(1), m.end(1), phrase) for m in pattern.finditer(text)]
    return sorted(out)


@settings(max_examples=300, deadline=None)
@given(texts)
def test_single_regex_equals_per_gram_reference(text):
    assert sorted(find_regex(LEXICON, text)) == naive_find(LEXICON, text)


@settings(max_examples=300, deadline=None)
@given(texts)
def test_automaton_equals_both_references(text):
    assert TAGGER.find(text) == find_regex(LEXICON, text)
    assert sorted(TAGGER.find(text)) == naive_find(LEXICON, text)


# Harder texts: whitespace runs of every kind, U+2019, digits/underscores/non-ASCII letters glued to
# words, and characters whose lower case is longer (U+0130) or context-dependent (final sigma).
SPACES = [" ", "  ", "\n", "\n\n", "\t", " \t\n ", "\r\n", "\u00a0", "\u3000", "\u2009 ", "\x1c", "\x85"]
GLUE = ["", "", "", "1", "_", "é", "ß", "İ", "Σ", "\u2019", "'", ",", ".", "#", "?", "x"]
hard_texts = st.lists(st.tuples(st.sampled_from(GLUE), st.sampled_from(WORDS), st.sampled_from(GLUE),
                                st.sampled_from(SPACES + ["", ", ", ".\n\n"])),
                      max_size=30).map(lambda parts: "".join(a + w + b + s for a, w, b, s in parts))


@settings(max_examples=500, deadline=None)
@given(hard_texts)
def test_automaton_equals_references_on_hard_texts(text):
    assert TAGGER.find(text) == find_regex(LEXICON, text)
    assert sorted(TAGGER.find(text)) == naive_find(LEXICON, text)


PAPER = PlanningTagger("paper").fit()
PAPER_WORDS = sorted({w for p in PAPER.lexicon_.phrases for w in p.split()}) + ["also", "x1", "The", "Wait,"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(PAPER_WORDS), st.sampled_from(SPACES + [", "])), max_size=40)
       .map(lambda parts: "".join(w + s for w, s in parts)))
def test_automaton_equals_regex_on_paper_lexicon(text):
    assert PAPER.find(text) == find_regex(PAPER.lexicon_.phrases, text)


def test_automaton_equals_regex_on_realistic_reasoning():
    corpus = benchmark_module("_corpus")
    texts = corpus.reasoning_responses(150, seed=7) + corpus.long_chains_of_thought(8, seed=7)
    phrases = PAPER.lexicon_.phrases
    mismatched = [i for i, text in enumerate(texts) if PAPER.find(text) != find_regex(phrases, text)]
    assert mismatched == []
    assert sum(len(PAPER.find(t)) for t in texts) > 1000   # the corpus does exercise the lexicon


def test_find_automaton_is_a_pure_function():
    grams = build_automaton(["but", "but wait", "so"])
    # "But" 0-3, "But  wait" 0-9 (the run of 2 is cut, then mapped back), "so" 16-18 (not inside "also")
    assert find_automaton(grams, "But  wait, also so.") == [Match(0, 3, "but"), Match(0, 9, "but wait"),
                                                            Match(16, 18, "so")]
    assert build_automaton(["so", "but  wait"]) is None and build_automaton([]) is None


def test_regex_finder_is_find_regex_compiled_once():
    text = "But  wait, also so. Wait, no"
    assert regex_finder(LEXICON)(text) == find_regex(LEXICON, text) == TAGGER.find(text)


@settings(max_examples=200, deadline=None)
@given(texts)
def test_mask_is_union_of_found_spans(text):
    offsets = [(i, i + 1) for i in range(len(text))]  # one token per character
    covered = set()
    for m in TAGGER.find(text):
        covered.update(range(m.start, m.end))
    assert TAGGER.token_mask(text, offsets) == [i in covered for i in range(len(text))]


@settings(max_examples=200, deadline=None)
@given(texts)
def test_counts_never_overlap_and_come_from_found(text):
    chosen = leftmost_longest(TAGGER.find(text))
    assert all(a.end <= b.start for a, b in zip(chosen, chosen[1:]))
    assert set(chosen) <= set(TAGGER.find(text))
    assert sum(TAGGER.count(text).values()) == len(chosen)
