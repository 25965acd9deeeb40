"""Grading a log's answers: the math-verify route before issue 18 against `grade_pairs`, same run, fresh processes.

Run: OMP_NUM_THREADS=1 .venv/bin/python benchmarks/grading.py [--dump DIR] [--repeats 3]

Input: a verl rollout dump (``DIR/*.jsonl`` with ``step``, ``input``, ``output`` and ``gts``; default
/tmp/rl_dumps/champ_80000, written by benchmarks/text_scale.py) or, where there is none, the CHAMP
transcripts themselves (`_corpus.champ_transcripts`, the same records). pred = `extract_boxed(output)`.
Workloads:
  grading               - the distinct (gold, pred) pairs (`sources.grading.answer_keys`: gold = ``gts``
                          through `sources.tasks.final_answer`), in the order analyze checks them (first
                          appearance in the log).
  grading_integer_pairs - the pairs among those with a plain integer on both sides (the fast path's share).
  entropy               - answer-cluster entropy of every (step, prompt) group's preds (pred vs pred,
                          `metrics.entropy.prompt_answer_entropies` with `cached_equivalence`), as analyze does.
Routes, each workload in a fresh spawned process (empty caches; imports and math-verify's LaTeX parser
warmed on a pair outside the log before the clock starts), alternating, ``--repeats`` times, median wall
and CPU seconds (time.process_time: on a shared machine the steadier of the two; the speedup is in CPU time,
with ours floored at 1 ms):
  baseline - `baseline_equivalent` below, a copy of `answers_equivalent` before issue 18: both sides
             parsed for every pair, every pair verified by math-verify.
  ours     - `sources.answers.grade_pairs` / `answers_equivalent`: each distinct string parsed once,
             plain-integer pairs decided without math-verify.
Both routes must give the same verdicts (and entropies) everywhere, or the script exits 1. The last line
printed is JSON: counts (pairs, distinct golds and preds, pairs on the fast path), per workload the median
wall and CPU seconds of each route, their CPU ratio and every run, and the machine.
"""

from __future__ import annotations

import argparse
import functools
import json
import multiprocessing
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from text_scale import machine  # noqa: E402

DEFAULT_DUMP = Path("/tmp/rl_dumps/champ_80000")
WARM_UP = (r"x^2+\frac{1}{2}", r"\frac{1}{2}+x^2")  # no CHAMP answer: warms the parser, fills no cache


# ---- baseline: answers_equivalent as it was before issue 18 (reasonlens/sources/answers.py) ----------
@functools.lru_cache(maxsize=1 << 16)
def baseline_equivalent(gold: str | None, pred: str | None) -> bool:
    """BASELINE (the old route, kept for comparison): parse both sides, then verify, for every pair."""
    from math_verify import parse, verify

    from reasonlens.sources.answers import _as_latex, _quiet_timeout_warning

    if gold is None or pred is None or not str(gold).strip() or not str(pred).strip():
        return False
    _quiet_timeout_warning()
    limit = 5 if threading.current_thread() is threading.main_thread() else None
    gold_parsed = parse(_as_latex(str(gold)), parsing_timeout=limit)
    pred_parsed = parse(_as_latex(str(pred)), parsing_timeout=limit)
    if not gold_parsed or not pred_parsed:
        return str(gold).strip() == str(pred).strip()
    return bool(verify(gold_parsed, pred_parsed, timeout_seconds=limit))
# ---- end of baseline ----------------------------------------------------------------------------------


def log_answers(dump: Path) -> tuple[list[tuple[str, str]], list[list[str | None]], str]:
    """The distinct (gold, pred) pairs of ``dump`` (or of the CHAMP transcripts without one) in the order
    `sources.grading` meets them, the preds of each (step, prompt) group (what answer entropy clusters), the source."""
    from reasonlens.sources.grading import answer_keys, boxed_answers

    files = sorted(dump.glob("*.jsonl"), key=lambda f: int(f.stem) if f.stem.isdigit() else -1) if dump.is_dir() else []
    if files:
        records = [(rec.get("step"), rec["input"], rec["gts"], rec["output"])
                   for f in files for rec in map(json.loads, f.open(encoding="utf-8"))]
        source = str(dump)
    else:
        from _corpus import champ_transcripts

        records = [(0, rec["prompt"], rec["answer"], rec["response"]) for rec in champ_transcripts()]
        source = "champ_transcripts"
    preds = boxed_answers(response for _, _, _, response in records)
    groups: dict[tuple, list[str | None]] = {}
    for (step, prompt, _, _), pred in zip(records, preds):
        groups.setdefault((step, prompt), []).append(pred)
    pairs = dict.fromkeys(key for key in answer_keys(preds, [gold for _, _, gold, _ in records]) if key is not None)
    return list(pairs), list(groups.values()), source


