"""The tag stage: strategic grams are found once per response, and every consumer reads the columns.

`tag_rollouts` adds to the rollout table (names in `reasonlens.columns`):
- ``planning_spans``: the union of all gram occurrences, overlaps included, as disjoint [start, end)
  character spans of the response (method.md section 1: a token overlapping one is a planning token);
- ``planning_mask``: one bool per token, from ``token_offsets`` (rows with tokens only);
- ``grams``: the counted occurrences, left to right, longest first, without overlap (what SG
  semantic entropy counts), and ``gram_next``: for each, the next non-SG word 3-gram ("" when fewer
  than 3 words follow), for the conditional procedural entropy;
- ``n_words`` / ``n_planning_words``: words, and words overlapping a gram (the planning ratio of
  logs without tokens); ``n_reflections``: backtracking and verification markers.

One matcher pass answers all of it: the lexicon and the reflection markers are compiled into one
matcher (`matcher.gram_finder`) and its occurrences split by phrase. `tag_response` is the reference, one response at a time;
`tag_rollouts` and `tag_texts` run the same rules over a whole batch as arrays (`hierarchy.batch`,
~10x faster; the tests hold them equal on real transcripts and generated text). The dynamics table, the top-grams
figure, the report and the trainer's per-step metrics read these columns; none re-tags or decodes.
A *word* is a maximal run of letters or digits with inner apostrophes ("that's" is one word).
"""

from __future__ import annotations

import bisect
import functools
import re
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from reasonlens import columns as C
from reasonlens.errors import ReasonlensError
from reasonlens.hierarchy.batch import tag_batch
from reasonlens.hierarchy.lexicon import Lexicon, LexiconSpec, load_lexicon
from reasonlens.hierarchy.matcher import Match, gram_counts, gram_finder, leftmost_longest, overlap_mask, span_union

TAG_VERSION = 1  # bump when the content of a tag column changes
NEXT_WORDS = 3   # the "next non-SG word 3-gram" of the conditional procedural entropy
WORD_RE = re.compile(r"[^\W_]+(?:['\u2019][^\W_]+)*")
REFLECTION_MARKERS = (
    "wait", "hmm", "let me check", "let me double-check", "double-check", "double check",
    "let me verify", "verify", "re-check", "recheck", "on second thought", "let me reconsider",
)
"""Backtracking / verification phrases counted per response (whole words, any case; "verify" does
not match "verified"), longest first without overlap, so "let me verify" counts once."""


def word_spans(text: str) -> list[tuple[int, int]]:
    """Character (start, end) of every word of ``text``."""
    return [m.span() for m in WORD_RE.finditer(text)]


def next_word_ngrams(text: str, counted: Sequence[Match], spans: Sequence[tuple[int, int]],
                     n: int = NEXT_WORDS) -> list[str]:
    """For each counted occurrence, its next non-SG word n-gram, space-joined and lower-cased ("" if none).

    The next non-SG word n-gram is the first ``n`` words that start after the occurrence ends and
    overlap no gram occurrence (``spans``, the union): grams in between are skipped, so in "so, but
    wait, we add 3" both "so" and "but wait" continue with "we add 3". Words may cross sentence
    punctuation but never leave the response.

    >>> found = gram_finder(("so", "but wait"))("So, but wait, we add 3.")
    >>> next_word_ngrams("So, but wait, we add 3.", leftmost_longest(found), span_union(found))
    ['we add 3', 'we add 3']
    """
    words = word_spans(text)
    free = [(a, text[a:b].lower()) for (a, b), planning in zip(words, overlap_mask(spans, words)) if not planning]
    starts = [a for a, _ in free]
    out = []
    for m in counted:
        i = bisect.bisect_left(starts, m.end)
        out.append(" ".join(w for _, w in free[i:i + n]) if i + n <= len(free) else "")
    return out


@functools.lru_cache(maxsize=8)
def _tagger(lexicon: Lexicon) -> tuple[tuple[str, ...], frozenset, frozenset]:
    """The phrases of one matcher over the lexicon and the reflection markers, and the phrases of each."""
    reflection = load_lexicon(list(REFLECTION_MARKERS)).phrases
    return tuple(dict.fromkeys(lexicon.phrases + reflection)), frozenset(lexicon.phrases), frozenset(reflection)


@functools.lru_cache(maxsize=8)
def _batch_tagger(lexicon: Lexicon) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """`_tagger` for `batch.tag_batch`: which of the matcher's phrases are grams (P,) and reflection markers (P,)."""
    phrases, planning, reflection = _tagger(lexicon)
    return phrases, np.array([p in planning for p in phrases]), np.array([p in reflection for p in phrases])


def tag_texts(texts: Sequence[str], lexicon: LexiconSpec = "paper", offsets=None) -> dict[str, list]:
    """The tag columns of many responses, one list per column: `tag_response` on each text, vectorised
    over the batch (`hierarchy.batch`); ``planning_mask`` only with ``offsets`` (one entry per text).

    >>> tag_texts(["So we add.", "Wait."], ["so"])["n_planning_words"]
    [1, 0]
    """
    phrases, planning, reflection = _batch_tagger(load_lexicon(lexicon))
    return tag_batch(texts, phrases, planning, reflection, offsets, NEXT_WORDS)


