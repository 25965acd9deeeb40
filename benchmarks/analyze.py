"""Where the time of one `analyze` goes, per checkpoint: load, generation, scoring, grading, tagging,
metrics, writing, report (the ``stage_seconds`` every summary.json records).

Run: HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/analyze.py [--quick] [--threads N]
On the bundled SmolLM2-135M-Instruct (gsm_symbolic; default 8 prompts x 4 samples x 128 new tokens,
--quick 4 x 2 x 64), a fresh output folder each run. The baseline the others are measured against is
generation itself: ``other_share`` = share of the wall time that is not generation (target <= 0.25).
Last line: JSON.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    prompts, samples, tokens = (4, 2, 64) if args.quick else (8, 4, 128)

    from reasonlens.analysis.config import AnalyzeConfig
    from reasonlens.analysis.run import analyze

    with tempfile.TemporaryDirectory() as tmp:
        config = AnalyzeConfig(path="smollm2", out=Path(tmp) / "out", task="gsm_symbolic", num_prompts=prompts,
                               samples=samples, max_new_tokens=tokens, threads=args.threads)
        summary = analyze(config, progress=False).summary
    stages = summary["stage_seconds"]
    wall = summary["seconds"]
    other = wall - stages.get("generate", 0.0)
    for stage, seconds in sorted(stages.items(), key=lambda kv: -kv[1]):
        print(f"{stage:>9}: {seconds:7.2f} s ({seconds / wall:5.1%})")
    print(json.dumps({"wall_s": wall, "stage_seconds": stages, "unaccounted_s": round(wall - sum(stages.values()), 2),
                      "generate_share": round(stages.get("generate", 0.0) / wall, 3),
                      "other_share": round(other / wall, 3), "responses": summary["n_responses"],
                      "tokens_scored": summary["tokens_scored"], "runtime": summary["runtime"],
                      "settings": {"prompts": prompts, "samples": samples, "max_new_tokens": tokens}}))


if __name__ == "__main__":
    main()
