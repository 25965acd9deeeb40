"""PlanningTagger.find throughput (characters/s, one core, paper lexicon) against the one-regex
baseline (``regex_finder``, the matcher ``find`` ran before the Aho-Corasick automaton), same run.

Run: OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 taskset -c 0 .venv/bin/python benchmarks/tagger.py [--quick]

Corpus: ``_corpus.reasoning_responses`` (short GSM-style answers) plus ``long_chains_of_thought``
(R1-style thinking traces with blank lines, LaTeX, Unicode math and U+2019). Both matchers must
return identical occurrence lists on every text (else exit 1). Repetitions alternate the two
matchers (ABBA order) and the median time counts; the script pins itself to one core. The last
line printed is JSON: chars_per_s, baseline_chars_per_s, ratio, n_chars, machine, and more.
``--quick`` (a smaller corpus, fewer repetitions) takes a few seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from importlib import metadata
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _corpus import long_chains_of_thought, reasoning_responses  # noqa: E402

from reasonlens.hierarchy.matcher import regex_finder  # noqa: E402
from reasonlens.hierarchy.tagger import PlanningTagger  # noqa: E402


def pin_one_core() -> int:
    """Restrict this process to the first core it may use (the target is one core); returns it."""
    core = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {core})
    return core


def machine() -> dict:
    """CPU model, the core used, torch's CPU capability (if torch imports) and library versions."""
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor() or "unknown")
    info = {"cpu": model, "cores_allowed": len(os.sched_getaffinity(0)), "python": platform.python_version(),
            "pyahocorasick": metadata.version("pyahocorasick")}
    try:
        import torch
        info["torch_cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    except Exception as exc:  # torch is optional here: record why it is missing
        info["torch_cpu_capability"] = f"unavailable ({type(exc).__name__})"
    return info


def corpus(quick: bool, seed: int) -> dict[str, list[str]]:
    """Named groups of texts: short answers and long thinking traces."""
    n_short, n_long = (300, 6) if quick else (2000, 60)
    return {"responses": reasoning_responses(n_short, seed=seed),
            "long_cot": long_chains_of_thought(n_long, seed=seed + 1)}


def check_identical(find, baseline, groups: dict[str, list[str]]) -> int:
    """Exit 1 unless both matchers return the same list on every text; returns the occurrence count."""
    n_found = 0
    for name, texts in groups.items():
        for i, text in enumerate(texts):
            new, old = find(text), baseline(text)
            if new != old:
                sys.exit(f"{name}[{i}]: automaton and regex baseline disagree:\n"
                         f"only automaton {sorted(set(new) - set(old))[:5]}\n"
                         f"only regex {sorted(set(old) - set(new))[:5]}")
            n_found += len(new)
    return n_found


def time_pass(find, groups: dict[str, list[str]]) -> dict[str, float]:
    """Wall seconds of one pass of ``find`` over each group of texts."""
    out = {}
    for name, texts in groups.items():
        start = time.perf_counter()
        for text in texts:
            find(text)
        out[name] = time.perf_counter() - start
    return out


def alternate(matchers: dict, groups: dict[str, list[str]], repeats: int) -> dict[str, list[dict]]:
    """``repeats`` passes of each matcher, in ABBA order so drift (turbo, neighbours) hits both alike."""
    times = {name: [] for name in matchers}
    order = list(matchers)
    for rep in range(repeats):
        for name in (order if rep % 2 == 0 else order[::-1]):
            times[name].append(time_pass(matchers[name], groups))
    return times


def median_rate(runs: list[dict], groups: dict[str, list[str]], names=None) -> float:
    """Characters per second of the median pass over the ``names`` groups (default all)."""
    names = names or list(groups)
    chars = sum(len(t) for n in names for t in groups[n])
    return chars / statistics.median(sum(run[n] for n in names) for run in runs)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small corpus, 5 repetitions (a few seconds)")
    parser.add_argument("--repeats", type=int, default=None, help="passes per matcher (default 5 quick, 9 full)")
    parser.add_argument("--seed", type=int, default=0, help="corpus seed")
    args = parser.parse_args(argv)
    core = pin_one_core()
    groups = corpus(args.quick, args.seed)
    tagger = PlanningTagger("paper").fit()
    phrases = tagger.lexicon_.phrases
    matchers = {"automaton": tagger.find, "regex": regex_finder(phrases)}
    n_found = check_identical(matchers["automaton"], matchers["regex"], groups)  # also warms both up
    times = alternate(matchers, groups, args.repeats or (5 if args.quick else 9))

    n_chars = sum(len(t) for texts in groups.values() for t in texts)
    new, old = median_rate(times["automaton"], groups), median_rate(times["regex"], groups)
    by_group = {name: {"n_texts": len(texts), "n_chars": sum(map(len, texts)),
                       "chars_per_s": round(median_rate(times["automaton"], groups, [name])),
                       "baseline_chars_per_s": round(median_rate(times["regex"], groups, [name]))}
                for name, texts in groups.items()}
    for name, row in by_group.items():
        print(f"{name:10s} texts={row['n_texts']:5d} chars={row['n_chars']:8d} "
              f"automaton={row['chars_per_s'] / 1e6:6.2f} M chars/s  "
              f"regex={row['baseline_chars_per_s'] / 1e6:5.2f} M chars/s")
    result = {"chars_per_s": round(new), "baseline_chars_per_s": round(old), "ratio": round(new / old, 2),
              "n_chars": n_chars, "n_texts": sum(map(len, groups.values())), "occurrences": n_found,
              "lexicon": tagger.lexicon_.name, "lexicon_hash": tagger.lexicon_.hash, "n_grams": len(phrases),
              "repeats": len(times["regex"]), "quick": args.quick, "seed": args.seed, "core": core,
              "by_corpus": by_group, "machine": machine()}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
