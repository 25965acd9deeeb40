"""Each response token's character span in the response text, from the token ids actually sampled.

Never from re-encoding the text, which can tokenize differently. Three routes, fastest first:
- byte-level BPE (GPT-2, Llama 3, Qwen, SmolLM2): the text and the spans come straight from each
  token's bytes, O(T), with no decode call; a token holding part of a multi-byte character gets that
  whole character's span;
- any other tokenizer (SentencePiece, WordPiece, slow or custom ones with only ``decode``):
  incremental decoding over a sliding window of tokens, O(T);
- if the windowed pieces do not reassemble the text exactly, decoding of every prefix (O(T^2), always
  consistent).
The text is always ``tokenizer.decode(token_ids, **DECODE_KWARGS)``: special tokens stay in it, so
every token has a span, and nothing is cleaned up behind the offsets' back.
"""

from __future__ import annotations

import codecs
import functools
from typing import Sequence

DECODE_KWARGS = {"skip_special_tokens": False, "clean_up_tokenization_spaces": False}
_WINDOW = 8  # tokens of left context kept when decoding incrementally


@functools.lru_cache(maxsize=1)
def _byte_decoder() -> dict[str, int]:
    """Inverse of the GPT-2 byte-to-printable-character alphabet used by byte-level BPE vocabularies."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            chars[chr(byte)] = byte
        else:
            chars[chr(256 + extra)] = byte
            extra += 1
    return chars


@functools.lru_cache(maxsize=200_000)
def _token_bytes(piece: str) -> bytes:
    table = _byte_decoder()
    return bytes(table[ch] for ch in piece)


def _is_byte_level(tokenizer) -> bool:
    decoder = getattr(getattr(tokenizer, "backend_tokenizer", None), "decoder", None)
    return type(decoder).__name__ == "ByteLevel"


def _char_index_of_bytes(text: str) -> list[int]:
    """Index of the character each UTF-8 byte of ``text`` belongs to."""
    out: list[int] = []
    for i, ch in enumerate(text):
        out.extend([i] * len(ch.encode("utf-8")))
    return out


def _byte_level_offsets(tokenizer, ids: list[int]) -> tuple[str, list[tuple[int, int]]] | None:
    """Text and offsets from the tokens' own bytes, with no decode call; None when the ids are not all
    byte-level pieces (e.g. an added token outside the byte alphabet)."""
    if not _is_byte_level(tokenizer):
        return None
    try:
        chunks = [_token_bytes(piece) for piece in tokenizer.convert_ids_to_tokens(ids)]
    except (KeyError, TypeError):
        return None
    data = b"".join(chunks)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return _lossy_offsets(chunks)
    char_at = None if len(data) == len(text) else _char_index_of_bytes(text)
    offsets, pos = [], 0
    for chunk in chunks:
        b0, b1 = pos, pos + len(chunk)
        if char_at is None:
            offsets.append((b0, b1))
        elif b1 > b0:
            offsets.append((char_at[b0], char_at[b1 - 1] + 1))
        else:
            at = char_at[b0] if b0 < len(char_at) else len(text)
            offsets.append((at, at))
        pos = b1
    return text, offsets


def _lossy_offsets(chunks: list[bytes]) -> tuple[str, list[tuple[int, int]]]:
    """Bytes that are not valid UTF-8 (a character cut by the token limit, a random model): decoded as the
    tokenizer does, each invalid sequence a U+FFFD; a token's span is what it adds to the text, and tokens
    whose bytes complete no character share the span of the token that does."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    offsets: list[tuple[int, int]] = [(0, 0)] * len(chunks)
    pieces, pos, pending = [], 0, 0
    for k, chunk in enumerate(chunks):
        piece = decoder.decode(chunk, final=k == len(chunks) - 1)
        if piece:
            offsets[pending:k + 1] = [(pos, pos + len(piece))] * (k + 1 - pending)
            pieces.append(piece)
            pos, pending = pos + len(piece), k + 1
    offsets[pending:] = [(pos, pos)] * (len(chunks) - pending)
    return "".join(pieces), offsets


def _windowed_offsets(tokenizer, ids: list[int], text: str, window: int) -> list[tuple[int, int]] | None:
    """Decode a sliding window of tokens; each token's text is what it appends. None if inconsistent."""
    offsets: list[tuple[int, int]] = [(0, 0)] * len(ids)
    start, base, pos, pending = 0, "", 0, 0
    for k in range(len(ids)):
        cur = tokenizer.decode(ids[start:k + 1], **DECODE_KWARGS)
        if k < len(ids) - 1 and cur.endswith("\ufffd"):
            continue  # part of a multi-byte character: it shares the span of the completing token
        if not cur.startswith(base):
            return None
        piece = cur[len(base):]
        if text[pos:pos + len(piece)] != piece:
            return None
        offsets[pending:k + 1] = [(pos, pos + len(piece))] * (k + 1 - pending)
        pos, pending = pos + len(piece), k + 1
        if k + 1 - start >= 2 * window:
            start = k + 1 - window
            base = tokenizer.decode(ids[start:k + 1], **DECODE_KWARGS)
        else:
            base = cur
    return offsets if pos == len(text) else None


def _prefix_offsets(tokenizer, ids: list[int], text: str) -> list[tuple[int, int]]:
    """Decode every prefix; a token spans what its prefix adds to the common prefix with ``text``."""
    offsets: list[tuple[int, int]] = [(0, 0)] * len(ids)
    pos, pending = 0, 0
    for k in range(len(ids)):
        cur = tokenizer.decode(ids[:k + 1], **DECODE_KWARGS)
        if k < len(ids) - 1 and cur.endswith("\ufffd"):
            continue
        end = len(cur) if text.startswith(cur) else _common_prefix(cur, text)
        end = max(end, pos) if k < len(ids) - 1 else len(text)
        offsets[pending:k + 1] = [(pos, end)] * (k + 1 - pending)
        pos, pending = end, k + 1
    return offsets


def _common_prefix(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def token_offsets(tokenizer, token_ids: Sequence[int]) -> tuple[str, list[tuple[int, int]]]:
    """Decoded text and each token's [start, end) character span in it.

    Parameters
    ----------
    tokenizer : a Hugging Face tokenizer (fast or slow) or any object with
        ``decode(ids, skip_special_tokens=..., clean_up_tokenization_spaces=...)``.
    token_ids : sequence of int, shape (T,)

    Returns
    -------
    text : str, equal to ``tokenizer.decode(token_ids, **DECODE_KWARGS)``
    offsets : list of T (start, end) pairs, non-decreasing; tokens that together form one character
        share its span; a token adding no text has an empty span.

    Examples
    --------
    >>> text, offsets = token_offsets(tokenizer, tokenizer.encode("So, wait"))  # doctest: +SKIP
    >>> [text[s:e] for s, e in offsets]  # doctest: +SKIP
    ['So', ',', ' wait']
    """
    ids = [int(i) for i in token_ids]
    found = _byte_level_offsets(tokenizer, ids)
    if found is not None:
        return found
    text = tokenizer.decode(ids, **DECODE_KWARGS)
    offsets = _windowed_offsets(tokenizer, ids, text, _WINDOW)
    if offsets is None:
        offsets = _prefix_offsets(tokenizer, ids, text)
    return text, offsets
