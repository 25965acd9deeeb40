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

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np
import pandas as pd

from .. import columns as rc
from ..errors import ReasonlensError
from ..options import BOOTSTRAP, check_value
from ..sources.logs import parse_bool
from . import columns as dc
from .bootstrap import (bootstrap_step, gram_estimators, ratio_estimator, ratio_intervals, row_mean_stats,
                        pass_at_k_estimators, token_estimators)
from .entropy import cached_equivalence, cluster_pairs, prompt_answer_entropies
from .outcomes import mean_pass_at_k, powers_of_two_upto
from .token_stats import (high_entropy_mask, high_entropy_overlap, mean_by_class, perplexity_by_class, pool,
                          relative_to_first)

TAGGED = (rc.GRAMS, rc.GRAM_NEXT, rc.N_WORDS, rc.N_PLANNING_WORDS, rc.N_REFLECTIONS)
RELATIVE = {dc.REL_PPL_PLANNING: dc.PPL_PLANNING, dc.REL_PPL_EXECUTION: dc.PPL_EXECUTION,
            dc.SG_SEMANTIC_ENTROPY_CHANGE: dc.SG_SEMANTIC_ENTROPY}
NO_INTERVAL = (dc.STEP, dc.N_RESPONSES, dc.PASS_K, dc.LENGTH_UNIT)  # counts and labels: no interval
TOKEN_ARRAYS = (("mask", rc.PLANNING_MASK, bool), ("entropies", rc.ENTROPIES, float),
                ("logprobs", rc.LOGPROBS, float), ("advantages", rc.ADVANTAGES, float))


def dynamics_table(rollouts: pd.DataFrame, *, high_entropy_quantile: float = 0.3,
                   equivalent: Callable[[str, str], bool] | None = None, bootstrap: int = 0, seed: int = 0,
                   seconds: dict | None = None) -> pd.DataFrame:
    """Per-step metrics of a tagged rollout table (one row per response), with bootstrap intervals.

    Parameters
    ----------
    rollouts : DataFrame with ``step``, ``response`` and the tag columns (`hierarchy.tag.tag_rollouts`);
        optional ``prompt_id``, ``correct``, ``reward``, ``pred``, ``n_tokens``, ``truncated`` and the
        token arrays ``logprobs``, ``entropies``, ``planning_mask``, ``advantages`` (see reasonlens.columns).
    high_entropy_quantile : share of a step's tokens called high-entropy (paper: 0.3).
    equivalent : answer equivalence for answer-level semantic entropy (default: math-verify).
    bootstrap : replicates of the per-step prompt bootstrap (`metrics.bootstrap`); 0 = no intervals.
    seed : seed of the bootstrap.
    seconds : if given, ``seconds["bootstrap"]`` is increased by the bootstrap's wall time.

    Returns
    -------
    DataFrame, one row per step (ascending), columns ``metrics.columns.DYNAMICS_COLUMNS`` then
    ``pass_k``, ``pass_at_<k>`` for each power of 2, ``mean_reward``, ``length_unit``, ``ppl_all``
    (and ``advantage_*`` for training runs), then with ``bootstrap`` the ``<metric>_ci_low`` and
    ``<metric>_ci_high`` of every metric (95% percentile intervals; ratios carry the first step's noise).

    Example
    -------
    >>> dynamics_table(tag_rollouts(rollouts, "paper"), bootstrap=200)[["step", "accuracy_ci_low"]]  # doctest: +SKIP
    """
    _check_input(rollouts, high_entropy_quantile)
    check_value("bootstrap", bootstrap, BOOTSTRAP)
    equivalent = cached_equivalence(equivalent)  # one memo shared by all steps: answers repeat
    df = step_rows(rollouts)
    ks, pass_k = pass_grid(df.groupby([rc.STEP, "_prompt"]).size())
    results = (step_result(g, ks, pass_k, quantile=high_entropy_quantile, equivalent=equivalent,
                           bootstrap=bootstrap, seed=seed) for _, g in df.groupby(rc.STEP, sort=True))
    return dynamics_from_steps(results, bootstrap=bootstrap, seconds=seconds)


def pass_grid(sizes: pd.Series) -> tuple[list[int], int]:
    """(the k of every pass@k column, ``pass_k``) from the samples per (step, prompt) group of all steps."""
    return powers_of_two_upto(int(sizes.max())), powers_of_two_upto(int(sizes.mode().max()))[-1]


