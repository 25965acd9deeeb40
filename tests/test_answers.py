"""Boxed-answer extraction and math-verify equivalence, including calls from worker threads."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from reasonlens.sources.answers import answers_equivalent, extract_boxed

EXTRACT = {
    "plain": (r"so the answer is \boxed{42}.", "42"),
    "nested": (r"\boxed{\frac{1}{2}}", r"\frac{1}{2}"),
    "deeply-nested": (r"\boxed{\sqrt{\frac{a^{2}}{b}}}", r"\sqrt{\frac{a^{2}}{b}}"),
    "last-wins": (r"first \boxed{1}, then \boxed{2}", "2"),
    "fbox": (r"\fbox{7}", "7"),
    "space-before-brace": (r"\boxed {8}", "8"),
    "unclosed-last-falls-back": (r"\boxed{3} and \boxed{4", "3"),
    "none": ("no box here", None),
    "empty-text": ("", None),
    "strips": (r"\boxed{ 5 }", "5"),
}


@pytest.mark.parametrize("text, expected", list(EXTRACT.values()), ids=list(EXTRACT))
def test_extract_boxed(text, expected):
    assert extract_boxed(text) == expected


EQUIVALENT = {
    "half-decimal-vs-frac": ("0.5", r"\frac{1}{2}", True),
    "frac-vs-decimal": (r"\frac{1}{2}", "0.5", True),
    "thousands-comma": ("1,000", "1000", True),  # math-verify reads "1,000" as one thousand
    "comma-in-pred": ("1000", "1,000", True),
    "trailing-zero": ("18", "18.0", True),
    "algebra": ("x+1", "1+x", True),  # bare: only parses once wrapped in \boxed{}
    "wrong": ("72", "73", False),
    "empty-pred": ("72", "", False),
    "none-pred": ("72", None, False),
    "unparsable-equal-text": ("Paris", "Paris", True),
    "unparsable-different-text": ("Paris", "London", False),
}


@pytest.mark.parametrize("gold, pred, expected", list(EQUIVALENT.values()), ids=list(EQUIVALENT))
def test_answers_equivalent(gold, pred, expected):
    assert answers_equivalent(gold, pred) is expected


def test_equivalence_in_worker_threads():
    """math-verify's signal timeouts only work in the main thread: workers must neither crash nor differ."""
    cases = list(EQUIVALENT.values())

    def check(case):
        assert threading.current_thread() is not threading.main_thread()
        return answers_equivalent(case[0], case[1])

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(check, cases * 3))
    assert results == [expected for _, _, expected in cases] * 3
