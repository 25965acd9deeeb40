"""dynamics_table, step_metrics and top_grams on a hand-made, tagged rollout table (2 steps x 2 prompts x 2 samples)."""

import math

import numpy as np
import pandas as pd
import pytest

from reasonlens import columns as C
from reasonlens.errors import ReasonlensError
from reasonlens.hierarchy.tag import tag_rollouts
from reasonlens.metrics import columns as D
from reasonlens.metrics.dynamics import dynamics_table, step_metrics, top_grams

LEXICON = ["but wait", "let's try", "so", "wait"]
HALF, QUARTER = math.log(0.5), math.log(0.25)


def _equal(a, b):
    return a == b


@pytest.fixture
def rollouts():
    """Step 0: planning tokens have p=1/2, execution p=1/4; step 1: every token p=1/2, all correct."""
    texts = ["so a b c", "wait x", "no plan", "so so"]
    masks = [[True, False], [True, False], [False, False], [True, True]]
    rows = []
    for step in (0, 10):
        for i, (text, mask) in enumerate(zip(texts, masks)):
            rows.append({
                C.STEP: step, C.PROMPT_ID: f"p{i // 2}", C.SAMPLE_ID: i % 2, C.PROMPT: f"q{i // 2}",
                C.RESPONSE: text, C.TOKEN_IDS: [5, 6], C.N_TOKENS: 2, C.TRUNCATED: i == 3,
                C.CORRECT: True if step else i in (0, 2), C.PRED: ["2", "3", "5", None][i],
                C.ENTROPIES: [2.0 * i + 1, 2.0 * i + 2], C.PLANNING_MASK: mask,
                C.LOGPROBS: [HALF if (m or step) else QUARTER for m in mask],
            })
    return tag_rollouts(pd.DataFrame(rows), LEXICON)  # no token offsets: the hand-made masks stay


def test_required_columns_in_order(rollouts):
    table = dynamics_table(rollouts, equivalent=_equal)
    assert list(table.columns[:len(D.DYNAMICS_COLUMNS)]) == D.DYNAMICS_COLUMNS
    assert {"pass_at_2", "pass_k", "mean_reward", "length_unit"} <= set(table.columns)
    assert table[D.STEP].tolist() == [0, 10]


def test_step_values_by_hand(rollouts):
    row = dynamics_table(rollouts, equivalent=_equal).iloc[0]
    # correct = [T, F, T, F] -> accuracy 0.5, pass@1 = mean(1/2, 1/2); each prompt n=2, c=1 -> pass@2 = 1
    assert (row[D.N_RESPONSES], row[D.ACCURACY], row[D.PASS_AT_1]) == (4, 0.5, 0.5)
    assert row[D.PASS_AT_K] == 1.0 and row[D.PASS_K] == 2
    # lengths 2 tokens each; truncated [F, F, F, T]
    assert (row[D.MEAN_LENGTH], row[D.LENGTH_UNIT], row[D.TRUNCATION_RATE]) == (2.0, "tokens", 0.25)
    # entropies 1..8, planning tokens {1, 3, 7, 8}: planning 19/4, execution (2+4+5+6)/4 = 17/4, all 4.5
    assert row[D.PLANNING_RATIO] == 0.5
    assert (row[D.ENTROPY_PLANNING], row[D.ENTROPY_EXECUTION], row[D.ENTROPY_ALL]) == (4.75, 4.25, 4.5)
    # planning p = 1/2 -> PPL 2; execution p = 1/4 -> PPL 4
    assert row[D.PPL_PLANNING] == pytest.approx(2.0) and row[D.PPL_EXECUTION] == pytest.approx(4.0)
    # high = top ceil(0.3 * 8) = 3 tokens {6, 7, 8}; planning ∩ high = {7, 8}: 2/4 and 2/3
    assert row[D.P_HIGH_GIVEN_PLANNING] == 0.5 and row[D.P_PLANNING_GIVEN_HIGH] == pytest.approx(2 / 3)
    # gram counts: so 1 + wait 1 + so 2 -> {so: 3, wait: 1}: H = ln 4 - (3/4) ln 3
    assert row[D.SG_SEMANTIC_ENTROPY] == pytest.approx(math.log(4) - 0.75 * math.log(3))
    # only "so a b c" has 3 words after its gram -> one (gram, next) pair -> 0
    assert row[D.SG_CONDITIONAL_ENTROPY] == 0.0
    # prompt 0 answers {2, 3} -> ln 2; prompt 1 answers {5, None} -> ln 2
    assert row[D.ANSWER_SEMANTIC_ENTROPY] == pytest.approx(math.log(2))
    # "wait x" holds one marker, the others none -> 1/4
    assert row[D.REFLECTION_RATE] == 0.25


