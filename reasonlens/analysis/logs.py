"""What the analyze command adds to a --rollouts log: decoded token-level logs and where the outcomes came from.

A token-level log (prime-rl token exports, NeMo-RL train data, slime dumps) carries token ids with the
log-probabilities (and, for prime-rl, entropies) of the distribution that sampled them: decoded with
``--tokenizer`` into text and character offsets, every token metric comes from the log, with no model
loaded. `log_summary` records, for summary.json and the report, which field gave the reward, which
gave correctness (logged, graded here, or none), which metrics stay unavailable and why, and the steps
where reward and correctness disagree badly (also raised as warnings).
"""

from __future__ import annotations

import warnings

import pandas as pd

from reasonlens import columns as C


def decode_responses(table: pd.DataFrame, tokenizer) -> pd.DataFrame:
    """``response`` and ``token_offsets`` from ``token_ids``, and ``prompt`` from ``prompt_token_ids`` where the
    log has no prompt text; decoded with special tokens kept, so every token has a character span."""
    from reasonlens.models.offsets import DECODE_KWARGS, token_offsets

    table = table.copy()
    decoded = [token_offsets(tokenizer, [int(t) for t in ids]) for ids in table[C.TOKEN_IDS]]
    table[C.RESPONSE] = [text for text, _ in decoded]
    table[C.TOKEN_OFFSETS] = [[list(o) for o in offsets] for _, offsets in decoded]
    if C.PROMPT_TOKEN_IDS in table:
        table[C.PROMPT] = [p if p else tokenizer.decode([int(t) for t in ids], **DECODE_KWARGS)
                           for p, ids in zip(table[C.PROMPT], table[C.PROMPT_TOKEN_IDS])]
    return table


def log_summary(layout, rollouts: pd.DataFrame, graded: str | None, *, rescored: bool = False) -> dict:
    """summary.json's ``log`` entry: framework, outcome sources, unavailable metrics (none once re-scored by the
    checkpoints), steps where reward and correctness disagree."""
    from reasonlens.metrics.agreement import reward_accuracy_gaps

    if graded:
        correct_from = f"graded here: {graded}"
    elif C.CORRECT in rollouts:
        correct_from = layout.correct_from or "the log's 'correct' field"
    elif C.REWARD in rollouts:
        correct_from = "none logged, no gold answers: accuracy is the share with reward > 0.5"
    else:
        correct_from = None
    gaps = reward_accuracy_gaps(rollouts, graded=bool(graded))
    for gap in gaps:
        warnings.warn(disagreement_sentence(gap), stacklevel=2)
    return {"framework": layout.framework, "reward_from": layout.reward_from if C.REWARD in rollouts else None,
            "correct_from": correct_from, "unavailable": {} if rescored else dict(layout.unavailable), "reward_accuracy_gaps": gaps}


def disagreement_sentence(gap: dict) -> str:
    """One line for a step whose logged reward and accuracy disagree."""
    return (f"step {gap['step']}: the logged reward averages {gap['mean_reward']:.3g} ({gap['normalised_reward']:.0%} "
            f"of its range) but accuracy is {gap['accuracy']:.1%}. Likely cause: {gap['cause']}.")
