"""Final answers: pull the last \\boxed{...} out of a response and compare answers with math-verify.

math-verify guards parsing and comparison with `signal.alarm`, which only works in the main thread;
elsewhere (reward functions in worker threads) we call it with its timeouts switched off. Grading a log
at scale: each distinct string is parsed once, pairs of plain integers skip math-verify (same verdicts).
"""

from __future__ import annotations

import functools
import logging
import re
import threading
from collections.abc import Iterable

_BOX_OPENERS = re.compile(r"\\(?:boxed|fbox)\s*\{")
_TIMEOUT_SECONDS = 5  # per parse / comparison, main thread only
# A plain integer: optional sign, ASCII digits only (math-verify does not read "\u0663", which \d accepts). On
# two of these math-verify's verdict is int(gold) == int(pred), leading zeros and "+" included
# (tests/test_answers.py checks it); it differs past Python's int-string limit (4300 digits: "0" + 4300
# digits no longer equals itself without the 0), so long ones go to math-verify.
_PLAIN_INTEGER = re.compile(r"[+-]?[0-9]{1,100}")


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
    would not parse). Safe to call from any thread. Two plain integers are compared as integers (the
    verdict math-verify gives them, see `_integer_verdict`); anything else goes to math-verify, each
    distinct string parsed once per process. Pairs are remembered per process too: logs repeat
    (gold, answer) pairs across steps, and one check can take a second.

    Examples
    --------
    >>> answers_equivalent("0.5", r"\frac{1}{2}")
    True
    >>> answers_equivalent("1,000", "1000")
    True
    """
    if gold is None or pred is None or not str(gold).strip() or not str(pred).strip():
        return False
    gold, pred = str(gold), str(pred)
    fast = _integer_verdict(gold, pred)
    if fast is not None:
        return fast
    from math_verify import verify

    limit = _timeout()
    gold_parsed, pred_parsed = _parsed(_as_latex(gold), limit), _parsed(_as_latex(pred), limit)
    if not gold_parsed or not pred_parsed:
        return gold.strip() == pred.strip()
    return bool(verify(gold_parsed, pred_parsed, timeout_seconds=limit))


def grade_pairs(pairs: Iterable[tuple[str | None, str | None]]) -> list[bool]:
    """`answers_equivalent` of each (gold, pred) pair, in order, each distinct pair checked once.

    The unit of grading work a worker process runs: imports neither torch nor transformers.

    Parameters
    ----------
    pairs : iterable of (gold, pred)
        Gold answers and predicted answers (e.g. `extract_boxed` of responses); None or blank grades False.

    Returns
    -------
    list of bool, one per pair.

    Examples
    --------
    >>> grade_pairs([("4", "4"), ("4", "04"), ("4", "5"), ("4", "4")])
    [True, True, False, True]
    """
    pairs = list(pairs)
    verdicts = {pair: answers_equivalent(*pair) for pair in dict.fromkeys(pairs)}
    return [verdicts[pair] for pair in pairs]


def _integer_verdict(gold: str, pred: str) -> bool | None:
    """``int(gold) == int(pred)`` when both are plain integers (math-verify's verdict on them); else None.

    Identical strings get no shortcut: math-verify's (x, x) is True only through its string fallback where
    the parsed side is nan or zoo (it refuses to compare those), and they are rare (10 of 529 CHAMP pairs)."""
    gold, pred = gold.strip(), pred.strip()  # the strip `_as_latex` applies before math-verify sees them
    if _PLAIN_INTEGER.fullmatch(gold) and _PLAIN_INTEGER.fullmatch(pred):
        return int(gold) == int(pred)
    return None


@functools.lru_cache(maxsize=1 << 16)
def _parsed(latex: str, limit: int | None) -> list:
    """math-verify's parse of ``latex``, once per (text, timeout): a parse that hits the main thread's
    timeout comes back empty, which must not stand for the untimed parse of a worker thread. Shared by
    every caller: never mutate it."""
    from math_verify import parse

    _quiet_timeout_warning()
    return parse(latex, parsing_timeout=limit)


def _timeout() -> int | None:
    """math-verify's timeouts use `signal.alarm`, which works in the main thread only: off elsewhere."""
    return _TIMEOUT_SECONDS if threading.current_thread() is threading.main_thread() else None


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
