"""Step lag of `analyze --watch`: seconds from a training step's rollout file landing to its scalars in TensorBoard.

A live run: `reasonlens train-hicra` (the demo's task and model, SmolLM2-135M, small batches) in one process and
`reasonlens analyze RUN --watch --report-to tensorboard` in another. This script polls both every 0.1 s: a step
lands when RUN/rollouts/step_N.parquet appears (its mtime: the trainer writes a temporary file and renames it),
and its scalars appear when TensorBoard's own reader (EventAccumulator) first returns reasonlens/accuracy at step N.
Baseline, same run: without --watch the scalars appear only once a one-shot `analyze --report-to tensorboard`
finishes after training; its lag per step is that moment minus the step's landing.

    OMP_NUM_THREADS=1 python benchmarks/watch_lag.py --steps 4 [--report] [--out /tmp/watch-lag]

Prints one line per event, then a JSON object as the last line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TASK = "basic_arithmetic:min_terms=2,max_terms=2,min_digits=1,max_digits=1,allow_parentheses=false,operators=+"


def _cli(*args) -> list[str]:
    return [sys.executable, "-m", "reasonlens.cli", *map(str, args)]


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
            "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def _train(run: Path, steps: int, log) -> subprocess.Popen:
    args = _cli("train-hicra", "--out", run, "--task", TASK, "--fewshot", "arithmetic-steps", "--temperature", 0.7,
                "--max-new-tokens", 24, "--num-generations", 2, "--prompts-per-step", 2, "--steps", steps,
                "--save-every", steps, "--threads", 1, "--report-to", "none")
    return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=_env(), cwd=ROOT)


def _scalar_steps(accumulator) -> set[int]:
    accumulator.Reload()
    try:
        return {e.step for e in accumulator.Tensors("reasonlens/accuracy")}
    except KeyError:
        return set()


def measure(run: Path, steps: int, report: bool) -> dict:
    """Run training and the watch side by side; return landing times, appearance times and the watch's exit."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logs = run.parent
    train = _train(run, steps, open(logs / "train.log", "w"))
    started = time.time()
    while not (run / "config.json").exists():
        if train.poll() is not None:
            raise SystemExit(f"train-hicra exited with {train.returncode}: see {logs / 'train.log'}")
        time.sleep(0.1)
    watch = subprocess.Popen(_cli("analyze", run, "--watch", "--watch-interval", 0.5, "--report-to", "tensorboard",
                                  *([] if report else ["--no-report"])),
                             stdout=subprocess.DEVNULL, stderr=open(logs / "watch.log", "w"), env=_env(), cwd=ROOT)
    tensorboard = run / "reasonlens" / "tensorboard"
    accumulator, landed, appeared = None, {}, {}
    deadline = time.time() + 3600
    while time.time() < deadline and (train.poll() is None or len(appeared) < steps):
        for file in (run / "rollouts").glob("step_*.parquet"):
            step = int(file.stem.split("_")[1])
            if step not in landed:
                landed[step] = file.stat().st_mtime
                print(f"step {step} landed at +{landed[step] - started:.1f} s", flush=True)
        if accumulator is None and tensorboard.is_dir():
            accumulator = EventAccumulator(str(tensorboard), size_guidance={"tensors": 0})
        if accumulator is not None:
            for step in _scalar_steps(accumulator) - set(appeared):
                appeared[step] = time.time()
                print(f"step {step} scalars in TensorBoard, lag {appeared[step] - landed.get(step, appeared[step]):.2f} s",
                      flush=True)
        if watch.poll() is not None:
            raise SystemExit(f"the watch exited early ({watch.returncode}): see {logs / 'watch.log'}")
        time.sleep(0.1)
    trained = time.time()
    watch.send_signal(signal.SIGINT)
    watch_rc = watch.wait(timeout=300)
    return {"landed": landed, "appeared": appeared, "train_rc": train.wait(), "watch_rc": watch_rc,
            "train_seconds": trained - started}


def baseline(run: Path, report: bool) -> tuple[float, float]:
    """A one-shot analyze with TensorBoard export after training: (its wall time, the moment it finished)."""
    start = time.time()
    subprocess.run(_cli("analyze", run, "--out", run / "reasonlens-oneshot", "--report-to", "tensorboard",
                        *([] if report else ["--no-report"])),
                   check=True, capture_output=True, env=_env(), cwd=ROOT)
    return time.time() - start, time.time()


def rerun_costs(run: Path) -> dict:
    """What a look with nothing new costs: one watch poll (list the steps, tell which are complete), and, for
    comparison, a whole `analyze()` rerun on the cached folder (imports warmed by a first call), with and
    without re-rendering the report."""
    sys.path.insert(0, str(ROOT))
    from reasonlens import AnalyzeConfig, analyze
    from reasonlens.analysis.watch import Settling, scan

    start = time.perf_counter()
    units, _ = scan(run, run / "reasonlens")
    Settling().complete(units, settle=30, atomic=True, now=0.0)
    costs = {"watch_poll_s": round(time.perf_counter() - start, 4)}
    for report in (True, False):
        config = AnalyzeConfig(path=run, out=run / "reasonlens-rerun", report=report)
        analyze(config, progress=False)
        start = time.perf_counter()
        analyze(config, progress=False)
        costs[f"analyze_rerun_{'with' if report else 'without'}_report_s"] = round(time.perf_counter() - start, 2)
    return costs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--report", action="store_true", help="also re-render figures and report.html per analysis")
    parser.add_argument("--out", type=Path, default=None, help="work folder (default: a temporary one, removed)")
    args = parser.parse_args()
    work = args.out or Path(tempfile.mkdtemp(prefix="watch-lag-"))
    run = work / "run"
    shutil.rmtree(run, ignore_errors=True)
    result = measure(run, args.steps, args.report)
    oneshot_s, finished = baseline(run, args.report)
    costs = rerun_costs(run)
    landed, appeared = result["landed"], result["appeared"]
    lags = {s: round(appeared[s] - landed[s], 2) for s in sorted(appeared) if s in landed}
    analysed = (run / "reasonlens" / "dynamics.csv").read_text().splitlines()[1:]
    out = {
        "benchmark": "watch_lag", "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                                              "no GPU", "steps": args.steps, "report": args.report,
        "lag_s": lags, "median_lag_s": round(statistics.median(lags.values()), 2), "max_lag_s": max(lags.values()),
        "baseline_oneshot_lag_s": {s: round(finished - landed[s], 2) for s in sorted(landed)},
        "baseline_oneshot_analyze_s": round(oneshot_s, 2), "train_seconds": round(result["train_seconds"], 1),
        "train_exit": result["train_rc"], "watch_exit": result["watch_rc"],
        "watch_summary_ok": (run / "reasonlens" / "summary.json").is_file(),
        "watch_analysed_steps": [int(line.split(",")[0]) for line in analysed], **costs,
    }
    if args.out is None:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
