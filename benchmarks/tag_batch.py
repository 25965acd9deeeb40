"""The tag stage against its floor: `tag.tag_texts` over a batch of real responses (every tag column) vs the
bare matcher ``PlanningTagger("paper").find`` over each response, same run, one core.

Run: OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/tag_batch.py [--batch 1000] [--batches 4]
     [--dump FILE.jsonl] [--repeats 15]

Corpus: real reasoning text, the CHAMP transcripts of the ``champ-dataset`` package (dev extra; see
``_corpus.champ_transcripts``), cut into ``--batches`` batches of ``--batch`` responses (a step of a verl
dump is 1 000); or the ``output`` column of a verl dump step (``--dump``, read with pyarrow's JSON reader,
as ``analyze`` reads it). Each repetition times the floor (``find`` over every response of every batch)
and ``tag_texts`` over each batch, alternating their order (ABBA) so drift hits both alike; the median
counts, in wall time and in CPU time (steadier on a shared machine: time another process takes from the
core is not counted). The process pins itself to one core (benchmarks/tagger.py's ``pin_one_core``). ``--check``
compares ``tag_texts`` with the reference ``tag_response`` on every response first (slow: ~1 min per
1 000). The last line printed is JSON: wall and CPU ms per 1 000 responses for both, their ratios,
characters/s, corpus and machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _corpus import champ_transcripts  # noqa: E402
from tagger import machine, pin_one_core  # noqa: E402

from reasonlens.hierarchy.tag import tag_response, tag_texts  # noqa: E402
from reasonlens.hierarchy.tagger import PlanningTagger  # noqa: E402


def load_batches(dump: Path | None, batch: int, batches: int) -> list[list[str]]:
    """``batches`` lists of ``batch`` responses: from a verl dump step file, or from the CHAMP transcripts."""
    if dump is not None:
        import pyarrow.json as pj

        texts = pj.read_json(dump).column("output").to_pylist()
    else:
        texts = [r["response"] for r in champ_transcripts()]
    if len(texts) < batch * batches:
        sys.exit(f"the corpus has {len(texts)} responses, fewer than --batch {batch} x --batches {batches}")
    return [texts[i * batch:(i + 1) * batch] for i in range(batches)]


def floor_pass(find, batches: list[list[str]]) -> tuple[float, float]:
    """(wall, CPU) seconds of the bare matcher over every response."""
    wall, cpu = time.perf_counter(), time.process_time()
    for texts in batches:
        for text in texts:
            find(text)
    return time.perf_counter() - wall, time.process_time() - cpu


def tag_pass(batches: list[list[str]]) -> tuple[float, float]:
    """(wall, CPU) seconds of ``tag_texts`` over each batch (every tag column; results dropped as they come)."""
    wall, cpu = time.perf_counter(), time.process_time()
    for texts in batches:
        tag_texts(texts)
    return time.perf_counter() - wall, time.process_time() - cpu


def check(batches: list[list[str]]) -> None:
    """Exit 1 unless ``tag_texts`` equals ``tag_response`` on every response."""
    for b, texts in enumerate(batches):
        fast = tag_texts(texts)
        for i, text in enumerate(texts):
            ref = tag_response(text)
            bad = [c for c in ref if ref[c] != fast[c][i]]
            if bad:
                sys.exit(f"batch {b} response {i}: tag_texts differs from tag_response in {bad}")


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=1000, help="responses per tag_texts call (a verl step: 1000)")
    parser.add_argument("--batches", type=int, default=4, help="batches timed per repetition")
    parser.add_argument("--dump", type=Path, default=None, help="a verl dump step (.jsonl) instead of CHAMP")
    parser.add_argument("--repeats", type=int, default=15, help="repetitions of each (median counts)")
    parser.add_argument("--check", action="store_true", help="first compare with tag_response on every response")
    args = parser.parse_args(argv)
    core = pin_one_core()
    batches = load_batches(args.dump, args.batch, args.batches)
    find = PlanningTagger("paper").fit().find
    if args.check:
        check(batches)
    floor_pass(find, batches), tag_pass(batches)  # warm-up: automata, tables, caches
    times = {"floor": [], "tag": []}
    for rep in range(args.repeats):
        for name in (("floor", "tag") if rep % 2 == 0 else ("tag", "floor")):
            times[name].append(floor_pass(find, batches) if name == "floor" else tag_pass(batches))
    n_texts = sum(map(len, batches))
    n_chars = sum(len(t) for texts in batches for t in texts)
    wall = {name: statistics.median(w for w, _ in runs) for name, runs in times.items()}
    cpu = {name: statistics.median(c for _, c in runs) for name, runs in times.items()}
    ms = 1000 / n_texts * 1e3  # seconds -> ms per 1 000 responses
    for name, label in (("floor", "floor (find over each response)"), ("tag", "tag_texts (every tag column)")):
        print(f"{label:32s} {wall[name] * ms:7.1f} ms wall, {cpu[name] * ms:7.1f} ms CPU / 1000 responses  "
              f"{n_chars / wall[name] / 1e6:5.1f} M chars/s")
    result = {"tag_ms_per_1000": round(wall["tag"] * ms, 1), "floor_ms_per_1000": round(wall["floor"] * ms, 1),
              "ratio_to_floor": round(wall["tag"] / wall["floor"], 3),
              "tag_cpu_ms_per_1000": round(cpu["tag"] * ms, 1), "floor_cpu_ms_per_1000": round(cpu["floor"] * ms, 1),
              "cpu_ratio_to_floor": round(cpu["tag"] / cpu["floor"], 3),
              "tag_chars_per_s": round(n_chars / wall["tag"]), "floor_chars_per_s": round(n_chars / wall["floor"]),
              "n_texts": n_texts, "n_chars": n_chars, "batch": args.batch,
              "corpus": str(args.dump) if args.dump else "champ_transcripts",
              "checked": args.check, "repeats": args.repeats, "core": core, "machine": machine()}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
