"""Pure metric functions against hand-computed values."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from reasonlens.errors import ReasonlensError
from reasonlens.metrics.entropy import (answer_semantic_entropy, cluster_answers, cluster_pairs, conditional_entropy,
                                        conditional_procedural_entropy, sg_semantic_entropy, shannon_entropy)
from reasonlens.metrics.outcomes import mean_pass_at_k, pass_at_k, powers_of_two_upto
from reasonlens.metrics.token_stats import (high_entropy_mask, high_entropy_overlap, mean_by_class,
                                            perplexity_by_class, pool, relative_to_first)


def test_mean_by_class():
    # planning = tokens 0, 2 -> (1 + 3) / 2 = 2; execution = tokens 1, 3 -> (2 + 6) / 2 = 4; all = 12 / 4 = 3
    out = mean_by_class(np.array([1.0, 2.0, 3.0, 6.0]), np.array([True, False, True, False]))
    assert out == {"planning": 2.0, "execution": 4.0, "all": 3.0}


def test_mean_by_class_empty_class_is_nan():
    out = mean_by_class(np.array([1.0, 2.0]), np.array([False, False]))
    assert math.isnan(out["planning"]) and out["execution"] == 1.5


def test_perplexity_by_class():
    # planning logprobs ln(1/2), ln(1/8): mean NLL = (ln 2 + ln 8)/2 = 2 ln 2 -> PPL = 4
    # execution logprob ln(1/3): PPL = 3; all: mean NLL = (ln2 + ln8 + ln3)/3 -> PPL = (2*8*3)^(1/3) = 48^(1/3)
    logp = np.log([0.5, 1 / 3, 1 / 8])
    out = perplexity_by_class(logp, np.array([True, False, True]))
    assert out["planning"] == pytest.approx(4.0)
    assert out["execution"] == pytest.approx(3.0)
    assert out["all"] == pytest.approx(48 ** (1 / 3))


def test_pool_ragged():
    assert pool([[1, 2], np.array([3.0])]).tolist() == [1.0, 2.0, 3.0]
    assert pool([]).size == 0


def test_relative_to_first():
    # [2, 1, 3] / 2 = [1, 0.5, 1.5]; a NaN or 0 first value gives all NaN
    assert relative_to_first([2.0, 1.0, 3.0]).tolist() == [1.0, 0.5, 1.5]
    assert np.isnan(relative_to_first([math.nan, 1.0])).all()
    assert np.isnan(relative_to_first([0.0, 1.0])).all()


def test_high_entropy_mask_and_overlap():
    # 10 tokens, quantile 0.3 -> top ceil(3) = entropies 9, 8, 7 (tokens 9, 8, 7)
    ent = np.arange(10, dtype=float)
    assert high_entropy_mask(ent, 0.3).nonzero()[0].tolist() == [7, 8, 9]
    # planning tokens 0, 8, 9, 5: high & planning = {8, 9} -> P(high|planning) = 2/4, P(planning|high) = 2/3
    planning = np.zeros(10, dtype=bool)
    planning[[0, 5, 8, 9]] = True
    out = high_entropy_overlap(ent, planning, 0.3)
    assert out["p_high_given_planning"] == pytest.approx(0.5)
    assert out["p_planning_given_high"] == pytest.approx(2 / 3)


def test_high_entropy_ties_are_all_high():
    # ceil(0.3 * 4) = 2nd highest is 1.0, tied with all -> every token is high
    assert high_entropy_mask(np.ones(4), 0.3).all()


@pytest.mark.parametrize("counts, base, expected", [
    ({"a": 1, "b": 1}, math.e, math.log(2)),          # uniform over 2: ln 2
    ([2, 1, 1], 2, 1.5),                              # p = 1/2, 1/4, 1/4: 0.5*1 + 2*0.25*2 = 1.5 bits
    ([5], math.e, 0.0),                               # a single outcome: 0
    ([0, 3, 0], math.e, 0.0),                         # zeros are ignored
], ids=["uniform2", "bits", "single", "zeros"])
def test_shannon_entropy(counts, base, expected):
    assert shannon_entropy(counts, base) == pytest.approx(expected)


def test_shannon_entropy_empty_is_nan():
    assert math.isnan(shannon_entropy([])) and math.isnan(shannon_entropy({"a": 0}))


def test_sg_semantic_entropy():
    # counted grams over both responses: "but wait" 1, "so" 2, "let's try" 1 -> p = 1/4, 1/2, 1/4 -> H = 1.5 ln 2
    assert sg_semantic_entropy([["so", "but wait"], ["let's try", "so"]]) == pytest.approx(1.5 * math.log(2))
    assert sg_semantic_entropy([["so", "but wait"], ["let's try", "so"]], base=2) == pytest.approx(1.5)
    assert math.isnan(sg_semantic_entropy([[], []]))


def test_conditional_procedural_entropy():
    # occurrences: "so" -> "a b c", "so" -> "d e f", "wait" -> "a b c" twice, and one "so" with no
    # 3 following words ("" is left out). H(next|so) = ln 2, H(next|wait) = 0, p(so) = p(wait) = 1/2
    grams = [["so", "so"], ["so"], ["wait"], ["wait"]]
    nexts = [["a b c", ""], ["d e f"], ["a b c"], ["a b c"]]
    assert conditional_procedural_entropy(grams, nexts) == pytest.approx(math.log(2) / 2)
    assert math.isnan(conditional_procedural_entropy([["so"]], [[""]]))


def test_conditional_entropy_pairs():
    # x=a: y in {1, 2} -> ln 2, weight 2/3; x=b: y=1 -> 0, weight 1/3 -> (2/3) ln 2
    assert conditional_entropy([("a", 1), ("a", 2), ("b", 1)]) == pytest.approx(2 / 3 * math.log(2))


def _equal_numbers(a, b):
    return float(a) == float(b)


def test_cluster_answers_none_is_own_cluster():
    # "2" and "2.0" equivalent; None answers share one cluster; "3" alone
    assert cluster_answers(["2", None, "2.0", "3", None], _equal_numbers) == [0, 1, 0, 2, 1]


@given(st.lists(st.one_of(st.none(), st.sampled_from(["1", " 1", "01", "1.0", "2", "2.0 ", "x", "3"])), max_size=10))
def test_cluster_pairs_hold_every_pair_clustering_asks_about(answers):
    # the verdicts found ahead for cluster_pairs are all clustering ever needs: every question it asks is among them
    asked = []

    def equivalent(rep, ans):
        asked.append((rep, ans))
        return rep == ans or (rep != "x" and ans != "x" and float(rep) == float(ans))

    cluster_answers(answers, equivalent)
    pairs = cluster_pairs(answers)
    assert set(asked) <= set(pairs) and len(pairs) == len(set(pairs))


def test_cluster_pairs_by_hand():
    # distinct stripped answers in order 1, 2, 3 (None and repeats left out): each after each earlier one
    assert cluster_pairs(["1", None, " 2", "1", "3", "2"]) == [("1", "2"), ("1", "3"), ("2", "3")]
    assert cluster_pairs([None, None]) == [] and cluster_pairs(["5", " 5 "]) == []


def test_answer_semantic_entropy():
    # prompt A: clusters {2, 2.0}, {3} -> p = 2/3, 1/3 -> H = ln3 - (2/3) ln 2; prompt B: all "5" -> 0
    expected = (math.log(3) - 2 / 3 * math.log(2) + 0.0) / 2
    got = answer_semantic_entropy([["2", "2.0", "3"], ["5", "5"]], _equal_numbers)
    assert got == pytest.approx(expected)


def test_answer_semantic_entropy_math_verify():
    # default equivalence is math-verify: 1/2 == 0.5 -> one cluster of 2 plus "7" -> H(2/3, 1/3)
    got = answer_semantic_entropy([["1/2", "0.5", "7"]])
    assert got == pytest.approx(math.log(3) - 2 / 3 * math.log(2))


@pytest.mark.parametrize("n, c, k, expected", [
    (4, 1, 1, 0.25),            # c/n
    (4, 1, 2, 0.5),             # 1 - C(3,2)/C(4,2) = 1 - 3/6
    (5, 2, 2, 0.7),             # 1 - C(3,2)/C(5,2) = 1 - 3/10
    (4, 0, 4, 0.0),             # no correct sample
    (4, 3, 2, 1.0),             # n - c = 1 < k
], ids=["k1", "k2", "n5", "none", "sure"])
def test_pass_at_k(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected)


@pytest.mark.parametrize("n", range(1, 9))
def test_pass_at_k_matches_binomial_form(n):
    # the product form equals 1 - C(n-c, k) / C(n, k) for every c and k
    for c in range(n + 1):
        for k in range(1, n + 1):
            assert pass_at_k(n, c, k) == pytest.approx(1 - math.comb(n - c, k) / math.comb(n, k))


def test_pass_at_k_large_n_is_stable():
    # 1 - C(900, 64) / C(1000, 64) would overflow floats as binomials; the product form does not
    assert 0.999 < pass_at_k(1000, 100, 64) <= 1.0


def test_mean_pass_at_k():
    # prompts (4, 1) -> 0.5, (4, 2) -> 1 - C(2,2)/C(4,2) = 5/6, (1, 1) skipped for k=2 -> mean 2/3
    assert mean_pass_at_k([(4, 1), (4, 2), (1, 1)], 2) == pytest.approx((0.5 + 5 / 6) / 2)
    assert math.isnan(mean_pass_at_k([(1, 1)], 2))


def test_pass_at_k_rejects_bad_k():
    with pytest.raises(ReasonlensError, match="k no larger than the samples"):
        pass_at_k(2, 1, 4)


def test_powers_of_two():
    assert powers_of_two_upto(8) == [1, 2, 4, 8] and powers_of_two_upto(6) == [1, 2, 4]