def dynamics_from_steps(results: Iterable["StepResult"], *, bootstrap: int = 0,
                        seconds: dict | None = None) -> pd.DataFrame:
    """The dynamics table from the `step_result` of each step, in step order (computed anywhere: a loop that
    streams steps passes them as they come; only the first step's replicates are kept, for the ratios)."""
    rows, first = [], None
    for result in results:
        first = first or result
        started = time.perf_counter()
        rows.append(result.row | ratio_intervals(result.replicates, first.replicates, RELATIVE,
                                                 min(result.n_prompts, first.n_prompts)))
        if seconds is not None:
            seconds["bootstrap"] = (seconds.get("bootstrap", 0.0) + result.bootstrap_seconds
                                    + time.perf_counter() - started)
    table = add_relative(pd.DataFrame(rows))
    if bootstrap:  # one schema: every metric has its interval columns, NaN where the data has no such metric
        missing = [f(c) for c in table.columns if c not in NO_INTERVAL for f in (dc.ci_low, dc.ci_high)
                   if not c.endswith(("_ci_low", "_ci_high")) and f(c) not in table]
        table = pd.concat([table, pd.DataFrame(math.nan, index=table.index, columns=missing)], axis=1)
    return table[_ordered(list(table.columns))]


def _ordered(columns: list[str]) -> list[str]:
    """DYNAMICS_COLUMNS, the other metrics, then the interval columns in the order of their metric."""
    intervals = {c for c in columns if c.endswith(("_ci_low", "_ci_high"))}
    values = dc.DYNAMICS_COLUMNS + [c for c in columns if c not in dc.DYNAMICS_COLUMNS and c not in intervals]
    return values + [f(c) for c in values for f in (dc.ci_low, dc.ci_high) if f(c) in intervals]


@dataclass
class StepResult:
    """One step's dynamics row (without ratios to a first step), its bootstrap replicates and their cost."""

    row: dict
    replicates: dict[str, np.ndarray] = field(default_factory=dict)  # {metric: (B,)}; {} without bootstrap
    bootstrap_seconds: float = 0.0
    n_prompts: int = 0


def step_result(g: pd.DataFrame, ks: list[int], pass_k: int, *, quantile: float, equivalent,
                bootstrap: int = 0, seed: int = 0) -> StepResult:
    """The metrics of one step's rows (with ``_prompt``/``_correct``) and, with ``bootstrap``, their intervals.

    A pure function of the step: a loop that streams steps calls it per step and keeps the first step's
    ``replicates`` to bootstrap the ratios (`bootstrap.ratio_intervals`).
    """
    keys, codes = prompt_codes(g["_prompt"])
    tokens = {name: _pooled(g, col, dtype) for name, col, dtype in TOKEN_ARRAYS}
    tokens["high"] = (high_entropy_mask(tokens["entropies"], quantile)  # (N,) True = high-entropy token
                      if tokens["entropies"] is not None and tokens["mask"] is not None else None)
    answer_entropies = prompt_answer_entropies(answers_by_prompt(g, codes, len(keys)), equivalent)
    # gram and (gram, next) counts per prompt: the point values are their entropies at weight 1 per prompt
    grams = gram_estimators(g[rc.GRAMS], g[rc.GRAM_NEXT], codes, len(keys))
    row = {dc.STEP: g[rc.STEP].iloc[0], **_outcomes(g, ks, pass_k), **_lengths(g),
           **_token_metrics(g, tokens, quantile), **_text_metrics(g, answer_entropies),
           **{name: float(f(np.ones((1, len(keys))))[0]) for name, f in grams.items()}}
    if not bootstrap:
        return StepResult(row)
    started = time.perf_counter()
    estimators = _estimators(g, codes, len(keys), tokens, ks, pass_k, answer_entropies) | grams
    boot = bootstrap_step(estimators, keys, bootstrap, seed)
    row |= {k: (math.nan if _isnan(row.get(k[:k.rindex("_ci_")])) else v) for k, v in boot.intervals.items()}
    return StepResult(row, boot.replicates, time.perf_counter() - started, len(keys))