def test_relative_columns(rollouts):
    table = dynamics_table(rollouts, equivalent=_equal)
    # execution PPL 4 -> 2: relative [1, 0.5]; planning 2 -> 2: [1, 1]; same grams both steps: change [1, 1]
    assert table[D.REL_PPL_EXECUTION].tolist() == pytest.approx([1.0, 0.5])
    assert table[D.REL_PPL_PLANNING].tolist() == pytest.approx([1.0, 1.0])
    assert table[D.SG_SEMANTIC_ENTROPY_CHANGE].tolist() == pytest.approx([1.0, 1.0])
    assert table[D.ACCURACY].tolist() == [0.5, 1.0]


def test_text_only(rollouts):
    text = rollouts.drop(columns=[C.TOKEN_IDS, C.LOGPROBS, C.ENTROPIES, C.PLANNING_MASK, C.N_TOKENS, C.PRED])
    row = dynamics_table(text, equivalent=_equal).iloc[0]
    # words: 4 + 2 + 2 + 2 = 10 -> mean 2.5; planning words: so(1) + wait(1) + 0 + so so(2) = 4 of 10
    assert (row[D.MEAN_LENGTH], row[D.LENGTH_UNIT], row[D.PLANNING_RATIO]) == (2.5, "words", 0.4)
    assert all(np.isnan(row[c]) for c in D.TOKEN_PROBABILITY_COLUMNS)
    # no PRED column and no \boxed{} in the texts: every answer is None -> one cluster -> 0
    assert row[D.ANSWER_SEMANTIC_ENTROPY] == 0.0


def test_reward_fallback(rollouts):
    df = rollouts.drop(columns=[C.CORRECT]).assign(**{C.REWARD: [1.0, 0.0, 0.7, 0.2] * 2})
    row = dynamics_table(df, equivalent=_equal).iloc[0]
    # correct = reward > 0.5 = [1, 0, 1, 0] -> 0.5; mean reward (1 + 0 + 0.7 + 0.2) / 4
    assert row[D.ACCURACY] == 0.5 and row[D.MEAN_REWARD] == pytest.approx(0.475)


def test_missing_correctness_is_left_out(rollouts):
    df = rollouts.astype({C.CORRECT: object})
    df.loc[[1, 3], C.CORRECT] = [None, pd.NA]
    row = dynamics_table(df, equivalent=_equal).iloc[0]
    # known rows 0 and 2 are both correct -> 1.0; pass@2 needs 2 known samples per prompt -> NaN
    assert row[D.ACCURACY] == 1.0 and np.isnan(row["pass_at_2"])


def test_errors(rollouts):
    with pytest.raises(ReasonlensError, match=r"lacks column\(s\) \['response'\]"):
        dynamics_table(rollouts.drop(columns=[C.RESPONSE]))
    with pytest.raises(ReasonlensError, match="high_entropy_quantile=1.5"):
        dynamics_table(rollouts, high_entropy_quantile=1.5)
    with pytest.raises(ReasonlensError, match=r"lacks the tag column\(s\) \['grams'.*tag_rollouts"):
        dynamics_table(rollouts.drop(columns=[C.GRAMS]))
    bad = rollouts.copy()
    bad.at[0, C.ENTROPIES] = [1.0]
    with pytest.raises(ReasonlensError, match="'entropies' has 7 tokens but 'planning_mask' has 8"):
        dynamics_table(bad, equivalent=_equal)


