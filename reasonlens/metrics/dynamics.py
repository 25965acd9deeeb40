"""The dynamics table: one row per step of the metrics in method.md section 3, from the tagged rollout table.

Every per-step metric is computed here once: ``analyze`` builds the table over all steps and the
trainer's ``metrics.csv`` takes `step_metrics` of each step's rollouts, so the two never disagree.
The input is the rollout table after the tag stage (`hierarchy.tag.tag_rollouts`): gram metrics read
its ``grams``/``gram_next``/``n_*`` columns, nothing is re-tagged here.

Decisions (the paper is silent): correctness is CORRECT, else REWARD > 0.5 (rows with neither are
left out of accuracy and pass@k); accuracy is the share correct and ``mean_reward`` the raw mean.
pass@k uses k in powers of 2 up to the largest samples-per-prompt; ``pass_at_k`` uses the most
common samples-per-prompt. Lengths are in tokens (N_TOKENS or TOKEN_IDS) else in words. Without
per-token arrays (text-only logs) the planning ratio is the share of words overlapping a gram
occurrence and the token-probability columns are NaN: never estimated.
"""

from __future__ import annotations

import functools
import math
from typing import Callable

import numpy as np
import pandas as pd

from .. import columns as rc
from ..errors import ReasonlensError
from ..sources.logs import parse_bool
from . import columns as dc
from .entropy import answer_semantic_entropy, conditional_procedural_entropy, sg_semantic_entropy
from .outcomes import mean_pass_at_k, powers_of_two_upto
from .token_stats import high_entropy_overlap, mean_by_class, perplexity_by_class, pool, relative_to_first

TAGGED = (rc.GRAMS, rc.GRAM_NEXT, rc.N_WORDS, rc.N_PLANNING_WORDS, rc.N_REFLECTIONS)
RELATIVE = {dc.REL_PPL_PLANNING: dc.PPL_PLANNING, dc.REL_PPL_EXECUTION: dc.PPL_EXECUTION,
            dc.SG_SEMANTIC_ENTROPY_CHANGE: dc.SG_SEMANTIC_ENTROPY}


def dynamics_table(rollouts: pd.DataFrame, *, high_entropy_quantile: float = 0.3,
                   equivalent: Callable[[str, str], bool] | None = None) -> pd.DataFrame:
    """Per-step metrics of a tagged rollout table (one row per response).

    Parameters
    ----------
    rollouts : DataFrame with ``step``, ``response`` and the tag columns (`hierarchy.tag.tag_rollouts`);
        optional ``prompt_id``, ``correct``, ``reward``, ``pred``, ``n_tokens``, ``truncated`` and the
        token arrays ``logprobs``, ``entropies``, ``planning_mask``, ``advantages`` (see reasonlens.columns).
    high_entropy_quantile : share of a step's tokens called high-entropy (paper: 0.3).
    equivalent : answer equivalence for answer-level semantic entropy (default: math-verify).

    Returns
    -------
    DataFrame, one row per step (ascending), columns ``metrics.columns.DYNAMICS_COLUMNS`` then
    ``pass_k``, ``pass_at_<k>`` for each power of 2, ``mean_reward``, ``length_unit``, ``ppl_all``
    (and ``advantage_*`` for training runs).

    Example
    -------
    >>> dynamics_table(tag_rollouts(rollouts, "paper"))[["step", "accuracy"]]  # doctest: +SKIP
    """
    _check_input(rollouts, high_entropy_quantile)
    if equivalent is None:
        from ..sources.answers import answers_equivalent as equivalent
    equivalent = functools.lru_cache(maxsize=None)(equivalent)  # shared by all steps: answers repeat
    df = rollouts.assign(_prompt=_prompt_key(rollouts), _correct=_correctness(rollouts))
    sizes = df.groupby([rc.STEP, "_prompt"]).size()
    ks = powers_of_two_upto(int(sizes.max()))
    pass_k = powers_of_two_upto(int(sizes.mode().max()))[-1]
    rows = [{dc.STEP: step, **_outcomes(g, ks, pass_k), **_lengths(g),
             **_token_metrics(g, high_entropy_quantile), **_text_metrics(g, equivalent)}
            for step, g in df.groupby(rc.STEP, sort=True)]
    table = add_relative(pd.DataFrame(rows))
    extra = [c for c in table.columns if c not in dc.DYNAMICS_COLUMNS]
    return table[dc.DYNAMICS_COLUMNS + extra]


