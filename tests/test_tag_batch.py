"""The vectorised tag path (hierarchy.batch, tag.tag_texts) against the reference tag.tag_response, column by column."""


import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmark_modules import benchmark_module
from reasonlens import columns as C
from reasonlens.hierarchy import batch
from reasonlens.hierarchy.lexicon import Lexicon
from reasonlens.hierarchy.tag import TAG_COLUMNS, tag_response, tag_rollouts, tag_texts

ALL = TAG_COLUMNS + [C.PLANNING_MASK]


def _token_offsets(text):
    """Whitespace-led tokens, as a BPE cuts text: " word" pieces covering the text, plus an empty token."""
    cuts = [0] + [i for i in range(1, len(text)) if text[i].isspace() and not text[i - 1].isspace()] + [len(text)]
    return [[a, b] for a, b in zip(cuts[:-1], cuts[1:])] + [[len(text), len(text)]]


def _mismatches(texts, lexicon="paper", offsets=None):
    """(column, text index) where the batch path and the reference differ."""
    fast = tag_texts(texts, lexicon, offsets)
    out = []
    for i, text in enumerate(texts):
        ref = tag_response(text, lexicon, None if offsets is None else offsets[i])
        out += [(column, i) for column in ref if ref[column] != fast[column][i]]
    return out


def test_batch_equals_reference_on_real_transcripts():
    corpus = benchmark_module("_corpus")
    texts = [r["response"] for r in corpus.champ_transcripts()[:1200:3]] + corpus.long_chains_of_thought(6, seed=3)
    assert _mismatches(texts, offsets=[_token_offsets(t) for t in texts]) == []
    fast = tag_texts(texts)
    # the corpus exercises every column: grams with next words, planning words, reflections
    assert sum(map(len, fast[C.GRAMS])) > 2000 and sum(g != "" for r in fast[C.GRAM_NEXT] for g in r) > 1000
    assert sum(fast[C.N_REFLECTIONS]) > 100 and 0 < sum(fast[C.N_PLANNING_WORDS]) < sum(fast[C.N_WORDS])


PIECES = ["but", "wait", "But  Wait", "so", "also", "let me", "check", "verify", "hmm,", "## step", "Let\u2019s",
          "that's", "x1", "_", "\u0130", "\u03a3", "O\u03a3", "\U0001d400", "\x00", "\u3000", "\t", "\n\n", " ",
          "'", "''", "-", ".", "3", "wait's", "i.e."]
TEXTS = st.lists(st.sampled_from(PIECES) | st.text(max_size=3), max_size=25).map("".join)


@settings(max_examples=300, deadline=None)
@given(st.lists(TEXTS, min_size=1, max_size=6))
def test_batch_equals_reference_on_generated_text(texts):
    offsets = [_token_offsets(t) + [[-2, 1], [len(t), len(t) + 5], [3, 2]] for t in texts]  # odd spans too
    assert _mismatches(texts, "paper", offsets) == []
    assert _mismatches(texts, ["but", "but wait", "so", "wait", "hmm,", "## step", "let's", "'s"]) == []


def test_union_and_leftmost_longest_by_hand():
    # spans (0, 3) (0, 8) (8, 10) (12, 14): union (0, 10) (12, 14) (touching spans merge, as span_union does);
    # leftmost longest: (0, 8) then (8, 10) then (12, 14)
    starts, ends = np.array([0, 0, 8, 12]), np.array([3, 8, 10, 14])
    merged = batch.union(starts, ends)
    assert merged[0].tolist() == [0, 12] and merged[1].tolist() == [10, 14]
    assert batch.leftmost_longest(starts, ends).tolist() == [1, 2, 3]


def test_non_canonical_lexicon_takes_the_reference_matcher():
    # a phrase with two spaces cannot go in the automaton: each text goes through tagger.find (the regex)
    lexicon = Lexicon("odd", ("but  wait", "so"))
    texts = ["So, but  wait, we add 3 now.", "but wait", ""]
    assert batch.batch_automaton(("but  wait", "so")) is None
    assert _mismatches(texts, lexicon) == []
    assert tag_texts(texts, lexicon)[C.GRAMS] == [["so", "but  wait"], [], []]


def test_tag_rollouts_keeps_rows_without_offsets():
    df = pd.DataFrame({C.RESPONSE: ["so, wait", None], C.TOKEN_OFFSETS: [[[0, 2], [2, 8]], None]})
    tagged = tag_rollouts(df, ["so", "wait"])
    # "so" (0, 2) and "wait" (4, 8) are planning; the second row has no text and no tokens
    assert tagged[C.PLANNING_MASK].tolist() == [[True, True], None]
    assert tagged[C.N_WORDS].tolist() == [2, 0] and tagged[C.GRAMS].tolist() == [["so", "wait"], []]