def tag_response(text: str, lexicon: LexiconSpec = "paper", offsets=None) -> dict:
    """The tag columns of one response (see the module docstring); ``planning_mask`` only with ``offsets``.

    >>> row = tag_response("But wait, so we add.", ["but", "but wait", "so"], offsets=[(0, 3), (3, 8), (8, 20)])
    >>> row["grams"], row["planning_mask"], row["n_reflections"]
    (['but wait', 'so'], [True, True, True], 1)
    """
    phrases, planning_phrases, reflection_phrases = _tagger(load_lexicon(lexicon))
    found = gram_finder(phrases)(text)  # the one pass over the text
    planning = [m for m in found if m.gram in planning_phrases]
    spans = span_union(planning)
    counted = leftmost_longest(planning)
    words = word_spans(text)
    row = {
        C.PLANNING_SPANS: [list(s) for s in spans],
        C.GRAMS: [m.gram for m in counted],
        C.GRAM_NEXT: next_word_ngrams(text, counted, spans),
        C.N_WORDS: len(words),
        C.N_PLANNING_WORDS: sum(overlap_mask(spans, words)),
        C.N_REFLECTIONS: len(leftmost_longest(m for m in found if m.gram in reflection_phrases)),
    }
    if offsets is not None:
        row[C.PLANNING_MASK] = overlap_mask(spans, [tuple(o) for o in offsets])
    return row


def tag_rollouts(rollouts: pd.DataFrame, lexicon: LexiconSpec = "paper") -> pd.DataFrame:
    """A copy of the rollout table with the tag columns; ``planning_mask`` where ``token_offsets`` exist.

    Parameters
    ----------
    rollouts : DataFrame with ``response`` and optionally ``token_offsets`` (list of [start, end] per
        token, from `reasonlens.models.offsets.token_offsets`, aligned with ``token_ids``).
    lexicon : the strategic-gram lexicon (preset name, file, phrases or Lexicon).

    Examples
    --------
    >>> df = tag_rollouts(pd.DataFrame({"response": ["so, we add"]}), ["so"])
    >>> df["grams"].tolist(), df["n_planning_words"].tolist()
    ([['so']], [1])
    """
    if C.RESPONSE not in rollouts.columns:
        raise ReasonlensError(f"rollout table has no {C.RESPONSE!r} column (columns: {list(rollouts.columns)}): "
                              "tagging reads the response text.")
    has_offsets = C.TOKEN_OFFSETS in rollouts.columns
    texts = ["" if text is None or text is pd.NA or (isinstance(text, float) and np.isnan(text)) else str(text)
             for text in rollouts[C.RESPONSE]]  # a missing response is empty (pandas makes None NaN), not "nan"
    columns = tag_texts(texts, lexicon, rollouts[C.TOKEN_OFFSETS].tolist() if has_offsets else None)
    tags = pd.DataFrame(columns, index=rollouts.index, columns=TAG_COLUMNS + ([C.PLANNING_MASK] if has_offsets else []))
    return rollouts.drop(columns=[c for c in tags.columns if c in rollouts.columns]).join(tags)


TAG_COLUMNS = [C.PLANNING_SPANS, C.GRAMS, C.GRAM_NEXT, C.N_WORDS, C.N_PLANNING_WORDS, C.N_REFLECTIONS]
"""The columns `tag_rollouts` always writes (``planning_mask`` too, for rows with token offsets)."""


def tag_text(text: str, *, lexicon="paper", tokenizer=None, trust_remote_code: bool = False) -> dict:
    """{"text", "lexicon": {name, hash}, "spans": [...], "counts": {...}} plus "tokens" with a tokenizer.

    ``tokenizer`` is a tokenizer object, or a spec for ``reasonlens.models.loading.load_tokenizer``
    ("smollm2", a folder, a .gguf file). With one, the text is its tokens' text (a lower-casing
    tokenizer such as WordPiece returns its own normalised text) and each token is labelled.
    """
    lexicon = load_lexicon(lexicon)
    offsets = None
    if tokenizer is not None:
        from reasonlens.models.offsets import token_offsets

        if isinstance(tokenizer, (str, Path)):
            from reasonlens.models.loading import load_tokenizer

            tokenizer = load_tokenizer(tokenizer, trust_remote_code=trust_remote_code)
        text, offsets = token_offsets(tokenizer, tokenizer.encode(text, add_special_tokens=False))
    found = gram_finder(lexicon.phrases)(text)  # every occurrence, for the spans shown
    result = {"text": text, "lexicon": {"name": lexicon.name, "hash": lexicon.hash},
              "spans": [m._asdict() for m in found], "counts": gram_counts(found)}
    if offsets is not None:
        mask = tag_response(text, lexicon, offsets)[C.PLANNING_MASK]
        result["tokens"] = [{"text": text[s:e], "start": s, "end": e, "planning": bool(p)}
                            for (s, e), p in zip(offsets, mask)]
    return result