def timed_route(route: str, workload: str, pairs: list[tuple[str, str]], groups: list[list[str | None]]):
    """Wall and CPU seconds and the results of one route on one workload, in this (fresh) process after a warm-up:
    "grading" the verdicts of ``pairs``, "entropy" the answer-cluster entropy of each group (pred vs pred)."""
    from reasonlens.metrics.entropy import cached_equivalence, prompt_answer_entropies
    from reasonlens.sources.answers import answers_equivalent, grade_pairs

    baseline_equivalent(*WARM_UP)  # math-verify's own warm-up, outside ours' caches
    start, cpu = time.perf_counter(), time.process_time()
    if workload == "entropy":
        result = prompt_answer_entropies(
            groups, cached_equivalence(baseline_equivalent if route == "baseline" else answers_equivalent)).tolist()
    elif route == "baseline":
        result = [baseline_equivalent(*pair) for pair in pairs]
    else:
        result = grade_pairs(pairs)
    return time.perf_counter() - start, time.process_time() - cpu, result


def _fast(pair: tuple[str, str]) -> bool:
    """Whether `answers_equivalent` decides ``pair`` without math-verify (plain integers on both sides)."""
    from reasonlens.sources.answers import _integer_verdict

    return _integer_verdict(*pair) is not None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dump", type=Path, default=DEFAULT_DUMP, help="verl rollout dump folder (*.jsonl)")
    parser.add_argument("--repeats", type=int, default=3, help="fresh-process runs per route (median reported)")
    args = parser.parse_args()
    pairs, groups, source = log_answers(args.dump)
    integer_pairs = [pair for pair in pairs if _fast(pair)]
    workloads = {"grading": (pairs, []), "grading_integer_pairs": (integer_pairs, []), "entropy": ([], groups)}
    runs = {(w, r): [] for w in workloads for r in ("baseline", "ours")}  # (wall, cpu) seconds of each run
    results = {}
    context = multiprocessing.get_context("spawn")
    for _ in range(args.repeats):
        for (workload, route), seconds in runs.items():
            with context.Pool(1) as pool:  # a fresh process: empty caches, nothing warm but the warm-up
                wall, cpu, results[workload, route] = pool.apply(
                    timed_route, (route, workload.split("_")[0], *workloads[workload]))
            seconds.append((wall, cpu))
            print(f"{workload} {route}: {wall:.2f} s wall, {cpu:.2f} s CPU", flush=True)
    disagree = {w: sum(not (a == b or a != a and b != b)  # NaN entropy (a prompt without answers) == NaN
                       for a, b in zip(results[w, "baseline"], results[w, "ours"])) for w in workloads}
    report = {"source": source, "pairs": len(pairs), "distinct_golds": len({g for g, _ in pairs}),
              "distinct_preds": len({p for _, p in pairs}), "fast_path_pairs": len(integer_pairs),
              "correct_pairs": sum(results["grading", "ours"]), "groups": len(groups),
              "verdicts_agree": not any(disagree.values()), "disagreements": disagree}
    for workload in workloads:
        report[workload] = {f"{route}_{kind}_s": round(statistics.median(run[i] for run in runs[workload, route]), 3)
                            for route in ("baseline", "ours") for i, kind in enumerate(("wall", "cpu"))}
        report[workload]["speedup_cpu"] = round(report[workload]["baseline_cpu_s"]
                                                / max(report[workload]["ours_cpu_s"], 1e-3), 2)
        report[workload]["runs_wall_cpu_s"] = {route: [[round(x, 3) for x in run] for run in runs[workload, route]]
                                               for route in ("baseline", "ours")}
    print(json.dumps({**report, "machine": machine()}))
    return 1 if any(disagree.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
