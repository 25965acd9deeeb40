"""Grading a log's distinct (gold, pred) pairs: today's math-verify route against `grade_pairs`, same run.

Run: OMP_NUM_THREADS=1 .venv/bin/python benchmarks/grading.py [--dump DIR] [--repeats 3]

Pairs: the distinct (gold, pred) pairs of a verl rollout dump (``DIR/*.jsonl`` with ``output`` and ``gts``;
default /tmp/rl_dumps/champ_80000, written by benchmarks/text_scale.py) or, where there is none, of the
CHAMP transcripts themselves (`_corpus.champ_transcripts`, the same records): gold = ``gts`` through
`sources.tasks._final_answer`, pred = `extract_boxed(response)`, as `grade_log` pairs them.

Routes, each in a fresh spawned process (empty caches; imports and math-verify's LaTeX parser warmed on
a pair outside the set before the clock starts), alternating, ``--repeats`` times, median seconds:
  baseline - `baseline_equivalent` below, a copy of `answers_equivalent` before issue 18: both sides
             parsed for every pair, every pair verified by math-verify.
  ours     - `sources.answers.grade_pairs`: each distinct string parsed once, plain-integer pairs
             decided without math-verify.
The verdicts of the two routes must agree on every pair, or the script exits 1. The last line is JSON.
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


def log_pairs(dump: Path) -> tuple[list[tuple[str, str]], str]:
    """The distinct (gold, pred) pairs of ``dump`` (or of the CHAMP transcripts without one), sorted."""
    from reasonlens.sources.answers import extract_boxed
    from reasonlens.sources.tasks import _final_answer

    files = sorted(dump.glob("*.jsonl")) if dump.is_dir() else []
    if files:
        records = ((rec["gts"], rec["output"]) for f in files for rec in map(json.loads, f.open(encoding="utf-8")))
        source = str(dump)
    else:
        from _corpus import champ_transcripts

        records = ((rec["answer"], rec["response"]) for rec in champ_transcripts())
        source = "champ_transcripts"
    pairs = {(_final_answer(str(gold)), extract_boxed(response)) for gold, response in records if gold is not None}
    return sorted((gold, pred) for gold, pred in pairs if pred is not None), source


def timed_route(route: str, pairs: list[tuple[str, str]]) -> tuple[float, list[bool]]:
    """Seconds and verdicts of one route over ``pairs``, run in this (fresh) process after a warm-up."""
    from reasonlens.sources.answers import grade_pairs

    grade = (lambda ps: [baseline_equivalent(*p) for p in ps]) if route == "baseline" else grade_pairs
    baseline_equivalent(*WARM_UP)  # math-verify's own warm-up, outside ours' caches
    start = time.perf_counter()
    verdicts = grade(pairs)
    return time.perf_counter() - start, verdicts


def fast_path_count(pairs: list[tuple[str, str]]) -> int:
    """How many pairs `answers_equivalent` decides without math-verify (plain integers on both sides)."""
    from reasonlens.sources.answers import _integer_verdict

    return sum(_integer_verdict(gold, pred) is not None for gold, pred in pairs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dump", type=Path, default=DEFAULT_DUMP, help="verl rollout dump folder (*.jsonl)")
    parser.add_argument("--repeats", type=int, default=3, help="fresh-process runs per route (median reported)")
    args = parser.parse_args()
    pairs, source = log_pairs(args.dump)
    seconds: dict[str, list[float]] = {"baseline": [], "ours": []}
    verdicts = {}
    context = multiprocessing.get_context("spawn")
    for _ in range(args.repeats):
        for route in seconds:
            with context.Pool(1) as pool:  # a fresh process: empty caches, nothing warm but the warm-up
                took, verdicts[route] = pool.apply(timed_route, (route, pairs))
            seconds[route].append(took)
            print(f"{route}: {took:.2f} s", flush=True)
    disagree = [pair for pair, a, b in zip(pairs, verdicts["baseline"], verdicts["ours"]) if a != b]
    base, ours = (statistics.median(seconds[r]) for r in ("baseline", "ours"))
    print(json.dumps({
        "source": source, "pairs": len(pairs), "distinct_golds": len({g for g, _ in pairs}),
        "distinct_preds": len({p for _, p in pairs}), "fast_path_pairs": fast_path_count(pairs),
        "correct_pairs": sum(verdicts["ours"]), "verdicts_agree": not disagree, "disagreements": disagree[:10],
        "baseline_s": round(base, 3), "ours_s": round(ours, 3), "speedup": round(base / ours, 2),
        "runs_s": {r: [round(s, 3) for s in v] for r, v in seconds.items()}, "machine": machine(),
    }))
    return 1 if disagree else 0


if __name__ == "__main__":
    sys.exit(main())
