"""How often one `analyze` of a 3-checkpoint series runs the tagger, the tokenizer's decode, the generate
stage's `checkpoint_keys` (the cache keys), runtime records (`hardware.runtime`) and reads of rollout step
files, and how often a fully cached rerun does.

Run: HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/call_counts.py
(with PYTHONPATH pointing at another checkout, the same script counts that version's calls).
The series is the test suite's tiny random Llama on a byte-level BPE (tests/tiny_models.py;
checkpoint-1..3, 2 problems x 2 samples).
``PlanningTagger.find`` and ``PreTrainedTokenizerBase.decode`` / ``batch_decode`` are wrapped at class
level, so every call counts, whichever module makes it. Last line: JSON.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent / "tests"  # tiny_models.py: the suite's tiny series


def tiny_series(root: Path) -> Path:
    """checkpoint-1..3 of the suite's random 2-layer Llama on its byte-level BPE, one SGD step apart."""
    sys.path.insert(0, str(TESTS))
    from tiny_models import tiny_model, tiny_series as build, tiny_tokenizer

    model = tiny_model(root / "model", tiny_tokenizer(root / "tokenizer"))
    return build(root / "series", model)


def counting(counts: dict):
    """Wrap find/decode/batch_decode, the generate stage's `checkpoint_keys`, `hardware.runtime` (one call per
    runtime record: with a vLLM backend each also asks vLLM for its provenance) and pandas' parquet reader
    (counting reads of rollout step files) so each call adds to ``counts``."""
    import pandas as pd
    from transformers import PreTrainedTokenizerBase

    from reasonlens.analysis import generate
    from reasonlens.hierarchy.tagger import PlanningTagger
    from reasonlens.models import hardware

    def wrap(owner, name, key):
        real = getattr(owner, name)

        def counted(*args, **kwargs):
            counts[key] += 1
            return real(*args, **kwargs)
        setattr(owner, name, counted)

    wrap(PlanningTagger, "find", "find")
    wrap(PreTrainedTokenizerBase, "decode", "decode")
    wrap(PreTrainedTokenizerBase, "batch_decode", "batch_decode")
    wrap(generate, "checkpoint_keys", "checkpoint_keys")
    wrap(hardware, "runtime", "runtime")
    real_read = pd.read_parquet

    def read_parquet(path, *args, **kwargs):
        counts["step_file_reads"] += Path(path).parent.name == "rollouts"
        return real_read(path, *args, **kwargs)
    pd.read_parquet = read_parquet


def main() -> None:
    import reasonlens
    from reasonlens.analysis.config import AnalyzeConfig
    from reasonlens.analysis.run import analyze

    with tempfile.TemporaryDirectory() as tmp:
        series = tiny_series(Path(tmp))
        counts = {"find": 0, "decode": 0, "batch_decode": 0, "checkpoint_keys": 0, "runtime": 0,
                  "step_file_reads": 0}
        counting(counts)
        config = dict(path=series, out=Path(tmp) / "out", task="basic_arithmetic", num_prompts=2, samples=2,
                      max_new_tokens=24, device="cpu", dtype="fp32", report=True)
        results = {}
        for run in ("first", "cached_rerun"):
            for key in counts:
                counts[key] = 0
            analyze(AnalyzeConfig(**config), progress=False)
            results[run] = dict(counts)
        responses = 3 * 2 * 2
    print(f"reasonlens {reasonlens.__version__} from {Path(reasonlens.__file__).parent}", file=sys.stderr)
    for run, calls in results.items():
        print(f"{run}: {calls} for {responses} responses", file=sys.stderr)
    print(json.dumps({"responses": responses, **{f"{run}_{k}": v for run, c in results.items() for k, v in c.items()},
                      "reasonlens": str(Path(reasonlens.__file__).parent)}))


if __name__ == "__main__":
    main()
