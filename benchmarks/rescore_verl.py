"""A verl run's leftovers re-scored end to end: rollout dumps plus global_step_N checkpoints, no generation.

Run: HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/rescore_verl.py RUN [--out DIR]
RUN is a `train-hicra` run. Its logged rollouts are written as verl writes them (``{step}.jsonl`` with
input = the chat-templated prompt text, output, gts, score, step; no token ids, no logprobs), its
checkpoints as verl's ``global_step_N/actor/huggingface`` folders (links, no copies), and then
``reasonlens analyze SERIES --rollouts DUMP --base MODEL`` scores every logged step with its checkpoint
(the nearest earlier one where a step has none of its own). The baseline in the same run: the run's own
logged token statistics, which the re-scored ones must reproduce where a step's checkpoint is the one
that sampled it. Last line: JSON (wall time, per-step perplexity by class, agreement with the logs).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def verl_layout(run: Path, root: Path) -> tuple[Path, Path, str]:
    """(dump folder, checkpoint series) in verl's layout, from a train-hicra run."""
    from reasonlens.models.loading import load_tokenizer

    config = json.loads((run / "config.json").read_text())["config"]
    tokenizer = load_tokenizer(config["model"])
    dump, series = root / "rollout_data", root / "checkpoints"
    dump.mkdir(parents=True)
    for table in sorted((run / "rollouts").glob("step_*.parquet")):
        frame = pd.read_parquet(table)
        rows = [{"input": tokenizer.decode(list(r.prompt_token_ids)), "output": r.response, "gts": r.answer,
                 "score": float(r.reward), "step": int(r.step)} for r in frame.itertuples()]
        (dump / f"{int(frame['step'].iloc[0])}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    for folder in sorted((run / "checkpoints").glob("step_*")):
        target = series / f"global_step_{folder.name.split('_')[1]}" / "actor" / "huggingface"
        target.mkdir(parents=True)
        for item in folder.iterdir():
            os.symlink(item.resolve(), target / item.name)
    return dump, series, config["model"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    from reasonlens.analysis.config import AnalyzeConfig
    from reasonlens.analysis.run import analyze

    with tempfile.TemporaryDirectory() as tmp:
        dump, series, model = verl_layout(args.run, Path(tmp))
        temperature = json.loads((args.run / "config.json").read_text())["config"]["temperature"]
        start = time.perf_counter()
        # score at the run's sampling temperature: the temperature its logged logprobs were taken at
        analysis = analyze(AnalyzeConfig(path=series, rollouts=dump, base=model, out=args.out or Path(tmp) / "out",
                                         dtype="fp32", threads=args.threads, report=args.out is not None,
                                         score_temperature=temperature), progress=False)
        wall = time.perf_counter() - start
    logged = pd.concat([pd.read_parquet(p) for p in sorted((args.run / "rollouts").glob("step_*.parquet"))])
    used = {e["step"]: e for e in analysis.summary["step_checkpoints"] if "checkpoint_step" in e}
    # a step's rollouts were sampled by the weights before it: checkpoint step - 1 (base = 0 for step 1)
    same = [s for s, e in used.items() if e["checkpoint_step"] == s - 1]
    agree = None
    if same:
        # verl dumps carry no ids: rows are matched by step, gold answer and response text (repeats in order)
        key = ["step", "answer", "response"]
        ours, theirs = (frame[frame["step"].isin(same)].assign(nth=lambda f: f.groupby(key).cumcount())
                        for frame in (analysis.rollouts, logged))
        pairs = ours.merge(theirs, on=key + ["nth"], suffixes=("_ours", "_logged"), validate="one_to_one")
        if len(pairs) == len(ours) == len(theirs):
            agree = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b)))) if len(a) == len(b) else math.inf
                        for a, b in zip(pairs["logprobs_ours"], pairs["logprobs_logged"]))
    table = analysis.dynamics[["step", "ppl_planning", "ppl_execution", "entropy_planning", "entropy_execution",
                               "accuracy"]]
    print(table.to_string(index=False))
    print(json.dumps({"wall_s": round(wall, 1), "steps": len(table), "responses": len(analysis.rollouts),
                      "step_checkpoints": {s: e["checkpoint"] for s, e in used.items()},
                      "max_abs_logprob_diff_vs_logged": agree, "steps_compared": same,
                      "dynamics": table.round(4).to_dict("records")}))


if __name__ == "__main__":
    main()
