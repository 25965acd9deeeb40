"""Tagger throughput (characters/s, one core, paper lexicon) vs a naive loop of per-gram regexes.

Run: HF_HUB_OFFLINE=1 taskset -c 0 .venv/bin/python benchmarks/bench_tagger.py
The naive baseline compiles one regex per gram (same rules, lookahead for overlaps) and scans the
text 249 times; both must return the same occurrences. Last line: JSON with chars_per_s,
baseline_chars_per_s and ratio.
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _corpus import reasoning_responses  # noqa: E402

from reasonlens.hierarchy.tagger import Match, PlanningTagger, gram_regex  # noqa: E402


def naive_find(patterns, text):
    out = []
    for phrase, pattern in patterns:
        out += [Match(m.start(1), m.end(1), phrase) for m in pattern.finditer(text)]
    return out


def best_of(fn, repeats=3):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def main():
    texts = reasoning_responses(2000, seed=0)
    n_chars = sum(map(len, texts))
    tagger = PlanningTagger("paper").fit()
    seconds, found = best_of(lambda: [tagger.find(t) for t in texts])
    n_found = sum(map(len, found))

    patterns = [(p, re.compile("(?=(" + gram_regex(p) + "))", re.IGNORECASE)) for p in tagger.lexicon_.phrases]
    sample = texts[:200]
    base_seconds, base_found = best_of(lambda: [naive_find(patterns, t) for t in sample], repeats=1)
    assert all(sorted(a) == sorted(b) for a, b in zip(found, base_found)), "tagger and naive baseline disagree"
    base_chars = sum(map(len, sample))

    chars_per_s = n_chars / seconds
    baseline = base_chars / base_seconds
    print(f"texts={len(texts)} chars={n_chars} occurrences={n_found} tagger={seconds:.3f}s "
          f"naive({len(sample)} texts)={base_seconds:.3f}s")
    print(json.dumps({"chars_per_s": round(chars_per_s), "baseline_chars_per_s": round(baseline),
                      "ratio": round(chars_per_s / baseline, 1), "n_chars": n_chars, "lexicon": "paper",
                      "n_grams": len(tagger.lexicon_), "occurrences_per_kchar": round(1000 * n_found / n_chars, 2)}))


if __name__ == "__main__":
    main()
