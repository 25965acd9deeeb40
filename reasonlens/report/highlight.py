"""One response as HTML: planning tokens highlighted, each token's entropy on hover.

Three sources of token boundaries, best first: a ``token_texts`` column (list[str] aligned with
``token_ids``), a tokenizer (``hierarchy.tokens.token_offsets``), or none; then the tagger's
planning spans are highlighted in the plain text (no per-token entropy to show). All text is escaped.
"""

from __future__ import annotations

import html
import itertools
import math

import pandas as pd

from reasonlens import columns as C
from reasonlens.hierarchy.tagger import overlap_mask

MAX_TOKENS = 600             # longer responses are cut for display, with a note saying how much
RESPONSE_CSS = """
.resp{white-space:pre-wrap;font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.85em;line-height:1.6;
 background:#fafafa;border:1px solid #e5e5e5;padding:10px;border-radius:4px;color:#222}
.resp .plan{background:#fdd9b5;border-radius:2px}.resp mark.plan{color:inherit}.resp .cut{color:#999}
.resp span[title]:hover{outline:1px solid #d95f02}
"""
"""Styles scoped to ``.resp`` blocks, so a notebook page keeps its own look when a response is shown."""


def is_list(value) -> bool:
    """A list or array cell (not a string, not a NaN placeholder)."""
    return value is not None and not isinstance(value, (str, float)) and hasattr(value, "__len__")


def token_texts(row: pd.Series, tokenizer=None) -> list[str] | None:
    """The text of each response token, from the row's ``token_texts`` or by decoding with ``tokenizer``."""
    if is_list(row.get(C.TOKEN_TEXTS)):
        return [str(t) for t in row[C.TOKEN_TEXTS]]
    if tokenizer is not None and is_list(row.get(C.TOKEN_IDS)):
        from reasonlens.hierarchy.tokens import token_offsets

        text, offsets = token_offsets(tokenizer, [int(t) for t in row[C.TOKEN_IDS]])
        pieces, end = [], 0
        for a, b in offsets:  # byte tokens of one multi-byte character share its span: show it once
            pieces.append(text[max(a, end):b])
            end = max(end, b)
        return pieces
    return None


def spans_to_mask(pieces: list[str], spans: list[tuple[int, int]]) -> list[bool]:
    """Token i is planning if its character span overlaps any of ``spans`` (pieces joined = the text).

    ``spans`` are disjoint and sorted (``tagger.spans(text)``); the rule is the token-level planning
    mask's (``hierarchy.tagger.overlap_mask``)."""
    ends = list(itertools.accumulate(len(piece) for piece in pieces))
    return overlap_mask(spans, zip([0] + ends[:-1], ends))


def tokens_html(pieces: list[str], planning: list[bool], entropies=None) -> str:
    """``<span>`` per token; planning tokens get class ``plan``; entropy (nats) in the title."""
    values = [float(h) for h in entropies] if entropies is not None else []
    top = max((h for h in values if not math.isnan(h)), default=0.0) or 1.0
    parts = []
    for i, piece in enumerate(pieces[:MAX_TOKENS]):
        title, attrs = [], ' class="plan"' if planning[i] else ""
        if i < len(values) and not math.isnan(values[i]):
            title.append(f"entropy {values[i]:.3f} nats")
            # underline darkness = entropy relative to the response's most uncertain token
            attrs += f' style="border-bottom:2px solid rgba(31,119,180,{values[i] / top:.2f})"'
        if planning[i]:
            title.append("planning")
        attrs += f' title="{html.escape(" · ".join(title))}"' if title else ""
        parts.append(f"<span{attrs}>{html.escape(piece)}</span>")
    if len(pieces) > MAX_TOKENS:
        parts.append(f'<span class="cut"> … ({len(pieces) - MAX_TOKENS} more tokens)</span>')
    return "".join(parts)


def spans_html(text: str, matches) -> str:
    """The plain text with each tagger match (``.start .end .gram``) wrapped in ``<mark>``."""
    parts, pos = [], 0
    for m in sorted(matches, key=lambda m: m.start):
        if m.start < pos:  # overlapping grams: the union is already highlighted up to pos
            if m.end > pos:
                parts.append(f'<mark class="plan">{html.escape(text[pos:m.end])}</mark>')
                pos = m.end
            continue
        parts.append(html.escape(text[pos:m.start]))
        parts.append(f'<mark class="plan" title="strategic gram: {html.escape(m.gram)}">'
                     f"{html.escape(text[m.start:m.end])}</mark>")
        pos = m.end
    parts.append(html.escape(text[pos:]))
    return "".join(parts)


def response_html(row: pd.Series, *, tokenizer=None, tagger=None) -> str:
    """The response of one rollout row, highlighted as well as its columns allow."""
    pieces = token_texts(row, tokenizer)
    text = str(row.get(C.RESPONSE, "") or "")
    if pieces is not None:
        mask = row.get(C.PLANNING_MASK)
        if is_list(mask) and len(mask) == len(pieces):
            planning = [bool(x) for x in mask]
        elif tagger is not None:
            planning = spans_to_mask(pieces, tagger.spans("".join(pieces)))
        else:
            planning = [False] * len(pieces)
        entropies = row.get(C.ENTROPIES)
        return tokens_html(pieces, planning, entropies if is_list(entropies) else None)
    if tagger is not None:
        return spans_html(text, tagger.find(text))
    return html.escape(text)


def pick_examples(rollouts: pd.DataFrame, steps: list, per_step: int = 2) -> pd.DataFrame:
    """For each of ``steps``: the best and worst responses (by reward, then correctness), then others."""
    key = C.REWARD if C.REWARD in rollouts else (C.CORRECT if C.CORRECT in rollouts else None)
    chosen = []
    for step in steps:
        rows = rollouts[rollouts[C.STEP] == step]
        if key is not None:
            rows = rows.assign(_key=rows[key].astype(float)).sort_values("_key", ascending=False,
                                                                          kind="stable")
        order = [0, len(rows) - 1] + list(range(1, len(rows) - 1))
        picked = list(dict.fromkeys(i for i in order if 0 <= i < len(rows)))[:per_step]
        chosen.append(rows.iloc[picked].drop(columns="_key", errors="ignore"))
    return pd.concat(chosen) if chosen else rollouts.iloc[:0]


def example_steps(steps: list, phase_steps: list, n: int = 4) -> list:
    """First, last and phase-boundary steps, then evenly spaced others, up to ``n``, in order."""
    steps = sorted(dict.fromkeys(steps))
    if len(steps) <= n:
        return steps
    keep = [steps[0], steps[-1]] + [s for s in phase_steps if s in steps]
    spaced = [steps[round(i * (len(steps) - 1) / (n - 1))] for i in range(n)]
    return sorted(list(dict.fromkeys(keep + spaced))[:n])  # priority order, then chronological
