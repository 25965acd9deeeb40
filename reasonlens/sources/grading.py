r"""Grading a log's responses against its gold answers as generated rollouts are graded: the last \boxed{} of
each response, checked by math-verify (gold first), each distinct (gold, answer) pair once.

The work splits in two so that a log read step by step on many workers checks each pair once in all:
`answer_keys` lists the pairs (cheap, per step), `verdict_map` checks the distinct ones (anywhere), and
`scores` turns the verdicts back into rows.

>>> preds = boxed_answers([r"so \boxed{4}", "4", r"\boxed{5}"])
>>> keys = answer_keys(preds, ["4", "4", "4"])
>>> [s.correct for s in scores(preds, keys, verdict_map(keys))]
[True, False, False]
"""

from __future__ import annotations

from typing import Iterable, Optional, Sequence

from reasonlens.sources.answers import extract_boxed, grade_pairs
from reasonlens.sources.tasks import Score, final_answer

Key = Optional[tuple[str, str]]  # (gold, answer) to check; None: no answer or no gold, so wrong


def boxed_answers(responses: Iterable[str]) -> list[Optional[str]]:
    r"""The last \boxed{} answer of each response (None without one)."""
    return [extract_boxed(r) for r in responses]


def answer_keys(preds: Sequence[Optional[str]], golds: Sequence) -> list[Key]:
    """The (gold, answer) pair math-verify checks for each row; a GSM8K-style gold keeps its final answer."""
    return [None if p is None or g is None else (final_answer(str(g)), p) for p, g in zip(preds, golds)]


def verdict_map(pairs: Iterable[Key]) -> dict[tuple[str, str], bool]:
    """The math-verify verdict of each distinct pair (None entries skipped; `grade_pairs` checks each once)."""
    pairs = [p for p in pairs if p is not None]
    return dict(zip(pairs, grade_pairs(pairs)))


def scores(preds: Sequence[Optional[str]], keys: Sequence[Key], verdicts: dict) -> list[Score]:
    """Each row's Score from its pair's verdict (reward 1.0 when correct)."""
    return [Score(0.0, False, p) if k is None else Score(float(verdicts[k]), verdicts[k], p) for p, k in zip(preds, keys)]
