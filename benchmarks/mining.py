"""StrategicGramMiner wall time on 10 000 synthetic responses with the bundled all-MiniLM-L6-v2 (CPU).

Run: HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/mining.py [N] [--quick]
Stages are timed separately (model load, embedding, the rest: n-gram indexing, clustering, CDF). The
baseline, timed in the same run on a sample, embeds every n-gram *occurrence* (what a naive miner
does); ``baseline_embed_s`` extrapolates it to all occurrences, ``ratio`` = baseline_embed_s / embed_s.
Last line: JSON.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _corpus import reasoning_responses  # noqa: E402

from reasonlens.hierarchy.mining import StrategicGramMiner, extract_ngrams  # noqa: E402


class Timed:
    """Wrap an embedder and add up the time spent in ``encode``."""

    def __init__(self, inner):
        self.inner, self.seconds = inner, 0.0

    def encode(self, texts):
        start = time.perf_counter()
        out = self.inner.encode(texts)
        self.seconds += time.perf_counter() - start
        return out


def main(n: int = 10_000):
    import torch

    from reasonlens.hierarchy.mining import _SentenceEmbedder, embed
    from reasonlens.models.hardware import cpu_model

    responses = reasoning_responses(n, seed=0)
    start = time.perf_counter()
    embedder = Timed(_SentenceEmbedder("minilm", batch_size=256))
    load_s = time.perf_counter() - start

    start = time.perf_counter()
    miner = StrategicGramMiner(embedder=embedder, batch_size=256).fit(responses)
    fit_s = time.perf_counter() - start
    all_grams = [g for r in responses for g in extract_ngrams(r)]
    occurrences = len(all_grams)
    sample = all_grams[:: max(1, occurrences // 4096)][:4096]
    start = time.perf_counter()
    embed(embedder.inner, sample, 256)  # the naive path: every occurrence through the encoder
    baseline_s = (time.perf_counter() - start) * occurrences / len(sample)
    selected = miner.clusters_[miner.clusters_["selected"]]
    print(f"responses={n} chars={sum(map(len, responses))} ngrams_embedded={len(miner.ngrams_)} "
          f"clusters={len(miner.clusters_)} selected={len(selected)} lexicon={len(miner.lexicon_)} "
          f"threads={torch.get_num_threads()}")
    print("top clusters:", [m[:3] for m in selected["members"].head(5)])
    print(json.dumps({"n_responses": n, "seconds": round(fit_s, 2), "model_load_s": round(load_s, 2),
                      "embed_s": round(embedder.seconds, 2), "other_s": round(fit_s - embedder.seconds, 2),
                      "baseline_embed_s": round(baseline_s, 1), "ratio": round(baseline_s / embedder.seconds, 1),
                      "ngrams_embedded": len(miner.ngrams_), "ngram_occurrences": occurrences,
                      "lexicon_size": len(miner.lexicon_), "threads": torch.get_num_threads(),
                      "machine": {"cpu": cpu_model(), "capability": torch.backends.cpu.get_cpu_capability()}}))


if __name__ == "__main__":
    numbers = [int(a) for a in sys.argv[1:] if a.isdigit()]
    main(numbers[0] if numbers else 1_000 if "--quick" in sys.argv else 10_000)
