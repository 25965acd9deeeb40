"""Synthetic analysis folders for the report tests (no model, no other reasonlens stage needed)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

STEPS = [0, 10, 20, 30, 40, 50, 60, 70]
TOKEN_METRICS = ["entropy_all", "entropy_planning", "entropy_execution", "ppl_planning", "ppl_execution",
                 "rel_ppl_planning", "rel_ppl_execution", "p_high_given_planning", "p_planning_given_high"]
PLANNING_WORDS = {"but", "wait", "let's", "try", "a", "different", "approach"}
RESPONSES = [
    "First add 3 and 4 to get 7. But wait, let's try a different approach: 3 + 4 = 7. \\boxed{7}",
    "We compute 12 * 3 = 36 <b>bold</b> & so on. \\boxed{36}",
    "The answer is \\boxed{5}",
]
PHASES = {
    "consolidation": {"detected": True, "step": 30, "reason": None,
                      "evidence": {"curve": "rel_ppl_execution", "change_point": 30,
                                   "slope_before": -0.0133, "slope_after": -0.001}},
    "exploration": {"detected": False, "step": None, "evidence": {},
                    "reason": "sg_semantic_entropy shows no sustained rise (noise-level slope)"},
}


def dynamics_frame(text_only: bool = False) -> pd.DataFrame:
    """Execution RelPPL falls until step 30 then flattens; grams diversify; accuracy and length rise."""
    rows = []
    for i, step in enumerate(STEPS):
        fall = min(step, 30) / 30
        rows.append({
            "step": step, "n_responses": len(RESPONSES), "length_unit": "tokens", "accuracy": 0.2 + 0.08 * i, "pass_at_1": 0.2 + 0.08 * i,
            "pass_at_k": 0.4 + 0.06 * i, "pass_at_4": 0.4 + 0.06 * i, "mean_length": 120 + 2 * i * i,
            "truncation_rate": 0.0, "planning_ratio": 0.05 + 0.005 * i,
            "entropy_all": 0.9 - 0.3 * fall, "entropy_planning": 1.6 - 0.1 * fall,
            "entropy_execution": 0.8 - 0.35 * fall, "ppl_planning": 2.1 - 0.1 * fall,
            "ppl_execution": 1.3 - 0.5 * fall, "rel_ppl_planning": 1 - 0.05 * fall,
            "rel_ppl_execution": 1 - 0.38 * fall, "sg_semantic_entropy": 2.0 + 0.1 * max(0, step - 30) / 10,
            "sg_semantic_entropy_change": 1 + 0.05 * max(0, step - 30) / 10, "sg_conditional_entropy": 1.1,
            "answer_semantic_entropy": 0.7 - 0.05 * i, "p_high_given_planning": 0.6 + 0.02 * i,
            "p_planning_given_high": 0.08, "reflection_rate": 0.3 + 0.05 * i,
        })
    frame = pd.DataFrame(rows)
    if text_only:
        frame[TOKEN_METRICS] = math.nan
    return frame


def _tokens(text: str) -> list[str]:
    """Split into word and space pieces so that ''.join(tokens) == text."""
    pieces, word = [], ""
    for ch in text:
        if ch == " ":
            pieces += [word, " "] if word else [" "]
            word = ""
        else:
            word += ch
    return pieces + ([word] if word else [])


def rollouts_frame(text_only: bool = False, with_token_texts: bool = True) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for step in STEPS:
        for s, text in enumerate(RESPONSES):
            row = {"step": step, "checkpoint": f"checkpoint-{step}", "prompt_id": "p0", "sample_id": s,
                   "prompt": "What is 3 + 4?", "response": text, "answer": "7", "pred": None,
                   "reward": float(s == 0), "correct": s == 0}
            if not text_only:
                toks = _tokens(text)
                row.update({"token_ids": list(range(len(toks))), "n_tokens": len(toks), "truncated": False,
                            "entropies": rng.uniform(0, 2, len(toks)).round(3).tolist(),
                            "logprobs": (-rng.uniform(0, 2, len(toks))).round(3).tolist(),
                            "planning_mask": [t.strip(",.:").lower() in PLANNING_WORDS for t in toks]})
                if with_token_texts:
                    row["token_texts"] = toks
            rows.append(row)
    return pd.DataFrame(rows)


def top_grams_frame() -> pd.DataFrame:
    grams = ["but wait", "let's try a different approach", "so", "we can use the fact that"]
    return pd.DataFrame([{"step": st, "gram": g, "count": (i + 1) * (1 + j % 3)}
                         for i, st in enumerate(STEPS) for j, g in enumerate(grams)])


def summary_dict(text_only: bool = False) -> dict:
    return {
        "config": {"checkpoints": "/runs/grpo-smollm2", "model": "smollm2", "task": "gsm_symbolic",
                   "n_prompts": 1, "samples": 3, "temperature": 1.0, "max_new_tokens": 256, "seed": 0,
                   "lexicon": "paper", "text_only": text_only},
        "provenance": {"reasonlens_version": "0.1.0", "git_hash": "abc1234", "date": "2026-11-27T15:00:00+00:00"},
        "lexicon": {"name": "paper", "hash": "3f2a9c1d"},
        "phases": PHASES,
        "skipped": [],
    }


def make_analysis_dir(root: Path, *, text_only: bool = False, csv: bool = False) -> Path:
    """Write dynamics.{parquet|csv}, rollouts.parquet, summary.json into ``root`` and return it."""
    root.mkdir(parents=True, exist_ok=True)
    dynamics = dynamics_frame(text_only)
    if csv:
        dynamics.to_csv(root / "dynamics.csv", index=False)
    else:
        dynamics.to_parquet(root / "dynamics.parquet", index=False)
    rollouts_frame(text_only).to_parquet(root / "rollouts.parquet", index=False)
    (root / "summary.json").write_text(json.dumps(summary_dict(text_only), indent=2))
    return root
