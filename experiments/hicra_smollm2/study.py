"""GRPO vs HICRA vs entropy top-k on SmolLM2-135M-Instruct, with seeds, confidence intervals and an
alpha sweep, on a CPU, in one command: train, evaluate on held-out problems, compare, summarise.

Run:   make experiment            (= .venv/bin/python experiments/hicra_smollm2/study.py)
       ... study.py --smoke       (a 2-step study on a tiny model folder: checks the machinery)
Every run is resumable: a killed study continues where it stopped when run again (finished runs
and evaluations are reused). Runs go two at a time with one torch thread each (2-core machine).
Outputs: the runs in ``runs/study/`` (not committed); ``results.csv``, ``training.csv``,
``summary.csv``, ``figures/`` and ``RESULTS.md`` next to this file.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
BIN = Path(sys.executable).parent

# The learnable setup (why: RESULTS.md, "Setup"). Every knob of the study is here and in each run's config.json.
SETUP = {
    "model": "smollm2",
    "task": "basic_arithmetic:min_terms=2,max_terms=2,min_digits=1,max_digits=1,allow_parentheses=false,operators=+",
    "fewshot": "arithmetic-steps", "steps": 24, "save_every": 12, "prompts_per_step": 2, "num_generations": 4,
    "max_new_tokens": 40, "temperature": 0.7, "lr": 1e-5, "num_prompts": 64, "format_reward": 0.0, "dtype": "fp32",
}
EVAL = {"eval_task": SETUP["task"], "num_prompts": 32, "samples": 4, "max_new_tokens": 40, "temperature": 0.6}
SEEDS = (0, 1, 2)
SWEEP_SEEDS = (0, 1)


def runs() -> list[dict]:
    """GRPO, HICRA (alpha 0.2) and entropy top-k with every seed; the alpha sweep adds 0.1 and 0.4
    (alpha 0 is GRPO and 0.2 is HICRA, so the sweep reuses those runs)."""
    out = [{"method": m, "alpha": a, "seed": s} for m, a in (("grpo", 0.0), ("hicra", 0.2), ("entropy-topk", 0.0))
           for s in SEEDS]
    out += [{"method": "hicra", "alpha": a, "seed": s} for a in (0.1, 0.4) for s in SWEEP_SEEDS]
    for run in out:
        run["name"] = f"{run['method']}-a{run['alpha']:g}-s{run['seed']}" if run["method"] == "hicra" else \
            f"{run['method']}-s{run['seed']}"
    return out


def _option(name: str, value) -> list[str]:
    return [f"--{name.replace('_', '-')}", str(value)]


def train(run: dict, folder: Path, setup: dict) -> None:
    """train-hicra for one run, resuming it when a previous study was killed (a no-op when finished)."""
    args = [str(BIN / "reasonlens"), "train-hicra", "--out", str(folder), "--method", run["method"],
            "--alpha", str(run["alpha"]), "--seed", str(run["seed"]), "--threads", "1", "--report-to", "none"]
    for name, value in setup.items():
        args += _option(name, value)
    if (folder / "config.json").exists():
        args.append("--resume")
    _run(args, folder.parent / f"{folder.name}.train.log")


def evaluate(folder: Path, setup: dict, evaluation: dict) -> Path:
    """analyze RUN --eval-task: the base model and every checkpoint on problems the run never saw."""
    out = folder / "reasonlens-eval"
    args = [str(BIN / "reasonlens"), "analyze", str(folder), "--out", str(out), "--threads", "1", "--no-report"]
    for name, value in {**evaluation, "dtype": setup["dtype"]}.items():
        args += _option(name, value)
    _run(args, folder.parent / f"{folder.name}.eval.log")
    return out


def _run(args: list[str], log: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    with log.open("a") as sink:
        sink.write(f"\n$ {' '.join(args)}\n")
        sink.flush()
        done = subprocess.run(args, stdout=sink, stderr=subprocess.STDOUT, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"failed ({done.returncode}): {' '.join(args)}; see {log}")


def share_base_steps(groups: list[list[Path]]) -> None:
    """The base model's evaluation is the same for every run of a seed (same problems, same weights, same
    settings: the same cache key), so the first run's step file is copied into the other runs of its seed."""
    for first, *others in groups:
        for table in (first / "reasonlens-eval" / "rollouts").glob("step_000000.*"):
            for other in others:
                target = other / "reasonlens-eval" / "rollouts" / table.name
                if not target.exists():
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(table, target)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=ROOT / "runs" / "study", help="where the runs go")
    parser.add_argument("--results", type=Path, default=HERE, help="where results.csv etc. go")
    parser.add_argument("--smoke", type=Path, default=None, metavar="MODEL",
                        help="a 2-step study of this (tiny) model folder: checks the machinery in seconds")
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time (one torch thread each)")
    args = parser.parse_args()
    setup, evaluation, plan = dict(SETUP), dict(EVAL), runs()
    if args.smoke is not None:
        setup |= {"model": str(args.smoke), "steps": 2, "save_every": 1, "prompts_per_step": 2, "num_generations": 2,
                  "max_new_tokens": 8, "num_prompts": 4, "lr": 1e-2}
        evaluation |= {"num_prompts": 2, "samples": 2, "max_new_tokens": 8}
        plan = [r for r in plan if r["seed"] in (0, 1) and r["alpha"] in (0.0, 0.2)]
    args.root.mkdir(parents=True, exist_ok=True)
    started = time.time()

    def one(run: dict) -> Path:
        folder = args.root / run["name"]
        train(run, folder, setup)
        return evaluate(folder, setup, evaluation)

    by_seed: dict[int, list[dict]] = {}
    for run in plan:
        by_seed.setdefault(run["seed"], []).append(run)
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        # the first run of each seed computes its base-model step, which the other runs of the seed then reuse
        firsts = list(pool.map(one, [group[0] for group in by_seed.values()]))
        share_base_steps([[first.parent] + [args.root / r["name"] for r in group[1:]]
                          for first, group in zip(firsts, by_seed.values())])
        list(pool.map(one, [r for group in by_seed.values() for r in group[1:]]))
    from summarise import summarise  # noqa: E402 - next to this file

    wall = time.time() - started
    summarise(args.root, plan, args.results, setup=setup, evaluation=evaluation, wall_s=wall)
    print(json.dumps({"runs": len(plan), "wall_s": round(wall, 1), "results": str(args.results)}))


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    main()
