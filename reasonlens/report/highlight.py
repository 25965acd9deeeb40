"""One response as HTML: planning tokens highlighted, each token's entropy on hover.

Rendered from the tagged rollout row alone: with ``token_offsets`` the response is split into its
tokens and ``planning_mask`` marks them; without tokens (text-only logs) the ``planning_spans`` are
marked in the plain text. All text is escaped.
"""

from __future__ import annotations

import html
import math

import pandas as pd

from reasonlens import columns as C

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


def token_texts(row: pd.Series) -> list[str] | None:
    """The text of each response token, cut from the response by its ``token_offsets`` (None without them).

    Byte tokens of one multi-byte character share its span: the character is shown once, on the first.
    """
    offsets = row.get(C.TOKEN_OFFSETS)
    if not is_list(offsets):
        return None
    text = str(row.get(C.RESPONSE, "") or "")
    pieces, end = [], 0
    for a, b in offsets:
        pieces.append(text[max(int(a), end):int(b)])
        end = max(end, int(b))
    return pieces


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


def spans_html(text: str, spans) -> str:
    """The plain text with each planning span ([start, end), disjoint, sorted) wrapped in ``<mark>``."""
    parts, pos = [], 0
    for start, end in spans:
        start, end = int(start), int(end)
        parts.append(html.escape(text[pos:start]))
        parts.append(f'<mark class="plan" title="strategic gram">{html.escape(text[start:end])}</mark>')
        pos = end
    parts.append(html.escape(text[pos:]))
    return "".join(parts)


def response_html(row: pd.Series) -> str:
    """The response of one tagged rollout row, highlighted as well as its columns allow."""
    pieces = token_texts(row)
    mask = row.get(C.PLANNING_MASK)
    if pieces is not None and is_list(mask) and len(mask) == len(pieces):
        entropies = row.get(C.ENTROPIES)
        return tokens_html(pieces, [bool(x) for x in mask], entropies if is_list(entropies) else None)
    text = str(row.get(C.RESPONSE, "") or "")
    spans = row.get(C.PLANNING_SPANS)
    return spans_html(text, spans) if is_list(spans) else html.escape(text)


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
