"""Text-only `analyze --rollouts` at the size of real runs: wall time, characters/s and peak memory
against the floor (read the log + the bare `PlanningTagger.find` over every response, one core), same run.

Run: OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/text_scale.py [--sizes 20000,80000,320000]
     [--tree DIR] [--baseline-tree DIR] [--analyze-args "--workers 2"] [--dumps DIR] [--single-file]

Corpus: real reasoning text, the CHAMP transcripts of the ``champ-dataset`` package (dev extra; Mao et
al. 2024: GPT-3.5/4, PaLM 2 and Llama 2 solving competition problems): one response is the model turns
of one conversation (~1.9 k characters), 8 conversations of one problem are the 8 samples of a prompt.
A size of N responses is written in verl's rollout-dump format, ``{step}.jsonl`` with ``input, output,
gts, score, step``, 1 000 responses a step (so 20 k, 80 k and 320 k responses are 20, 80 and 320
steps, each step the same size: peak memory must follow the step, not the run); with ``--single-file`` the
same rows, in step order, are one ``champ_N.jsonl`` (a log written to one file). The corpus repeats
past its ~19 k conversations. ``score`` (verl's reward) is 1.0 where the gold answer appears in the
response's last 300 characters: a stand-in, the log has gold answers (``gts``) so analyze grades too.

For each size: the floor (pyarrow's JSON reader + ``PlanningTagger.find`` over every response, this
process pinned to one core), then ``python -m reasonlens.cli analyze --rollouts DUMP`` in a subprocess
whose source tree is ``--baseline-tree`` (a copy of older code, if given), then ``--tree`` (default: this
checkout), each with its wall time, its CPU time (user + system of the analyze process and its workers,
from wait4), the peak RSS of its process tree (sampled every 50 ms, summed over the analyze process
and its workers; also ``ru_maxrss`` from wait4) and its summary.json's stage_seconds. Ratios to the
floor are given for wall time and for CPU time: on a shared, loaded machine the CPU ratio is the
steadier one. The floor does no grading, which every analysis of a log with gold answers does:
``grading_cpu_s`` is what one fresh process, pinned to one core, takes to check the distinct answer pairs
of this tree's analysis (its ``OUT/tags/verdicts.parquet``) with math-verify, so a reader can see the part
of the wall time no scheduling removes. The last line printed is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _corpus import champ_transcripts  # noqa: E402

PER_STEP = 1000
REPO = Path(__file__).resolve().parents[1]


def write_dump(folder: Path, n: int, corpus: list[dict]) -> int:
    """``n`` responses as verl's ``{step}.jsonl`` files (PER_STEP a step) in ``folder``; returns characters."""
    folder.mkdir(parents=True, exist_ok=True)
    chars = 0
    for step in range(-(-n // PER_STEP)):
        lines = []
        for i in range(step * PER_STEP, min(n, (step + 1) * PER_STEP)):
            rec = corpus[i % len(corpus)]
            score = float(rec["answer"].strip() in rec["response"][-300:])
            lines.append(json.dumps({"input": rec["prompt"], "output": rec["response"], "gts": rec["answer"],
                                     "score": score, "step": step}) + "\n")
            chars += len(rec["response"])
        (folder / f"{step}.jsonl").write_text("".join(lines), encoding="utf-8")
    return chars


def dump_for(n: int, root: Path, corpus: list[dict]) -> tuple[Path, int]:
    """The dump of ``n`` responses under ``root`` (written once, reused by later runs), and its characters."""
    folder, meta = root / f"champ_{n}", root / f"champ_{n}.json"
    if meta.is_file():
        return folder, json.loads(meta.read_text())["chars"]
    chars = write_dump(folder, n, corpus)
    meta.write_text(json.dumps({"n": n, "chars": chars}))
    return folder, chars


def single_file(dump: Path) -> Path:
    """The dump's step files joined in step order into one JSON-lines file beside it (written once)."""
    path = dump.with_suffix(".jsonl")
    if not path.is_file():
        with path.open("wb") as sink:
            for file in sorted(dump.glob("*.jsonl"), key=lambda f: int(f.stem)):
                sink.write(file.read_bytes())
    return path


def floor_seconds(dump: Path) -> tuple[float, float]:
    """(wall, CPU) seconds to read every step with pyarrow's JSON reader and run ``PlanningTagger.find`` over
    each response (paper lexicon), pinned to one core."""
    import pyarrow.json as pj

    from reasonlens.hierarchy.tagger import PlanningTagger

    allowed = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(allowed)})
    try:
        find = PlanningTagger("paper").fit().find
        start, cpu = time.perf_counter(), time.process_time()
        for file in sorted(dump.glob("*.jsonl")):
            for text in pj.read_json(file).column("output").to_pylist():
                find(text)
        return time.perf_counter() - start, time.process_time() - cpu
    finally:
        os.sched_setaffinity(0, allowed)


