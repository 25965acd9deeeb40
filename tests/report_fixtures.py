"""Analysis folders for the report tests, built by the real producers: the tag stage tags the rollouts,
`detect_phases` finds the phases of a planted dynamics curve, and the summary has `Summary`'s keys."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pandas as pd

from reasonlens import columns as C
from reasonlens.analysis.config import AnalyzeConfig
from reasonlens.hierarchy.lexicon import load_lexicon, write_lexicon
from reasonlens.hierarchy.tag import tag_rollouts
from reasonlens.metrics import columns as dc
from reasonlens.metrics.dynamics import top_grams
from reasonlens.metrics.phases import detect_phases
from reasonlens.records import provenance, write_json

STEPS = [0, 10, 20, 30, 40, 50, 60, 70]
LEXICON = load_lexicon(["but wait", "let's try a different approach", "so", "first"])
RESPONSES = [
    "First add 3 and 4 to get 7. But wait, let's try a different approach: 3 + 4 = 7. \\boxed{7}",
    "We compute 12 * 3 = 36 <b>bold</b> & so on. \\boxed{36}",
    "The answer is \\boxed{5}",
]


def dynamics_frame(text_only: bool = False) -> pd.DataFrame:
    """Execution RelPPL falls until step 30 then flattens; grams diversify; accuracy and length rise."""
    rows = []
    for i, step in enumerate(STEPS):
        fall = min(step, 30) / 30
        rows.append({
            dc.STEP: step, dc.N_RESPONSES: len(RESPONSES), dc.LENGTH_UNIT: "tokens", dc.ACCURACY: 0.2 + 0.08 * i,
            dc.PASS_AT_1: 0.2 + 0.08 * i, dc.PASS_AT_K: 0.4 + 0.06 * i, dc.PASS_K: 4, "pass_at_4": 0.4 + 0.06 * i,
            dc.MEAN_LENGTH: 120 + 2 * i * i, dc.TRUNCATION_RATE: 0.0, dc.PLANNING_RATIO: 0.05 + 0.005 * i,
            dc.ENTROPY_ALL: 0.9 - 0.3 * fall, dc.ENTROPY_PLANNING: 1.6 - 0.1 * fall,
            dc.ENTROPY_EXECUTION: 0.8 - 0.35 * fall, dc.PPL_PLANNING: 2.1 - 0.1 * fall,
            dc.PPL_EXECUTION: 1.3 - 0.5 * fall, dc.REL_PPL_PLANNING: 1 - 0.05 * fall,
            dc.REL_PPL_EXECUTION: 1 - 0.38 * fall, dc.SG_SEMANTIC_ENTROPY: 2.0,
            dc.SG_SEMANTIC_ENTROPY_CHANGE: 1.0, dc.SG_CONDITIONAL_ENTROPY: 1.1,
            dc.ANSWER_SEMANTIC_ENTROPY: 0.7 - 0.05 * i, dc.P_HIGH_GIVEN_PLANNING: 0.6 + 0.02 * i,
            dc.P_PLANNING_GIVEN_HIGH: 0.08, dc.REFLECTION_RATE: 0.3 + 0.05 * i,
        })
    frame = pd.DataFrame(rows)
    if text_only:
        frame[dc.TOKEN_PROBABILITY_COLUMNS] = math.nan
    return frame[dc.DYNAMICS_COLUMNS + [c for c in frame.columns if c not in dc.DYNAMICS_COLUMNS]]


PHASES = detect_phases(dynamics_frame())  # consolidation ends at 30; the flat SG entropy gives no exploration


def _offsets(text: str) -> list[list[int]]:
    """Word and space pieces that tile ``text``: the token spans of a whitespace tokenizer."""
    spans, start = [], 0
    for i in range(1, len(text) + 1):
        if i == len(text) or (text[i] == " ") != (text[i - 1] == " "):
            spans.append([start, i])
            start = i
    return spans


def rollouts_frame(text_only: bool = False) -> pd.DataFrame:
    """The tagged rollout table: 3 responses per step, the first one correct."""
    rng = np.random.default_rng(0)
    rows = []
    for step in STEPS:
        for s, text in enumerate(RESPONSES):
            row = {C.STEP: step, C.CHECKPOINT: f"checkpoint-{step}", C.PROMPT_ID: "p0", C.SAMPLE_ID: s,
                   C.PROMPT: "What is 3 + 4?", C.RESPONSE: text, C.ANSWER: "7", C.PRED: None,
                   C.REWARD: float(s == 0), C.CORRECT: s == 0}
            if not text_only:
                offsets = _offsets(text)
                row.update({C.TOKEN_IDS: list(range(len(offsets))), C.N_TOKENS: len(offsets), C.TRUNCATED: False,
                            C.TOKEN_OFFSETS: offsets, C.ENTROPIES: rng.uniform(0, 2, len(offsets)).round(3).tolist(),
                            C.LOGPROBS: (-rng.uniform(0, 2, len(offsets))).round(3).tolist()})
            rows.append(row)
    return tag_rollouts(pd.DataFrame(rows), LEXICON)


def top_grams_frame() -> pd.DataFrame:
    grams = ["but wait", "let's try a different approach", "so", "we can use the fact that"]
    return pd.DataFrame([{"step": st, "gram": g, "count": (i + 1) * (1 + j % 3)}
                         for i, st in enumerate(STEPS) for j, g in enumerate(grams)])


def summary_dict(text_only: bool = False, root: Path = Path("/runs/grpo-smollm2")) -> dict:
    """A summary.json with every key of `analysis.run.Summary`, as analyze writes it."""
    config = AnalyzeConfig(rollouts=root / "log.jsonl") if text_only else AnalyzeConfig(path=root, samples=3)
    return {"mode": "text-only" if text_only else "checkpoints", "config": dataclasses.asdict(config),
            "out": str(root / "reasonlens"), "provenance": provenance(),
            "runtime": None if text_only else {"device": "cpu", "dtype": "fp32", "threads": 2},
            "lexicon": {"name": LEXICON.name, "hash": LEXICON.hash, "size": len(LEXICON), "file": "lexicon.txt"},
            "tag_version": 1, "tokenizer": None, "problems": None if text_only else
            {"task": "gsm_symbolic", "prompts_file": None, "seed": 0, "n": 1, "held_out_of_run_seed": None},
            "checkpoints": [], "skipped": [], "run_config": None, "graded": None, "step_checkpoints": None,
            "phases": PHASES, "n_responses": len(STEPS) * len(RESPONSES), "tokens_scored": 0, "seconds": 1.0,
            "stage_seconds": {"plan": 0.1, "metrics": 0.2, "write": 0.3}, "peak_rss_mb": 100.0}


def make_analysis_dir(root: Path, *, text_only: bool = False, csv: bool = False) -> Path:
    """Write dynamics.{parquet|csv}, rollouts.parquet, lexicon.txt and summary.json into ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    dynamics = dynamics_frame(text_only)
    if csv:
        dynamics.to_csv(root / "dynamics.csv", index=False)
    else:
        dynamics.to_parquet(root / "dynamics.parquet", index=False)
    rollouts_frame(text_only).to_parquet(root / "rollouts.parquet", index=False)
    write_lexicon(root / "lexicon.txt", LEXICON)
    write_json(root / "summary.json", summary_dict(text_only))
    return root


def analysis_top_grams() -> pd.DataFrame:
    """The top-grams table of the fixture's rollouts (the tagged ``grams`` column)."""
    return top_grams(rollouts_frame())
