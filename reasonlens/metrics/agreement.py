"""Does a log's reward say what its correctness says? Steps where they disagree badly, with the likely cause.

A run's logged reward (verl's ``score``, TRL's reward columns, ...) and the correctness of its answers
(the log's own verdict, or graded here against gold answers) are kept apart in the dynamics table
(``mean_reward``, ``accuracy``). They should move together when the reward is a correctness reward.
Rewards come in many scales (DAPO's math reward is +1/-1), so each is first mapped to [0, 1] with the
log's own smallest and largest reward when it leaves [0, 1]; a step is flagged when that normalised mean
and the accuracy differ by more than ``threshold``. Decision (ours): threshold 0.25, at least 4 rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import columns as rc

CAUSES = {
    "unparsed": "no parsable final answer: {unparsed:.0%} of its responses have no final answer the grader "
                "could read (e.g. not in \\boxed{{}}), so they count as wrong",
    "graded": "the gold answers may be in another field or format (check --answer-field), or the reward is "
              "not correctness (format, length or partial-credit terms)",
    "logged": "the reward is not correctness (format, length or partial-credit terms), or the log's "
              "verdicts are not about the same answers",
}


def normalised_rewards(rewards: pd.Series) -> pd.Series:
    """Rewards mapped to [0, 1] by the log's min and max when any leaves [0, 1]; else unchanged."""
    r = pd.to_numeric(rewards, errors="coerce").astype(float)
    low, high = r.min(), r.max()
    if (low >= 0 and high <= 1) or not high > low:
        return r
    return (r - low) / (high - low)


def reward_accuracy_gaps(rollouts: pd.DataFrame, *, graded: bool, threshold: float = 0.25,
                         min_rows: int = 4) -> list[dict]:
    """Steps whose mean normalised reward and accuracy differ by more than ``threshold``.

    Parameters
    ----------
    rollouts : rollout table with ``step``, ``reward``, ``correct`` (and ``pred`` when graded here).
    graded : whether ``correct`` was graded here (True) or logged by the run (False).

    Returns
    -------
    list of {"step", "mean_reward", "normalised_reward", "accuracy", "cause"}, one per flagged step.

    Example
    -------
    >>> reward_accuracy_gaps(table, graded=True)[0]["cause"]  # doctest: +SKIP
    """
    if rc.REWARD not in rollouts or rc.CORRECT not in rollouts:
        return []
    df = rollouts.assign(_r=normalised_rewards(rollouts[rc.REWARD]),
                         _c=[np.nan if v is None or v is pd.NA else float(v) for v in rollouts[rc.CORRECT]])
    flagged = []
    for step, g in df.groupby(rc.STEP, sort=True):
        g = g[g["_r"].notna() & g["_c"].notna()]
        if len(g) < min_rows or abs(g["_r"].mean() - g["_c"].mean()) <= threshold:
            continue
        flagged.append({"step": int(step), "mean_reward": float(pd.to_numeric(g[rc.REWARD]).mean()),
                        "normalised_reward": float(g["_r"].mean()), "accuracy": float(g["_c"].mean()),
                        "cause": _cause(g, graded)})
    return flagged


def _cause(g: pd.DataFrame, graded: bool) -> str:
    """The likeliest reason a step's reward and correctness disagree."""
    if graded and rc.PRED in g:
        unparsed = float(g[rc.PRED].map(lambda p: p is None or (isinstance(p, float) and np.isnan(p))).mean())
        if unparsed >= 0.5:
            return CAUSES["unparsed"].format(unparsed=unparsed)
    return CAUSES["graded" if graded else "logged"]