def _tree_rss_kb(root: int) -> int:
    """Resident memory (kB) of ``root`` and all its descendants, read from /proc."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            status = Path(f"/proc/{entry}/status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        children.setdefault(int(fields["PPid"]), []).append(int(entry))
        rss[int(entry)] = int(fields.get("VmRSS", "0 kB").split()[0])
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo += children.get(pid, [])
    return total


def run_analyze(dump: Path, out: Path, tree: Path, extra: list[str]) -> dict:
    """Wall and CPU seconds (the analyze process and its workers), peak tree RSS and ru_maxrss (MB) of one
    text-only analyze in a subprocess."""
    env = dict(os.environ, PYTHONPATH=str(tree), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "reasonlens.cli", "analyze", "--rollouts", str(dump), "--out", str(out), *extra]
    log = out.parent / "analyze.log"
    start = time.perf_counter()
    with log.open("wb") as sink:
        proc = subprocess.Popen(cmd, env=env, cwd=tree, stdout=sink, stderr=subprocess.STDOUT)
        peak_kb = 0
        while True:  # wait4 (not Popen.wait) returns the child's own rusage
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            peak_kb = max(peak_kb, _tree_rss_kb(proc.pid))
            time.sleep(0.05)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"analyze failed ({proc.returncode}): {log.read_text(errors='replace')[-2000:]}")
    summary = json.loads((out / "summary.json").read_text())
    maxrss = usage.ru_maxrss / 1024
    return {"wall_s": round(wall, 2), "cpu_s": round(usage.ru_utime + usage.ru_stime, 2), "peak_rss_mb": round(max(peak_kb / 1024, maxrss), 1),
            "analyze_maxrss_mb": round(maxrss, 1), "stage_seconds": summary["stage_seconds"],
            "n_responses": summary["n_responses"]}


def grading_cpu_seconds(verdicts: Path, tree: Path) -> float:
    """CPU seconds of `grade_pairs` over the pairs of ``verdicts`` (an analysis's OUT/tags/verdicts.parquet), in
    a fresh process of ``tree`` pinned to one core: math-verify's start included, as every analysis pays it."""
    code = ("import os, sys, time; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); import pandas as pd; "
            "from reasonlens.sources.answers import grade_pairs; f = pd.read_parquet(sys.argv[1]); "
            "start = time.process_time(); grade_pairs(list(zip(f['x'], f['y']))); print(time.process_time() - start)")
    env = dict(os.environ, PYTHONPATH=str(tree), OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-c", code, str(verdicts)], env=env, cwd=tree, capture_output=True,
                          text=True, check=True)
    return float(done.stdout.split()[-1])


def machine() -> dict:
    """CPU model, usable cores, Python, and the load average (the box is shared)."""
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor() or "unknown")
    return {"cpu": model, "cores_allowed": len(os.sched_getaffinity(0)), "python": platform.python_version(),
            "loadavg": os.getloadavg()}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="20000,80000,320000", help="responses per dump, comma-separated")
    parser.add_argument("--tree", type=Path, default=REPO, help="source tree whose reasonlens analyzes")
    parser.add_argument("--baseline-tree", type=Path, default=None,
                        help="also analyze each dump with this source tree (older code), after the same floor")
    parser.add_argument("--analyze-args", default="", help="extra analyze options for --tree, e.g. '--workers 2'")
    parser.add_argument("--dumps", type=Path, default=Path(tempfile.gettempdir()) / "reasonlens_text_scale",
                        help="where the dumps are written once and reused")
    parser.add_argument("--single-file", action="store_true",
                        help="analyze each dump as one JSON-lines file (the floor still reads its step files)")
    args = parser.parse_args(argv)
    corpus = champ_transcripts()
    trees = {"new": (args.tree.resolve(), args.analyze_args.split())}
    if args.baseline_tree:
        trees = {"baseline": (args.baseline_tree.resolve(), []), **trees}
    results = []
    for n in (int(s) for s in args.sizes.split(",")):
        dump, chars = dump_for(n, args.dumps, corpus)
        floor, floor_cpu = floor_seconds(dump)
        log = single_file(dump) if args.single_file else dump
        row = {"n_responses": n, "log": log.name, "n_chars": chars, "floor_s": round(floor, 2),
               "floor_cpu_s": round(floor_cpu, 2),
               "floor_chars_per_s": round(chars / floor)}
        for name, (tree, extra) in trees.items():
            with tempfile.TemporaryDirectory() as tmp:
                run = run_analyze(log, Path(tmp) / "out", tree, extra)
                verdicts = Path(tmp) / "out" / "tags" / "verdicts.parquet"
                if name == "new" and verdicts.is_file():
                    run["grading_cpu_s"] = round(grading_cpu_seconds(verdicts, tree), 2)
                    run["ratio_to_floor_plus_grading"] = round(run["wall_s"] / (floor + run["grading_cpu_s"]), 2)
            row[name] = {**run, "chars_per_s": round(chars / run["wall_s"]),
                         "ratio_to_floor": round(run["wall_s"] / floor, 2),
                         "cpu_ratio_to_floor": round(run["cpu_s"] / floor_cpu, 2), "loadavg_after": os.getloadavg()}
            print(f"{name:8s} {n:7d} responses {chars / 1e6:6.1f} M chars: wall {run['wall_s']:7.1f} s, floor "
                  f"{floor:6.1f} s ({row[name]['ratio_to_floor']:.2f}x), CPU {run['cpu_s']:7.1f} s vs {floor_cpu:5.1f} s "
                  f"({row[name]['cpu_ratio_to_floor']:.2f}x), grading alone {run.get('grading_cpu_s', '-')} CPU s, "
                  f"peak {run['peak_rss_mb']:.0f} MB, "
                  f"load {os.getloadavg()[0]:.2f}", flush=True)
        results.append(row)
    by_n = {r["n_responses"]: r for r in results}
    growth = ({name: round(by_n[80000][name]["peak_rss_mb"] / by_n[20000][name]["peak_rss_mb"], 2) for name in trees}
              if {20000, 80000} <= set(by_n) else None)
    result = {"trees": {name: str(tree) for name, (tree, _) in trees.items()}, "analyze_args": args.analyze_args,
              "per_step": PER_STEP, "sizes": results, "peak_rss_80k_over_20k": growth, "machine": machine()}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