def add_relative(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` (one row per step, ascending) with the ``rel_*`` / ``*_change`` ratios to its first step.

    >>> add_relative(pd.DataFrame({"ppl_planning": [2.0, 1.0], "ppl_execution": [4.0, 2.0],
    ...                            "sg_semantic_entropy": [1.0, 1.5]}))["sg_semantic_entropy_change"].tolist()
    [1.0, 1.5]
    """
    return table.assign(**{relative: relative_to_first(table[column]) for relative, column in RELATIVE.items()})


def step_metrics(rollouts: pd.DataFrame, **kwargs) -> dict:
    """The dynamics-table row of one step's rollouts, without the ratios to a first step (a training log).

    >>> step_metrics(tag_rollouts(one_step, "paper"))["planning_ratio"]  # doctest: +SKIP
    """
    if rollouts[rc.STEP].nunique() != 1:
        raise ReasonlensError(f"step_metrics takes the rollouts of one step; got steps "
                              f"{sorted(rollouts[rc.STEP].unique())}. Use dynamics_table for a series.")
    row = dynamics_table(rollouts, **kwargs).iloc[0].drop(list(RELATIVE))
    return {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}


def top_grams(rollouts: pd.DataFrame, n: int = 10) -> pd.DataFrame:
    """The ``n`` most frequent strategic grams of each step: DataFrame(step, gram, count).

    Counts are the tagged ``grams`` (longest first, non-overlapping) summed over the step's
    responses; ties are broken by the gram text.
    """
    _check_input(rollouts)
    rows = []
    for step, grams in rollouts.groupby(rc.STEP, sort=True)[rc.GRAMS]:
        counts = pd.Series([g for response in grams for g in response], dtype=object).value_counts()
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]
        rows += [{dc.STEP: step, "gram": gram, "count": int(count)} for gram, count in ranked]
    return pd.DataFrame(rows, columns=[dc.STEP, "gram", "count"])


def _check_input(rollouts: pd.DataFrame, high_entropy_quantile: float = 0.3) -> None:
    """Raise ReasonlensError for a table the metrics cannot use."""
    missing = [c for c in (rc.STEP, rc.RESPONSE) if c not in rollouts.columns]
    if missing:
        raise ReasonlensError(f"rollout table lacks column(s) {missing} (has {list(rollouts.columns)}): "
                              f"the dynamics need one row per response with '{rc.STEP}' and '{rc.RESPONSE}'.")
    untagged = [c for c in TAGGED if c not in rollouts.columns]
    if untagged:
        raise ReasonlensError(f"rollout table lacks the tag column(s) {untagged}: tag it first with "
                              "reasonlens.hierarchy.tag.tag_rollouts(rollouts, lexicon).")
    if rollouts.empty:
        raise ReasonlensError("rollout table is empty: generate or load at least one response per step.")
    if not 0 < high_entropy_quantile < 1:
        raise ReasonlensError(f"high_entropy_quantile={high_entropy_quantile} must be in (0, 1), "
                              "e.g. 0.3 (the paper's).")


def _prompt_key(df: pd.DataFrame) -> pd.Series:
    """Which prompt each row answers: PROMPT_ID, else the prompt text, else the row itself."""
    for col in (rc.PROMPT_ID, rc.PROMPT):
        if col in df.columns:
            return df[col].astype(str)
    return pd.Series(np.arange(len(df)).astype(str), index=df.index)


def _correctness(df: pd.DataFrame) -> pd.Series:
    """1.0/0.0 per row from CORRECT (parsed strictly), else REWARD > 0.5; NaN where unknown."""
    if rc.CORRECT in df.columns:
        try:
            values = [parse_bool(v) for v in df[rc.CORRECT]]
        except ValueError as err:
            raise ReasonlensError(f"rollout table: column '{rc.CORRECT}' holds a value that is {err}.") from None
        return pd.Series([math.nan if v is None else float(v) for v in values], index=df.index)
    if rc.REWARD in df.columns:
        reward = pd.to_numeric(df[rc.REWARD], errors="coerce")
        return (reward > 0.5).astype(float).where(reward.notna())
    return pd.Series(math.nan, index=df.index)


def _bool_or_nan(value) -> float:
    """True/False (or 1/0) to 1.0/0.0; missing to NaN."""
    parsed = parse_bool(value)
    return math.nan if parsed is None else float(parsed)


def _outcomes(g: pd.DataFrame, ks: list[int], pass_k: int) -> dict:
    """n_responses, accuracy, mean reward and pass@k of one step."""
    known = g[g["_correct"].notna()]
    groups = [(len(p), int(p["_correct"].sum())) for _, p in known.groupby("_prompt")]
    passes = {dc.pass_at_column(k): mean_pass_at_k(groups, k) for k in ks}
    reward = pd.to_numeric(g[rc.REWARD], errors="coerce").mean() if rc.REWARD in g.columns else math.nan
    return {dc.N_RESPONSES: len(g), dc.ACCURACY: known["_correct"].mean() if len(known) else math.nan,
            dc.PASS_AT_1: passes[dc.pass_at_column(1)], dc.PASS_AT_K: passes[dc.pass_at_column(pass_k)],
            dc.PASS_K: pass_k, **passes, dc.MEAN_REWARD: float(reward)}


def _lengths(g: pd.DataFrame) -> dict:
    """Mean length (tokens if known, else words) and truncation rate of one step."""
    if rc.N_TOKENS in g.columns:
        lengths, unit = pd.to_numeric(g[rc.N_TOKENS], errors="coerce"), "tokens"
    elif rc.TOKEN_IDS in g.columns:
        lengths, unit = g[rc.TOKEN_IDS].map(len), "tokens"
    else:
        lengths, unit = g[rc.N_WORDS], "words"
    trunc = g[rc.TRUNCATED].map(_bool_or_nan).mean() if rc.TRUNCATED in g.columns else math.nan
    return {dc.MEAN_LENGTH: float(lengths.mean()), dc.LENGTH_UNIT: unit, dc.TRUNCATION_RATE: float(trunc)}


def _token_metrics(g: pd.DataFrame, quantile: float) -> dict:
    """Entropy, perplexity, planning ratio and high-entropy overlap from the per-token arrays (NaN if absent)."""
    out = dict.fromkeys([c for c in dc.TOKEN_PROBABILITY_COLUMNS if c not in RELATIVE]
                        + [dc.PPL_ALL, dc.PLANNING_RATIO], math.nan)
    mask = _pooled(g, rc.PLANNING_MASK, bool)  # (N,) True = planning token
    ent, logp = _pooled(g, rc.ENTROPIES), _pooled(g, rc.LOGPROBS)  # (N,) each
    if mask is not None and mask.size:
        out[dc.PLANNING_RATIO] = float(mask.mean())
    if ent is not None:
        by_class = mean_by_class(ent, _class_mask(g, rc.ENTROPIES, ent, mask))
        out[dc.ENTROPY_ALL] = by_class["all"]
        if mask is not None:
            out[dc.ENTROPY_PLANNING], out[dc.ENTROPY_EXECUTION] = by_class["planning"], by_class["execution"]
            out.update(high_entropy_overlap(ent, mask, quantile))
    if logp is not None:
        ppl = perplexity_by_class(logp, _class_mask(g, rc.LOGPROBS, logp, mask))
        out[dc.PPL_ALL] = ppl["all"]
        if mask is not None:
            out[dc.PPL_PLANNING], out[dc.PPL_EXECUTION] = ppl["planning"], ppl["execution"]
    advantages = _pooled(g, rc.ADVANTAGES)  # (N,) present for train-hicra runs only
    if advantages is not None and mask is not None:
        credit = mean_by_class(advantages, _class_mask(g, rc.ADVANTAGES, advantages, mask))
        out[dc.ADVANTAGE_PLANNING], out[dc.ADVANTAGE_EXECUTION] = credit["planning"], credit["execution"]
    return out


def _pooled(g: pd.DataFrame, col: str, dtype=float) -> np.ndarray | None:
    """The step's token array ``col`` pooled over responses (N,), or None when the column is absent."""
    return pool(g[col].tolist(), dtype) if col in g.columns else None


def _class_mask(g: pd.DataFrame, col: str, values: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """The planning mask for the token array ``col`` (all False without one); raise if their lengths disagree."""
    if mask is None:
        return np.zeros(values.size, dtype=bool)  # only the "all" class is meaningful
    if values.size != mask.size:
        raise ReasonlensError(f"step {g[rc.STEP].iloc[0]}: '{col}' has {values.size} tokens but "
                              f"'{rc.PLANNING_MASK}' has {mask.size}: both must align with token_ids "
                              "(re-score the rollouts or recompute the mask).")
    return mask


def _text_metrics(g: pd.DataFrame, equivalent) -> dict:
    """Gram entropies, answer entropy and reflection rate from the tag columns (and the word planning ratio)."""
    out = {dc.SG_SEMANTIC_ENTROPY: sg_semantic_entropy(g[rc.GRAMS]),
           dc.SG_CONDITIONAL_ENTROPY: conditional_procedural_entropy(g[rc.GRAMS], g[rc.GRAM_NEXT]),
           dc.ANSWER_SEMANTIC_ENTROPY: answer_semantic_entropy(_answers_by_prompt(g), equivalent),
           dc.REFLECTION_RATE: float(g[rc.N_REFLECTIONS].mean())}
    if rc.PLANNING_MASK not in g.columns:
        words = int(g[rc.N_WORDS].sum())
        out[dc.PLANNING_RATIO] = int(g[rc.N_PLANNING_WORDS].sum()) / words if words else math.nan
    return out


def _answers_by_prompt(g: pd.DataFrame) -> list[list]:
    """Final answers grouped by prompt: PRED, else the last \\boxed{} of each response."""
    if rc.PRED in g.columns:
        preds = [None if pd.isna(p) else str(p) for p in g[rc.PRED]]
    else:
        from ..sources.answers import extract_boxed

        preds = [extract_boxed(str(t)) for t in g[rc.RESPONSE]]
    groups: dict = {}
    for key, pred in zip(g["_prompt"], preds):
        groups.setdefault(key, []).append(pred)
    return list(groups.values())