def _isnan(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


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
    table = dynamics_table(rollouts, **kwargs)
    dropped = list(RELATIVE) + [f(c) for c in RELATIVE for f in (dc.ci_low, dc.ci_high) if f(c) in table]
    row = table.iloc[0].drop(dropped)
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


def step_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """``rows`` with the ``_prompt`` key and ``_correct`` value `step_result` reads."""
    return rows.assign(_prompt=prompt_key(rows), _correct=correctness(rows))


def answer_pairs(g: pd.DataFrame, codes: np.ndarray, n_prompts: int) -> set[tuple[str, str]]:
    """Every (representative, answer) pair the answer clustering of one step's rows may check for equivalence
    (`entropy.cluster_pairs` of each prompt's final answers; ``codes`` from `prompt_codes`): what to verdict
    once, ahead, for many steps."""
    return {pair for answers in answers_by_prompt(g, codes, n_prompts) for pair in cluster_pairs(answers)}


def prompt_codes(keys: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(the distinct prompt keys, sorted; each row's index among them) of a step's `prompt_key` values."""
    return np.unique(keys.to_numpy(dtype=str), return_inverse=True)


def prompt_key(df: pd.DataFrame) -> pd.Series:
    """Which prompt each row answers: PROMPT_ID, else the prompt text, else the row itself."""
    for col in (rc.PROMPT_ID, rc.PROMPT):
        if col in df.columns:
            return df[col].astype(str)
    return pd.Series(np.arange(len(df)).astype(str), index=df.index)


def correctness(df: pd.DataFrame) -> pd.Series:
    """1.0/0.0 per row from CORRECT (parsed strictly), else REWARD > 0.5; NaN where unknown."""
    if rc.CORRECT in df.columns:
        if pd.api.types.is_bool_dtype(df[rc.CORRECT]):  # graded here, or a clean log: nothing to parse
            return df[rc.CORRECT].astype(float)
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
    counts = known.groupby("_prompt")["_correct"].agg(["size", "sum"])  # (samples, correct) per prompt, by key
    groups = list(zip(counts["size"].tolist(), counts["sum"].astype(int).tolist()))
    passes = {dc.pass_at_column(k): mean_pass_at_k(groups, k) for k in ks}
    reward = pd.to_numeric(g[rc.REWARD], errors="coerce").mean() if rc.REWARD in g.columns else math.nan
    return {dc.N_RESPONSES: len(g), dc.ACCURACY: known["_correct"].mean() if len(known) else math.nan,
            dc.PASS_AT_1: passes[dc.pass_at_column(1)], dc.PASS_AT_K: passes[dc.pass_at_column(pass_k)],
            dc.PASS_K: pass_k, **passes, dc.MEAN_REWARD: float(reward)}


def _length_values(g: pd.DataFrame) -> tuple[pd.Series, str]:
    """Per-response length (tokens if known, else words) and its unit."""
    if rc.N_TOKENS in g.columns:
        return pd.to_numeric(g[rc.N_TOKENS], errors="coerce").astype(float), "tokens"
    if rc.TOKEN_IDS in g.columns:
        return g[rc.TOKEN_IDS].map(len).astype(float), "tokens"
    return g[rc.N_WORDS].astype(float), "words"


def _truncated(g: pd.DataFrame) -> pd.Series:
    """1.0/0.0/NaN per response: cut by the token limit."""
    return g[rc.TRUNCATED].map(_bool_or_nan).astype(float) if rc.TRUNCATED in g.columns else \
        pd.Series(math.nan, index=g.index)


def _lengths(g: pd.DataFrame) -> dict:
    """Mean length (tokens if known, else words) and truncation rate of one step."""
    lengths, unit = _length_values(g)
    return {dc.MEAN_LENGTH: float(lengths.mean()), dc.LENGTH_UNIT: unit,
            dc.TRUNCATION_RATE: float(_truncated(g).mean())}


def _token_metrics(g: pd.DataFrame, tokens: dict, quantile: float) -> dict:
    """Entropy, perplexity, planning ratio and high-entropy overlap from the pooled token arrays (NaN if absent)."""
    out = dict.fromkeys([c for c in dc.TOKEN_PROBABILITY_COLUMNS if c not in RELATIVE]
                        + [dc.PPL_ALL, dc.PLANNING_RATIO], math.nan)
    mask = tokens["mask"]  # (N,) True = planning token
    ent, logp = tokens["entropies"], tokens["logprobs"]  # (N,) each
    if mask is not None and mask.size:
        out[dc.PLANNING_RATIO] = float(mask.mean())
    if ent is not None:
        by_class = mean_by_class(ent, _class_mask(g, rc.ENTROPIES, ent, mask))
        out[dc.ENTROPY_ALL] = by_class["all"]
        if mask is not None:
            out[dc.ENTROPY_PLANNING], out[dc.ENTROPY_EXECUTION] = by_class["planning"], by_class["execution"]
            out.update(high_entropy_overlap(ent, mask, quantile, high=tokens["high"]))
    if logp is not None:
        ppl = perplexity_by_class(logp, _class_mask(g, rc.LOGPROBS, logp, mask))
        out[dc.PPL_ALL] = ppl["all"]
        if mask is not None:
            out[dc.PPL_PLANNING], out[dc.PPL_EXECUTION] = ppl["planning"], ppl["execution"]
    advantages = tokens["advantages"]  # (N,) present for train-hicra runs only
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


def _text_metrics(g: pd.DataFrame, answer_entropies: np.ndarray) -> dict:
    """Answer entropy (mean of the prompts') and reflection rate from the tag columns (and the word planning
    ratio); the gram entropies come from their per-prompt counts (`bootstrap.gram_estimators`)."""
    finite = answer_entropies[np.isfinite(answer_entropies)]
    out = {dc.ANSWER_SEMANTIC_ENTROPY: float(finite.mean()) if finite.size else math.nan,
           dc.REFLECTION_RATE: float(g[rc.N_REFLECTIONS].mean())}
    if rc.PLANNING_MASK not in g.columns:
        words = int(g[rc.N_WORDS].sum())
        out[dc.PLANNING_RATIO] = int(g[rc.N_PLANNING_WORDS].sum()) / words if words else math.nan
    return out


def answers_by_prompt(g: pd.DataFrame, codes: np.ndarray, n_prompts: int) -> list[list]:
    """Final answers grouped by prompt (``codes``: each row's prompt index): PRED, else the last \\boxed{}."""
    if rc.PRED in g.columns:
        preds = [None if pd.isna(p) else str(p) for p in g[rc.PRED]]
    else:
        from ..sources.answers import extract_boxed

        preds = [extract_boxed(str(t)) for t in g[rc.RESPONSE]]
    groups: list[list] = [[] for _ in range(n_prompts)]
    for code, pred in zip(codes, preds):
        groups[code].append(pred)
    return groups


def _estimators(g, codes, n_prompts, tokens, ks, pass_k, answer_entropies) -> dict:
    """Bootstrap estimators (`metrics.bootstrap`) of every metric of one step, from per-prompt statistics."""
    def mean(values):
        return ratio_estimator(*row_mean_stats(values, codes, n_prompts))

    successes, trials = row_mean_stats(g["_correct"], codes, n_prompts)
    out = {dc.ACCURACY: ratio_estimator(successes, trials), **pass_at_k_estimators(successes, trials, ks),
           dc.MEAN_LENGTH: mean(_length_values(g)[0]), dc.TRUNCATION_RATE: mean(_truncated(g)),
           dc.REFLECTION_RATE: mean(g[rc.N_REFLECTIONS]),
           dc.ANSWER_SEMANTIC_ENTROPY: ratio_estimator(np.nan_to_num(answer_entropies),
                                                       np.isfinite(answer_entropies).astype(float))}
    out[dc.PASS_AT_K] = out[dc.pass_at_column(pass_k)]
    if rc.REWARD in g.columns:
        out[dc.MEAN_REWARD] = mean(pd.to_numeric(g[rc.REWARD], errors="coerce"))
    if tokens["mask"] is None:
        out[dc.PLANNING_RATIO] = ratio_estimator(*[row_mean_stats(g[c], codes, n_prompts)[0]
                                                   for c in (rc.N_PLANNING_WORDS, rc.N_WORDS)])
    pooled = {name: (tokens[name], g[col].map(len).to_numpy()) if tokens[name] is not None else None
              for name, col, _ in TOKEN_ARRAYS}
    return out | token_estimators(pooled, codes, n_prompts, tokens["high"])
