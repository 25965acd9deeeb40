"""The tag stage: one tagger pass per response gives every gram column, checked by hand."""

import pandas as pd
import pytest

from reasonlens import columns as C
from reasonlens.errors import ReasonlensError
from reasonlens.hierarchy import batch as batch_module
from reasonlens.hierarchy.codepoints import text_of
from reasonlens.hierarchy.tag import TAG_COLUMNS, next_word_ngrams, tag_response, tag_rollouts, word_spans
from reasonlens.hierarchy.matcher import leftmost_longest, span_union
from reasonlens.hierarchy.tagger import PlanningTagger

LEXICON = ["but wait", "let's try", "so", "wait"]


def test_next_word_ngrams_skips_grams():
    # "so" (0-2) and "but wait" (4-12) both continue with the first non-SG words "we add 3";
    # the last "so" has only 1 following word ("done") -> ""
    text = "So, but wait, we add 3 so done"
    found = PlanningTagger(LEXICON).find(text)
    assert next_word_ngrams(text, leftmost_longest(found), span_union(found)) == ["we add 3", "we add 3", ""]


def test_words():
    # "So", "we", "add", "3", "that's", "it" -> 6 words
    assert len(word_spans("So, we add 3 -- that's it.")) == 6


def test_tag_response_by_hand():
    text = "So, but wait, we add 3 -- that's it."
    row = tag_response(text, LEXICON, offsets=[(0, 2), (2, 3), (3, 7), (7, 12), (12, len(text))])
    # occurrences: so (0, 2), but wait (4, 12), wait (8, 12): union [(0, 2), (4, 12)];
    # counted longest first: so, but wait; "wait" is also a reflection marker: 1 reflection
    assert row[C.PLANNING_SPANS] == [[0, 2], [4, 12]]
    assert row[C.GRAMS] == ["so", "but wait"] and row[C.GRAM_NEXT] == ["we add 3", "we add 3"]
    # words: So, but, wait, we, add, 3, that's, it = 8; planning: So, but, wait = 3
    assert (row[C.N_WORDS], row[C.N_PLANNING_WORDS], row[C.N_REFLECTIONS]) == (8, 3, 1)
    # tokens "So" ", " " but" " wait" rest: the 2nd token (2, 3) touches no span
    assert row[C.PLANNING_MASK] == [True, False, True, True, False]


def test_reflection_markers():
    # 1: "Wait" + "let me check" = 2; 2: "Hmm" + "let me verify" (once, longest first) = 2; 3: "verified" = 0
    counts = [tag_response(t, ["zzz"])[C.N_REFLECTIONS]
              for t in ("Wait, let me check.", "Hmm... let me verify this.", "I verified it.")]
    assert counts == [2, 2, 0]


def test_tag_rollouts_one_matcher_pass(monkeypatch):
    calls = []
    real = batch_module.find_batch
    monkeypatch.setattr(batch_module, "find_batch", lambda grams, norm: calls.append(text_of(norm)) or real(grams, norm))
    df = pd.DataFrame({C.STEP: [0, 0], C.RESPONSE: ["so, wait", "nothing"],
                       C.TOKEN_OFFSETS: [[[0, 2], [2, 8]], [[0, 7]]]})
    tagged = tag_rollouts(df, LEXICON)
    assert calls == ["so, wait\x00nothing "]  # one automaton pass over the batch, responses joined by NUL
    assert set(TAG_COLUMNS + [C.PLANNING_MASK]) <= set(tagged.columns)
    assert tagged[C.PLANNING_MASK].tolist() == [[True, True], [False]]
    assert tagged[C.GRAMS].tolist() == [["so", "wait"], []]


def test_tag_rollouts_without_tokens_has_no_mask():
    tagged = tag_rollouts(pd.DataFrame({C.RESPONSE: ["so"]}), LEXICON)
    assert C.PLANNING_MASK not in tagged and tagged[C.N_PLANNING_WORDS].tolist() == [1]


def test_tag_rollouts_needs_a_response():
    with pytest.raises(ReasonlensError, match="no 'response' column"):
        tag_rollouts(pd.DataFrame({"text": ["so"]}), LEXICON)
