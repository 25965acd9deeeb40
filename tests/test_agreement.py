"""Reward vs correctness: normalisation and the disagreeing steps, on tables small enough to check by hand."""

import pandas as pd
from reasonlens.metrics.agreement import normalised_rewards, reward_accuracy_gaps


def test_rewards_inside_0_1_are_kept_and_others_mapped_by_the_logs_range():
    assert normalised_rewards(pd.Series([0.0, 0.5, 1.0])).tolist() == [0.0, 0.5, 1.0]
    assert normalised_rewards(pd.Series([-1.0, 1.0, 1.0])).tolist() == [0.0, 1.0, 1.0]  # DAPO's +1/-1
    assert normalised_rewards(pd.Series([0.0, 5.0])).tolist() == [0.0, 1.0]


def _table(step, rewards, correct, preds):
    return pd.DataFrame({"step": step, "reward": rewards, "correct": correct, "pred": preds})


def test_a_step_is_flagged_only_beyond_the_threshold():
    # step 1: rewards mean 0.5, accuracy 0.5 -> fine; step 2: mean 0.75 vs accuracy 0.25 -> gap 0.5, flagged
    table = pd.concat([_table(1, [1, 0, 1, 0], [True, False, True, False], ["1", "2", "3", "4"]),
                       _table(2, [1, 1, 1, 0], [True, False, False, False], ["1", "2", "3", "4"])])
    gaps = reward_accuracy_gaps(table, graded=True)
    assert [(g["step"], g["mean_reward"], g["accuracy"]) for g in gaps] == [(2, 0.75, 0.25)]
    assert "another field" in gaps[0]["cause"]  # answers were parsed: the gold or the reward is the suspect


def test_plus_minus_one_rewards_agree_with_their_verdicts():
    # +1/-1 rewards with the matching verdicts: normalised mean 0.5 = accuracy 0.5, nothing flagged
    assert reward_accuracy_gaps(_table(3, [1.0, -1.0, 1.0, -1.0], [True, False, True, False], [None] * 4),
                                graded=False) == []


def test_unparsed_answers_are_named_as_the_cause():
    # 3 of 4 responses have no final answer: graded accuracy 0 while the logged reward averages 0.5
    gaps = reward_accuracy_gaps(_table(5, [1, 0, 1, 0], [False] * 4, [None, None, None, "9"]), graded=True)
    assert gaps[0]["cause"].startswith("no parsable final answer: 75% of its responses")
    logged = reward_accuracy_gaps(_table(5, [1, 0, 1, 0], [False] * 4, [None] * 4), graded=False)
    assert "the reward is not correctness" in logged[0]["cause"]


def test_too_few_rows_are_not_judged():
    assert reward_accuracy_gaps(_table(1, [1] * 3, [False] * 3, ["1"] * 3), graded=True) == []


def test_the_report_says_where_reward_and_correctness_came_from_and_why_entropy_is_missing():
    from reasonlens.metrics import columns as dc
    from reasonlens.report.narrative import overview

    log = {"framework": "nemo-rl", "reward_from": "NeMo-RL 'rewards'", "correct_from": "graded here: gts",
           "unavailable": {"entropy": "the log has no entropies"},
           "reward_accuracy_gaps": [{"step": 4, "mean_reward": 0.5, "accuracy": 0.003, "cause": "no parsable answer"}]}
    dynamics = pd.DataFrame({dc.STEP: [4], dc.N_RESPONSES: [8], dc.ACCURACY: [0.003]})
    lines = overview({"log": log}, dynamics, list(dc.ENTROPY_COLUMNS), text_only=False)
    assert "Rollout log written by nemo-rl: the reward is NeMo-RL 'rewards'; correctness: graded here: gts." in lines
    assert "Entropy metrics are unavailable: the log has no entropies." in lines
    assert any(line.startswith("Warning, step 4: the logged reward averages 0.5 but accuracy is 0.3%") for line in lines)
    assert not any("no response token fell in that class" in line for line in lines)  # not the generic reason
