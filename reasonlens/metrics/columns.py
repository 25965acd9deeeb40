"""Column names of the dynamics table (one row per step), defined once.

Entropies are in nats. ``rel_*`` and ``*_change`` columns are ratios to the first step's value.
Token-probability columns are NaN for text-only rollouts: they are never estimated from text.
"""

STEP = "step"                            # int: training step / checkpoint number
N_RESPONSES = "n_responses"              # int: sampled responses at this step
ACCURACY = "accuracy"                    # float: share correct (CORRECT, else REWARD > 0.5)
MEAN_REWARD = "mean_reward"              # float: mean REWARD (NaN when the log has none)
PASS_AT_1 = "pass_at_1"                  # float: unbiased pass@1 (= accuracy over prompts)
PASS_AT_K = "pass_at_k"                  # float: unbiased pass@k, k = PASS_K
PASS_K = "pass_k"                        # int: the k of PASS_AT_K (largest power of 2 <= samples/prompt)
MEAN_LENGTH = "mean_length"              # float: mean response length in LENGTH_UNIT
LENGTH_UNIT = "length_unit"              # str: "tokens" or "words" (text-only logs without token counts)
TRUNCATION_RATE = "truncation_rate"      # float: share of responses cut by the token limit
PLANNING_RATIO = "planning_ratio"        # float: share of planning tokens (words in text-only mode)
ENTROPY_ALL = "entropy_all"              # float: mean token entropy, nats
ENTROPY_PLANNING = "entropy_planning"
ENTROPY_EXECUTION = "entropy_execution"
PPL_PLANNING = "ppl_planning"            # float: exp(mean NLL of planning tokens)
PPL_EXECUTION = "ppl_execution"
PPL_ALL = "ppl_all"                      # float: exp(mean NLL of all response tokens) (extra)
REL_PPL_PLANNING = "rel_ppl_planning"    # float: PPL_PLANNING / its first-step value
REL_PPL_EXECUTION = "rel_ppl_execution"
SG_SEMANTIC_ENTROPY = "sg_semantic_entropy"                # float: entropy of gram counts, nats
SG_SEMANTIC_ENTROPY_CHANGE = "sg_semantic_entropy_change"  # float: ratio to the first step
SG_CONDITIONAL_ENTROPY = "sg_conditional_entropy"          # float: H(next word 3-gram | gram), nats
ANSWER_SEMANTIC_ENTROPY = "answer_semantic_entropy"        # float: entropy of answer clusters, nats
P_HIGH_GIVEN_PLANNING = "p_high_given_planning"  # float: P(high-entropy token | planning token)
P_PLANNING_GIVEN_HIGH = "p_planning_given_high"  # float: P(planning token | high-entropy token)
REFLECTION_RATE = "reflection_rate"      # float: reflection markers per response
ADVANTAGE_PLANNING = "advantage_planning"    # float: mean per-token credit on planning tokens (training runs)
ADVANTAGE_EXECUTION = "advantage_execution"  # float: the same on execution tokens; HICRA lifts only the first

DYNAMICS_COLUMNS = [
    STEP, N_RESPONSES, ACCURACY, PASS_AT_1, PASS_AT_K, MEAN_LENGTH, TRUNCATION_RATE, PLANNING_RATIO,
    ENTROPY_ALL, ENTROPY_PLANNING, ENTROPY_EXECUTION, PPL_PLANNING, PPL_EXECUTION, REL_PPL_PLANNING,
    REL_PPL_EXECUTION, SG_SEMANTIC_ENTROPY, SG_SEMANTIC_ENTROPY_CHANGE, SG_CONDITIONAL_ENTROPY,
    ANSWER_SEMANTIC_ENTROPY, P_HIGH_GIVEN_PLANNING, P_PLANNING_GIVEN_HIGH, REFLECTION_RATE,
]
"""The columns every dynamics table starts with, in order; it adds PASS_K, pass_at_<k>, MEAN_REWARD,
LENGTH_UNIT, PPL_ALL (and ADVANTAGE_* for training runs)."""

TOKEN_PROBABILITY_COLUMNS = [
    ENTROPY_ALL, ENTROPY_PLANNING, ENTROPY_EXECUTION, PPL_PLANNING, PPL_EXECUTION, REL_PPL_PLANNING,
    REL_PPL_EXECUTION, P_HIGH_GIVEN_PLANNING, P_PLANNING_GIVEN_HIGH,
]
"""Columns that need per-token log-probabilities/entropies: NaN (unavailable) for text-only logs."""

ENTROPY_COLUMNS = [ENTROPY_ALL, ENTROPY_PLANNING, ENTROPY_EXECUTION, P_HIGH_GIVEN_PLANNING, P_PLANNING_GIVEN_HIGH]
"""Columns that need per-token entropies: NaN for logs with log-probabilities only (NeMo-RL, slime)."""


def pass_at_column(k: int) -> str:
    """Name of the pass@k column for one k, e.g. ``pass_at_8``."""
    return f"pass_at_{k}"


CI_LEVEL = 0.95
"""Coverage of the per-step bootstrap intervals (``metrics.bootstrap``): percentiles 2.5 and 97.5."""


def ci_low(column: str) -> str:
    """Name of the lower end of ``column``'s 95% bootstrap interval, e.g. ``accuracy_ci_low``."""
    return f"{column}_ci_low"


def ci_high(column: str) -> str:
    """Name of the upper end of ``column``'s 95% bootstrap interval, e.g. ``accuracy_ci_high``."""
    return f"{column}_ci_high"
