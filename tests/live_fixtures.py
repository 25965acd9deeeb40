"""A fake `train-hicra` run folder that grows step by step (tokens, logprobs and entropies logged, no model)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from reasonlens.records import step_file, write_parquet

RESPONSES = ["Let's break down the problem. First add 3 and 4 to get 7. \\boxed{7}",
             "But wait, let me check again: 3 + 4 = 7. \\boxed{7}",
             "It is 8. \\boxed{8}",
             "Alternatively, we can count up from 3: 4, 5, 6, 7. \\boxed{7}"]


def step_rollouts(step: int) -> pd.DataFrame:
    """Four responses to two prompts; one token per word, entropies that fall with the step."""
    rows = []
    for i, text in enumerate(RESPONSES):
        starts = [0] + [k + 1 for k, ch in enumerate(text) if ch == " "]
        offsets = [[s, text.find(" ", s) if text.find(" ", s) != -1 else len(text)] for s in starts]
        n = len(offsets)
        entropies = np.linspace(2.0, 0.1, n) / (1 + step) + 0.01 * i  # (n,) nats
        rows.append({"step": step, "prompt_id": f"p{i // 2}", "sample_id": i % 2, "prompt": f"What is 3 + {4 + i // 2}?",
                     "response": text, "answer": "7", "correct": text.endswith("{7}"), "reward": float(text.endswith("{7}")),
                     "token_ids": list(range(n)), "token_offsets": offsets, "n_tokens": n, "truncated": False,
                     "logprobs": (-entropies / 2).astype("float32"), "entropies": entropies.astype("float32")})
    return pd.DataFrame(rows)


def start_run(root: Path) -> Path:
    """RUN/config.json as train-hicra writes it (the fields analyze reads)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.json").write_text(json.dumps({"config": {"model": "smollm2", "seed": 0},
                                                  "lexicon": {"name": "paper", "hash": "none", "tag_version": -1}}))
    return root


def add_step(root: Path, step: int) -> Path:
    """Write RUN/rollouts/step_N.parquet atomically, as the trainer does."""
    return write_parquet(step_file(root, step), step_rollouts(step))
