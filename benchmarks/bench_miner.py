"""StrategicGramMiner wall time on 10 000 synthetic responses with the bundled all-MiniLM-L6-v2 (CPU).

Run: HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_miner.py [N]
Stages are timed separately (n-gram indexing, embedding, clustering + CDF). ``ratio`` is the number
of n-gram occurrences over the number of n-grams embedded: the encoder calls that embedding each
unique (frequent) n-gram once saves. Last line: JSON.
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

    from reasonlens.hierarchy.mining import _SentenceEmbedder

    responses = reasoning_responses(n, seed=0)
    start = time.perf_counter()
    embedder = Timed(_SentenceEmbedder("minilm", batch_size=256))
    load_s = time.perf_counter() - start

    start = time.perf_counter()
    miner = StrategicGramMiner(embedder=embedder, batch_size=256).fit(responses)
    fit_s = time.perf_counter() - start
    occurrences = sum(len(extract_ngrams(r)) for r in responses)
    selected = miner.clusters_[miner.clusters_["selected"]]
    print(f"responses={n} chars={sum(map(len, responses))} ngrams_embedded={len(miner.ngrams_)} "
          f"clusters={len(miner.clusters_)} selected={len(selected)} lexicon={len(miner.lexicon_)} "
          f"threads={torch.get_num_threads()}")
    print("top clusters:", [m[:3] for m in selected["members"].head(5)])
    print(json.dumps({"n_responses": n, "seconds": round(fit_s, 2), "model_load_s": round(load_s, 2),
                      "embed_s": round(embedder.seconds, 2), "other_s": round(fit_s - embedder.seconds, 2),
                      "ngrams_embedded": len(miner.ngrams_), "ngram_occurrences": occurrences,
                      "ratio": round(occurrences / len(miner.ngrams_), 1), "lexicon_size": len(miner.lexicon_)}))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000)
