"""detect_phases on synthetic curves with known boundaries, flat, noisy, short and missing curves."""

import json

import numpy as np
import pandas as pd
import pytest

from reasonlens.errors import ReasonlensError
from reasonlens.metrics import columns as D
from reasonlens.metrics.phases import detect_phases, robust_noise

STEPS = np.arange(20) * 10  # checkpoints every 10 steps


def _table(**curves):
    n = len(next(iter(curves.values())))
    return pd.DataFrame({D.STEP: STEPS[:n], **curves})


@pytest.mark.parametrize("knee", [5, 8, 12], ids=["knee5", "knee8", "knee12"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_consolidation_knee(knee, seed):
    rng = np.random.default_rng(seed)
    t = np.arange(20)
    # relative PPL falls 0.05 per point until the knee, then stays; noise sd 0.01
    y = np.where(t < knee, 1 - 0.05 * t, 1 - 0.05 * knee) + rng.normal(0, 0.01, 20)
    out = detect_phases(_table(**{D.REL_PPL_EXECUTION: y}))["consolidation"]
    assert out["detected"] and abs(out["step"] - STEPS[knee]) <= 10, out
    assert out["evidence"]["hinge_step"] == out["step"] and out["evidence"]["noise_sigma"] > 0


@pytest.mark.parametrize("onset", [4, 7, 10], ids=["rise4", "rise7", "rise10"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_exploration_onset(onset, seed):
    rng = np.random.default_rng(seed)
    t = np.arange(20)
    # SG entropy flat at 2.0 until the onset, then +0.05 per point to the end; noise sd 0.01
    y = np.where(t < onset, 2.0, 2.0 + 0.05 * (t - onset)) + rng.normal(0, 0.01, 20)
    out = detect_phases(_table(**{D.SG_SEMANTIC_ENTROPY: y}))["exploration"]
    assert out["detected"] and abs(out["step"] - STEPS[onset]) <= 10, out


def test_exponential_decay_has_a_knee():
    # 0.7 + 0.3 exp(-t/2): steep at first, flat after a few points; no noise
    y = 0.7 + 0.3 * np.exp(-np.arange(15) / 2)
    out = detect_phases(_table(**{D.REL_PPL_EXECUTION: y}))["consolidation"]
    assert out["detected"] and 20 <= out["step"] <= 60


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("n", [8, 20])
def test_pure_noise_gives_no_phase(seed, n):
    rng = np.random.default_rng(100 + seed)
    out = detect_phases(_table(**{D.REL_PPL_EXECUTION: 1 + rng.normal(0, 0.05, n),
                                  D.SG_SEMANTIC_ENTROPY: 2 + rng.normal(0, 0.05, n)}))
    assert not out["consolidation"]["detected"] and not out["exploration"]["detected"], out


def test_flat_gives_no_phase():
    out = detect_phases(_table(**{D.REL_PPL_EXECUTION: np.ones(12), D.SG_SEMANTIC_ENTROPY: np.full(12, 2.0)}))
    assert not out["consolidation"]["detected"] and not out["exploration"]["detected"]
    assert "noise sigmas" in out["consolidation"]["reason"]


def test_too_short():
    out = detect_phases(_table(**{D.REL_PPL_EXECUTION: [1.0, 0.5, 0.4], D.SG_SEMANTIC_ENTROPY: [1.0, 2.0, 3.0]}))
    assert not out["consolidation"]["detected"] and out["consolidation"]["step"] is None
    assert out["exploration"]["reason"].startswith("too few steps: 3")


def test_text_only_nan_curves():
    y = 2.0 + 0.1 * np.maximum(0, np.arange(12) - 4)
    out = detect_phases(_table(**{D.REL_PPL_EXECUTION: np.full(12, np.nan), D.SG_SEMANTIC_ENTROPY: y}))
    assert not out["consolidation"]["detected"]
    assert "no token probabilities" in out["consolidation"]["reason"]
    assert out["exploration"]["detected"] and abs(out["exploration"]["step"] - 40) <= 10


def test_result_is_json_with_evidence():
    y = np.where(np.arange(12) < 5, 1 - 0.05 * np.arange(12), 0.75)
    out = detect_phases(_table(**{D.REL_PPL_EXECUTION: y, D.SG_SEMANTIC_ENTROPY: np.full(12, np.nan)}))
    json.dumps(out, allow_nan=False)
    assert set(out["consolidation"]) == {"detected", "step", "step_interval", "evidence", "reason"}
    assert {"curve", "hinge_step", "penalty", "noise_sigma", "compared"} <= set(out["consolidation"]["evidence"])


def test_robust_noise_ignores_slope_changes():
    # a piecewise-linear curve plus N(0, 0.1): second differences cancel the slopes -> about 0.1
    rng = np.random.default_rng(0)
    t = np.arange(400)
    y = np.where(t < 200, -0.05 * t, -10.0 + 0.02 * (t - 200)) + rng.normal(0, 0.1, 400)
    assert robust_noise(y) == pytest.approx(0.1, rel=0.15)


def test_bad_input():
    with pytest.raises(ReasonlensError, match="lacks 'step'"):
        detect_phases(pd.DataFrame({"x": [1]}))
    with pytest.raises(ReasonlensError, match="min_steps=2"):
        detect_phases(_table(**{D.SG_SEMANTIC_ENTROPY: np.ones(5)}), min_steps=2)


def test_from_dynamics_table_end_to_end():
    """Rollouts whose execution tokens sharpen until step 50 and whose gram variety grows from step 60."""
    from reasonlens import columns as C
    from reasonlens.hierarchy.tag import tag_rollouts
    from reasonlens.metrics.dynamics import dynamics_table

    grams = ["so", "but wait", "let's try", "alternatively", "we can use", "first"]
    rows = []
    for i, step in enumerate(STEPS[:14]):
        p_exec = 0.3 + 0.1 * min(i, 5)                    # rises to 0.8 at step 50, then flat
        variety = 1 + max(0, i - 6)                       # 1 gram until step 60, then one more each step
        for k in range(6):
            text = f"{grams[k % min(variety, 6)]} x y z {grams[(k + 1) % min(variety, 6)]} u v w"
            rows.append({C.STEP: int(step), C.PROMPT_ID: "p", C.RESPONSE: text, C.CORRECT: True,
                         C.LOGPROBS: [np.log(0.5), np.log(p_exec)], C.ENTROPIES: [1.0, 0.5],
                         C.PLANNING_MASK: [True, False]})
    table = dynamics_table(tag_rollouts(pd.DataFrame(rows), grams), equivalent=lambda a, b: a == b)
    out = detect_phases(table)
    # a convex fall (RelPPL = 1/p): the two-line knee lands where the steep part ends, 30-50
    assert out["consolidation"]["detected"] and 30 <= out["consolidation"]["step"] <= 50, out
    assert out["exploration"]["detected"] and abs(out["exploration"]["step"] - 60) <= 10, out


def _with_se(steps, y, se):
    """A dynamics table with 95% interval columns of half-width 1.96 se around y."""
    return pd.DataFrame({D.STEP: steps, D.REL_PPL_EXECUTION: y, D.ci_low(D.REL_PPL_EXECUTION): y - 1.96 * se,
                         D.ci_high(D.REL_PPL_EXECUTION): y + 1.96 * se})


@pytest.mark.parametrize("seed", range(5))
def test_bootstrap_noise_finds_a_6_se_knee_with_an_interval(seed):
    # 16 checkpoints, se 0.02: linear fall of 6 se (0.12) until index 6, then flat; noise drawn with that se
    rng = np.random.default_rng(seed)
    t, se = np.arange(16), 0.02
    y = 1 - 0.12 * np.minimum(t, 6) / 6 + rng.normal(0, se, 16)
    out = detect_phases(_with_se(t * 10, y, np.full(16, se)))["consolidation"]
    assert out["detected"] and abs(out["step"] - 60) <= 30, out
    low, high = out["step_interval"]
    assert low <= 60 <= high and low <= out["step"] <= high  # the true knee is inside the step interval
    assert out["evidence"]["noise_source"].startswith("bootstrap")
    inflation = out["evidence"].get("scatter_inflation", 1.0)  # chi-square guard, 1% of flat noise
    assert out["evidence"]["noise_sigma"] == pytest.approx(se * inflation, rel=1e-6)  # (hi - lo) / (2 * 1.96)
    assert f"vs 3 x noise sigma {out['evidence']['noise_sigma']:.2g}" in out["evidence"]["compared"]


@pytest.mark.parametrize("seed", range(10))
def test_bootstrap_noise_flat_curve_gives_no_phase(seed):
    rng = np.random.default_rng(50 + seed)
    se = np.full(24, 0.02)
    out = detect_phases(_with_se(np.arange(24), 1 + rng.normal(0, 0.02, 24), se))["consolidation"]
    assert not out["detected"] and out["step_interval"] is None


def test_a_curve_noisier_than_its_intervals_is_inflated():
    # points scatter with sd 0.05 but claim se 0.005: the chi-square guard widens the noise ~10x, no knee
    rng = np.random.default_rng(3)
    out = detect_phases(_with_se(np.arange(20), 1 + rng.normal(0, 0.05, 20), np.full(20, 0.005)))["consolidation"]
    assert not out["detected"] and out["evidence"]["scatter_inflation"] > 5


def test_the_first_steps_zero_width_ratio_interval_takes_the_median():
    from reasonlens.metrics.phases import standard_errors

    table = _with_se(np.arange(4), np.ones(4), np.array([0.0, 0.01, 0.02, 0.03]))
    assert standard_errors(table, D.REL_PPL_EXECUTION) == pytest.approx([0.02, 0.01, 0.02, 0.03])
    assert standard_errors(table.drop(columns=[D.ci_low(D.REL_PPL_EXECUTION)]), D.REL_PPL_EXECUTION) is None