def test_top_grams(rollouts):
    top = top_grams(rollouts, n=1)
    # per step: so 3, wait 1 -> the top one is "so"
    assert top.to_dict("records") == [{"step": 0, "gram": "so", "count": 3}, {"step": 10, "gram": "so", "count": 3}]


def test_credit_by_token_class_for_training_runs(rollouts):
    # every token's advantage is 1 at step 0; planning tokens (4 of 8) get 1.2 at step 10 (HICRA, A=1)
    adv = [[1.2 if (m and s) else 1.0 for m in mask] for s, mask in zip(rollouts[C.STEP], rollouts[C.PLANNING_MASK])]
    table = dynamics_table(rollouts.assign(**{C.ADVANTAGES: adv}), equivalent=_equal)
    assert table[D.ADVANTAGE_PLANNING].tolist() == pytest.approx([1.0, 1.2])
    assert table[D.ADVANTAGE_EXECUTION].tolist() == pytest.approx([1.0, 1.0])
    assert D.ADVANTAGE_PLANNING not in dynamics_table(rollouts, equivalent=_equal).columns


def test_step_metrics_is_the_dynamics_row_of_one_step(rollouts):
    one = rollouts[rollouts[C.STEP] == 10]
    got = step_metrics(one, equivalent=_equal)
    row = dynamics_table(rollouts, equivalent=_equal).iloc[1]
    # the same numbers as the table's row, without the ratios to a first step
    assert D.REL_PPL_EXECUTION not in got and got[D.STEP] == 10
    for name in (D.ACCURACY, D.PPL_EXECUTION, D.SG_SEMANTIC_ENTROPY, D.ENTROPY_PLANNING, D.PLANNING_RATIO):
        assert got[name] == pytest.approx(row[name])
    with pytest.raises(ReasonlensError, match="one step"):
        step_metrics(rollouts)


def test_step_metrics_hand_computed():
    table = tag_rollouts(pd.DataFrame({
        C.STEP: [3, 3], C.PROMPT_ID: ["p:0", "p:0"], C.RESPONSE: ["wait wait", "so"], C.CORRECT: [True, False],
        C.N_TOKENS: [2, 1], C.TRUNCATED: [False, True], C.ENTROPIES: [[1.0, 3.0], [2.0]],
        C.LOGPROBS: [[-1.0, -1.0], [-1.0]], C.PLANNING_MASK: [[True, False], [False]],
        C.ADVANTAGES: [[1.2, 1.0], [-1.0]]}), ["wait", "so"])
    got = step_metrics(table, equivalent=_equal)
    # 1 planning token of 3; advantages: planning 1.2, execution (1.0 - 1.0) / 2 = 0;
    # entropies: planning 1.0, execution (3 + 2) / 2 = 2.5, all 6 / 3 = 2.0;
    # grams wait x2, so x1 -> H = -(2/3 ln 2/3 + 1/3 ln 1/3) = 0.63651 nats;
    # pass@2 of a group with 1 of 2 correct = 1; lengths (2 + 1) / 2
    expected = {"planning_ratio": 1 / 3, "advantage_planning": 1.2, "advantage_execution": 0.0,
                "sg_semantic_entropy": 0.63651, "entropy_planning": 1.0, "entropy_execution": 2.5,
                "entropy_all": 2.0, "accuracy": 0.5, "pass_at_2": 1.0, "mean_length": 1.5,
                "truncation_rate": 0.5}
    assert {k: got[k] for k in expected} == pytest.approx(expected, abs=1e-5)
