"""Cost of the per-step prompt bootstrap inside the metrics stage (`dynamics_table`), on a tagged table.

Run: OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bootstrap.py [STEPS] [PROMPTS] [SAMPLES] [REPLICATES] [REPEATS]
Synthetic GSM-style responses (benchmarks/_corpus.py) tagged with the paper lexicon, with token arrays
(entropies, logprobs, planning mask) of ~1.3 tokens a word and answers graded by math-verify, as
`analyze` sees them. The baseline is the same table with ``bootstrap=0``, timed in the same run;
``share`` = bootstrap seconds / metrics seconds with the bootstrap (the issue's bound: <= 0.20).
Last line: JSON.
"""

from __future__ import annotations

import json
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from _corpus import reasoning_responses  # noqa: E402

from reasonlens import columns as C  # noqa: E402
from reasonlens.hierarchy.lexicon import load_lexicon  # noqa: E402
from reasonlens.hierarchy.tag import tag_rollouts  # noqa: E402
from reasonlens.metrics.dynamics import dynamics_table  # noqa: E402


def rollout_table(steps: int, prompts: int, samples: int, seed: int = 0) -> pd.DataFrame:
    """A tagged rollout table with token arrays: steps x prompts x samples responses."""
    rng = np.random.default_rng(seed)
    n = steps * prompts * samples
    texts = reasoning_responses(n, seed=seed)
    table = pd.DataFrame({C.STEP: np.repeat(np.arange(steps), prompts * samples),
                          C.PROMPT_ID: np.tile(np.repeat([f"q{i}" for i in range(prompts)], samples), steps),
                          C.RESPONSE: texts, C.CORRECT: rng.random(n) < 0.6,
                          C.PRED: [str(v) for v in rng.integers(0, 4, n)]})
    tagged = tag_rollouts(table, load_lexicon("paper"))
    lengths = (tagged[C.N_WORDS] * 1.3).astype(int).clip(lower=1)
    tagged[C.ENTROPIES] = [rng.gamma(1.0, 0.8, t) for t in lengths]
    tagged[C.LOGPROBS] = [-rng.gamma(1.0, 0.5, t) for t in lengths]
    tagged[C.PLANNING_MASK] = [rng.random(t) < 0.1 for t in lengths]
    tagged[C.N_TOKENS] = lengths
    return tagged


def main(steps: int = 8, prompts: int = 32, samples: int = 8, replicates: int = 200, repeats: int = 5) -> dict:
    table = rollout_table(steps, prompts, samples)
    dynamics_table(table.head(samples), bootstrap=2)  # warm-up: imports, math-verify's first call
    baseline, total, boot = math.inf, math.inf, math.inf
    for _ in range(repeats):  # shared machine: the fastest of a few runs
        start = time.perf_counter()
        dynamics_table(table, bootstrap=0)
        baseline = min(baseline, time.perf_counter() - start)
        seconds: dict = {}
        start = time.perf_counter()
        dynamics_table(table, bootstrap=replicates, seed=0, seconds=seconds)
        if time.perf_counter() - start < total:
            total, boot = time.perf_counter() - start, seconds["bootstrap"]
    return {"steps": steps, "prompts": prompts, "samples": samples, "replicates": replicates,
            "responses": len(table), "tokens": int(table[C.N_TOKENS].sum()),
            "metrics_s_without_bootstrap": round(baseline, 3), "metrics_s_with_bootstrap": round(total, 3),
            "bootstrap_s": round(boot, 3), "share": round(boot / total, 3), "repeats": repeats,
            "machine": f"{platform.processor() or platform.machine()}, 1 thread"}


if __name__ == "__main__":
    print(json.dumps(main(*map(int, sys.argv[1:]))))
