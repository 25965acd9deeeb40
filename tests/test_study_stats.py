"""The study's nested bootstrap (experiments/hicra_smollm2/stats.py) and summarise's use of it on the
committed tables: bounded metrics stay in [0, 1], paired differences pair seeds and prompts."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

STUDY = Path(__file__).resolve().parents[1] / "experiments" / "hicra_smollm2"
sys.path.insert(0, str(STUDY))
from stats import nested_bootstrap  # noqa: E402
from summarise import paired, per_run, summary  # noqa: E402


def test_seed_level_interval_is_the_exact_bootstrap_percentiles():
    # 3 seeds 0.2, 0.5, 0.9: the 27 equally likely resamples have means from 0.2 (all 0.2: p = 1/27 = 3.7%)
    # to 0.9 (p = 3.7%); both tails hold more than 2.5%, so the 95% interval is exactly [0.2, 0.9]
    mean, low, high, n = nested_bootstrap([[0.2], [0.5], [0.9]])
    assert (mean, low, high, n) == (pytest.approx(1.6 / 3), pytest.approx(0.2), pytest.approx(0.9), 3)


def test_prompt_level_mean_and_bounds():
    # seed means (1 + 0) / 2 = 0.5 and (1 + 1 + 1) / 3 = 1 -> 0.75; 0/1 data: the interval stays in [0, 1]
    mean, low, high, n = nested_bootstrap([[1.0, 0.0], [1.0, 1.0, 1.0]])
    assert mean == pytest.approx(0.75) and 0.0 <= low < 0.75 < high <= 1.0 and n == 2
    assert np.isnan(nested_bootstrap([[0.3]])[1]) and nested_bootstrap([[np.nan]])[3] == 0


def test_committed_tables_give_bounded_intervals():
    training, results = pd.read_csv(STUDY / "training.csv"), pd.read_csv(STUDY / "results.csv")
    table = summary(per_run(training, results))
    bounded = table[table["metric"].isin(["final_accuracy", "final_reward"])]
    assert (bounded["ci95_low"] >= 0).all() and (bounded["ci95_high"] <= 1).all()
    grpo = bounded[(bounded["method"] == "grpo") & (bounded["metric"] == "final_accuracy")].iloc[0]
    assert grpo["ci95_high"] <= 1.0 < 1.010  # the t-interval said 0.557 to 1.010
    assert (table["ci95_low"] <= table["mean"] + 1e-12).all() and (table["mean"] <= table["ci95_high"] + 1e-12).all()


def test_paired_differences_pair_prompts_within_seeds():
    runs = pd.DataFrame({"method": ["a", "a", "b", "b"], "alpha": 0.0, "seed": [0, 1, 0, 1],
                         "final_accuracy": [0.75, 0.5, 0.25, 0.5]})
    prompts = pd.DataFrame({"method": ["a"] * 4 + ["b"] * 4, "seed": [0, 0, 1, 1] * 2, "prompt_id": ["p", "q"] * 4,
                            "final_accuracy": [1.0, 0.5, 0.5, 0.5, 0.5, 0.0, 0.5, 0.5]})
    # per-prompt a - b: seed 0 (0.5, 0.5), seed 1 (0, 0): seed means 0.5 and 0 -> mean 0.25, replicates in {0, .25, .5}
    mean, low, high, n = paired(runs, "a", "b", "final_accuracy", prompts)
    assert (mean, n) == (pytest.approx(0.25), 2) and low == 0.0 and high == 0.5
