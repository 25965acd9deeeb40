"""Final answers: pull the last \\boxed{...} out of a response and compare answers with math-verify.

math-verify guards parsing and comparison with `signal.alarm`, which only works in the main thread;
elsewhere (reward functions in worker threads) we call it with its timeouts switched off.
"""

from __future__ import annotations

import functools
import logging
import re
import threading

_BOX_OPENERS = re.compile(r"\\(?:boxed|fbox)\s*\{")
_TIMEOUT_SECONDS = 5  # per parse / comparison, main thread only


def extract_boxed(text: str | None) -> str | None:
    r"""The content of the last ``\boxed{...}`` (or ``\fbox{...}``) in ``text``, nested braces kept.

    Returns None when there is no complete box (none at all, or the last one never closes).

    Examples
    --------
    >>> extract_boxed(r"so \boxed{1} or rather \boxed{\frac{1}{2}}")
    '\\frac{1}{2}'
    """
    if not text:
        return None
    for opener in reversed(list(_BOX_OPENERS.finditer(text))):
        content = _balanced(text, opener.end())
        if content is not None:
            return content.strip()
    return None


def _balanced(text: str, start: int) -> str | None:
    """Text from ``start`` up to the brace that closes the one just before it (None if unclosed)."""
    depth = 1
    for i in range(start, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[start:i]
    return None


@functools.lru_cache(maxsize=1 << 16)
def answers_equivalent(gold: str | None, pred: str | None) -> bool:
    r"""Whether ``pred`` states the same answer as ``gold``, by math-verify (gold first: it is asymmetric).

    Bare answers are wrapped in ``\boxed{}`` so math-verify reads them as LaTeX (``x+1`` alone
    would not parse). Safe to call from any thread. Remembered per process: logs repeat (gold, answer)
    pairs across steps, and a step worker grades many steps (one check can take a second).

    Examples
    --------
    >>> answers_equivalent("0.5", r"\frac{1}{2}")
    True
    >>> answers_equivalent("1,000", "1000")
    True
    """
    if gold is None or pred is None or not str(gold).strip() or not str(pred).strip():
        return False
    from math_verify import parse, verify

    _quiet_timeout_warning()
    limit = _TIMEOUT_SECONDS if threading.current_thread() is threading.main_thread() else None
    gold_parsed = parse(_as_latex(str(gold)), parsing_timeout=limit)
    pred_parsed = parse(_as_latex(str(pred)), parsing_timeout=limit)
    if not gold_parsed or not pred_parsed:
        return str(gold).strip() == str(pred).strip()
    return bool(verify(gold_parsed, pred_parsed, timeout_seconds=limit))


def _as_latex(answer: str) -> str:
    """Box a bare answer so math-verify's LaTeX extractor sees it; keep text that is already marked up."""
    if "\\boxed" in answer or "$" in answer:
        return answer
    return "\\boxed{" + answer.strip() + "}"


class _DropTimeoutNotice(logging.Filter):
    """math-verify warns once that timeouts are off; we switch them off on purpose in threads."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Timeout is disabled" not in record.getMessage()


_FILTER = _DropTimeoutNotice()


def _quiet_timeout_warning() -> None:
    for name in ("math_verify.parser", "math_verify.grader"):
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)


def grade_pairs(pairs) -> list[bool]:
    """`answers_equivalent` of each (gold, pred) pair."""
    return [answers_equivalent(gold, pred) for gold, pred in pairs]
