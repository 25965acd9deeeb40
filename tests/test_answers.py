"""Boxed-answer extraction and math-verify equivalence (integer fast path, parse cache, grade_pairs), in threads too."""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmark_modules import benchmark_module
from reasonlens.sources.answers import _integer_verdict, _parsed, answers_equivalent, extract_boxed, grade_pairs

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
    """math-verify's signal timeouts only work in the main thread: workers must neither crash nor differ.
    Caches emptied first so the workers parse and verify themselves (untimed), then the main thread (timed)."""
    cases = list(EQUIVALENT.values()) + [(g, p, e) for g, p, e, _ in INTEGER_CASES.values()]
    answers_equivalent.cache_clear()
    _parsed.cache_clear()

    def check(case):
        assert threading.current_thread() is not threading.main_thread()
        return answers_equivalent(case[0], case[1])

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(check, cases * 3))
    assert results == [expected for _, _, expected in cases] * 3
    answers_equivalent.cache_clear()
    assert [answers_equivalent(g, p) for g, p, _ in cases] == [expected for _, _, expected in cases]


# ---- grading at scale (issue 18): the integer fast path, the parse cache, grade_pairs ----------------
REFERENCE = benchmark_module("grading").baseline_equivalent.__wrapped__  # uncached: every call parses both sides

# (gold, pred, math-verify's verdict, decided by the fast path?). Verdicts checked against REFERENCE below.
INTEGER_CASES = {
    "equal": ("42", "42", True, True),
    "unequal": ("42", "43", False, True),
    "leading-zeros": ("007", "7", True, True),
    "leading-zeros-negative": ("-007", "-7", True, True),
    "plus-sign": ("5", "+5", True, True),
    "minus-zero": ("-0", "0", True, True),
    "zeros": ("00", "0", True, True),
    "sign-differs": ("5", "-5", False, True),
    "spaces-around": (" 42 ", "42\n", True, True),
    "20-digits-off-by-one": ("12345678901234567890", "12345678901234567891", False, True),
    "100-digits": ("9" * 100, "+" + "9" * 100, True, True),
    "101-digits-to-math-verify": ("9" * 101, "0" + "9" * 101, True, False),
    # Past Python's int-string limit math-verify stops reading the number: no longer int equality.
    "4301-digits-to-math-verify": ("0" + "1" * 4301, "1" * 4301, False, False),
    "arabic-indic-digit": ("\u0663", "3", False, False),  # \d matches it; math-verify reads it as text
    "inner-space": ("1 000", "1000", False, False),  # math-verify reads "1 000" as 1*0
    "thousands-comma": ("1,000", "1000", True, False),
    "decimal": ("18", "18.0", True, False),
    "double-sign": ("--5", "5", True, False),  # math-verify reads --5 as 5
    "spaced-sign": ("- 5", "-5", True, False),
}


@pytest.mark.parametrize("gold, pred, expected, fast", list(INTEGER_CASES.values()), ids=list(INTEGER_CASES))
def test_integer_cases(gold, pred, expected, fast):
    assert (_integer_verdict(gold, pred) is not None) is fast
    assert REFERENCE(gold, pred) is expected
    assert answers_equivalent(gold, pred) is expected


def _integer_text(value, zeros, sign, spaces):
    """``value`` written with ``zeros`` leading zeros, a sign ("+" or "-" where it allows) and spaces around."""
    digits = "0" * zeros + str(abs(value))
    sign = "-" if value < 0 else sign if sign != "-" or value == 0 else ""
    return spaces[0] + sign + digits + spaces[1]


_INTEGER_TEXT = st.builds(_integer_text, st.integers(-10**96, 10**96) | st.integers(-20, 20),  # up to 100 digits
                          st.integers(0, 3), st.sampled_from(["", "+", "-"]),
                          st.tuples(st.sampled_from(["", " ", "\t"]), st.sampled_from(["", " ", "\n"])))


@settings(max_examples=150, deadline=None)
@given(gold=_INTEGER_TEXT, pred=_INTEGER_TEXT, same=st.booleans())
def test_fast_path_matches_math_verify(gold, pred, same):
    """On two plain integers, equal (rewritten: zeros, signs, spaces) or not, the fast path decides the pair
    and gives math-verify's verdict."""
    if same:  # the same number, written another way
        pred = _integer_text(int(gold), len(pred) % 3, "+" if "+" in pred else "", (" ", ""))
    verdict = _integer_verdict(gold, pred)
    assert verdict is not None
    assert verdict is REFERENCE(gold, pred)
    if same:
        assert verdict is True


