"""PlanningTagger: each matching rule of method.md section 1 on hand-labelled text, plus properties."""

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reasonlens.hierarchy.tagger import (Match, PlanningTagger, gram_regex, leftmost_longest, overlap_mask,
                                         span_union)


def found(tagger, text):
    """(matched text, gram) pairs, in order."""
    return [(text[m.start:m.end], m.gram) for m in tagger.find(text)]


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
], ids=["case-whole-word", "digits", "whitespace-runs", "apostrophe", "trailing-comma", "comma-gram",
        "question-mark", "hash-gram", "contraction", "hyphen", "unicode-letters"])
def test_matching_rules(phrases, text, expected):
    assert found(PlanningTagger(phrases), text) == expected


def test_find_reports_overlapping_occurrences_with_canonical_grams():
    tagger = PlanningTagger(["we can use", "use the fact that", "use the fact", "we can"])
    text = "Then We can use the fact that x is even."
    # hand-labelled: "We can" 5-11, "We can use" 5-15, "use the fact" 12-24, "use the fact that" 12-29
    assert [(m.start, m.end, m.gram) for m in tagger.find(text)] == [
        (5, 11, "we can"), (5, 15, "we can use"), (12, 24, "use the fact"), (12, 29, "use the fact that")]


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


def test_one_compiled_pattern_for_the_whole_lexicon():
    tagger = PlanningTagger("paper").fit()
    assert isinstance(tagger.pattern_, re.Pattern)
    assert tagger.pattern_.groups == 249   # one empty capture group per gram end


# ---- properties ------------------------------------------------------------------------------
WORDS = ["so", "also", "but", "wait", "Wait,", "no", "we", "can", "use", "the", "fact", "that", "that\u2019s",
         "hmm,", "##", "step", "x1", "?", "does", "this", "make", "sense?", "let's", "Let\u2019s", "it"]
LEXICON = ["so", "but", "but wait", "wait", "wait, no", "we can", "we can use", "use the fact that",
           "the fact", "hmm,", "## step", "does this make sense?", "let's", "that's", "it"]
texts = st.lists(st.tuples(st.sampled_from(WORDS), st.sampled_from([" ", "  ", "\n", "", ", "])),
                 max_size=30).map(lambda parts: "".join(w + s for w, s in parts))
TAGGER = PlanningTagger(LEXICON).fit()


def naive_find(phrases, text):
    """Reference: one regex per gram, lookahead for overlapping occurrences."""
    out = []
    for phrase in phrases:
        pattern = re.compile("(?=(" + gram_regex(phrase) + "))", re.IGNORECASE)
        out += [Match(m.start(1), m.end(1), phrase) for m in pattern.finditer(text)]
    return sorted(out)


@settings(max_examples=300, deadline=None)
@given(texts)
def test_single_regex_equals_per_gram_reference(text):
    assert sorted(TAGGER.find(text)) == naive_find(LEXICON, text)


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