def _champ_pairs(n=60, seed=0):
    """``n`` distinct real (gold, pred) pairs that go to math-verify: CHAMP golds and the boxed answers of
    model transcripts to them (benchmarks/_corpus.py), plus each sampled pair reversed and pred-vs-pred
    pairs (as `metrics.entropy.cluster_answers` asks), so one parsed string serves several pairs and roles."""
    from _corpus import champ_transcripts

    from reasonlens.sources.tasks import final_answer

    pairs = {(final_answer(r["answer"]), extract_boxed(r["response"])) for r in champ_transcripts()}
    pairs = sorted((g, p) for g, p in pairs if p is not None and _integer_verdict(g, p) is None)
    sample = random.Random(seed).sample(pairs, n)
    preds = [p for _, p in sample]
    return sample + [(p, g) for g, p in sample[: n // 3]] + list(zip(preds[: n // 3], preds[1 : n // 3 + 1]))


def test_parse_cache_gives_the_uncached_verdicts():
    """Real pairs, caches empty, shuffled: each distinct string parsed once and shared across pairs (and the
    gold/pred roles) gives the verdict of parsing both sides afresh for every pair."""
    pairs = _champ_pairs()
    expected = [REFERENCE(g, p) for g, p in pairs]
    assert 0 < sum(expected) < len(pairs)  # both verdicts occur: the comparison can fail either way
    answers_equivalent.cache_clear()
    _parsed.cache_clear()
    order = random.Random(1).sample(range(len(pairs)), len(pairs))
    got = dict(zip(order, grade_pairs(pairs[i] for i in order)))
    assert [got[i] for i in range(len(pairs))] == expected
    strings = {s for pair in pairs for s in pair}
    assert _parsed.cache_info().currsize == len(strings)  # each distinct string parsed once
    assert _parsed.cache_info().currsize < 2 * len(pairs)


def test_grade_pairs_checks_each_distinct_pair_once():
    answers_equivalent.cache_clear()
    pairs = [("4", "4"), ("1/2", "0.5"), ("4", "4"), ("4", None), ("1/2", "0.5"), ("x", "y")]
    # verdicts by hand: equal integers; 1/2 = 0.5; no answer; x and y are different symbols
    assert grade_pairs(pairs) == [True, True, True, False, True, False]
    info = answers_equivalent.cache_info()
    assert (info.misses, info.hits) == (4, 0)  # 4 distinct pairs, none asked twice
    assert grade_pairs([]) == []


def test_grading_imports_no_torch():
    """grade_pairs is the unit of work of a grading process: it must start without torch or transformers."""
    code = ("import sys; from reasonlens.sources.answers import grade_pairs; "
            "assert grade_pairs([('1/2', '0.5'), ('3', '03')]) == [True, True]; "
            "assert not {'torch', 'transformers'} & set(sys.modules), sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_grading_benchmark_inputs_and_routes(tmp_path):
    """benchmarks/grading.py on a two-step verl dump: distinct pairs in log order (golds through
    final_answer), one pred group per (step, prompt), and both routes' verdicts and entropies."""
    bench = benchmark_module("grading")
    rows = [(0, "p", "so #### 4", r"\boxed{4}"), (0, "p", "4", r"\boxed{04}"), (0, "q", "1/2", r"\boxed{0.5}"),
            (1, "p", "4", r"\boxed{4}"), (1, "p", "4", "no box"), (1, "q", None, r"\boxed{7}")]
    for step in (0, 1):
        (tmp_path / f"{step}.jsonl").write_text("".join(
            json.dumps({"step": s, "input": i, "gts": g, "output": o, "score": 0.0}) + "\n"
            for s, i, g, o in rows if s == step))
    pairs, groups, source = bench.log_answers(tmp_path)
    assert source == str(tmp_path)
    assert pairs == [("4", "4"), ("4", "04"), ("1/2", "0.5")]
    assert groups == [["4", "04"], ["0.5"], ["4", None], ["7"]]
    for route in ("baseline", "ours"):
        assert bench.timed_route(route, "grading", pairs, [])[2] == [True, True, True]
        # by hand: {4, 04} one cluster -> 0; one answer -> 0; {4}, {None} -> ln 2; one answer -> 0
        assert bench.timed_route(route, "entropy", [], groups)[2] == pytest.approx([0, 0, math.log(2), 0])
