"""Chunked token scoring vs the naive full-logits path on the bundled SmolLM2-135M (V=49152), CPU.

Run: HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_scoring.py [--batch 2 --prompt 64 --response 448]
Each path runs in its own subprocess (so freed memory of one can't hide the other's peak):
  decoder  - the decoder body only (no lm_head): the floor any scorer pays;
  chunked  - `score_tokens` (decoder once, lm_head over chunks of response rows, reduce each chunk);
  naive    - model(...).logits for the whole sequence -> float -> log_softmax -> gather, entropy.
Peak memory = the process's peak RSS (VmHWM, reset through /proc/self/clear_refs after set-up) minus
its RSS before the timed runs; torch CPU allocations are invisible to tracemalloc, RSS sees them.
Also printed: the analytic size of the naive path's full-sequence float32 logits. Last line: JSON.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _naive(model, prompts, responses, temperature):
    """The textbook path: full (B, T, V) logits, upcast, log_softmax, then pick the response rows."""
    import torch

    ids = torch.tensor([p + r for p, r in zip(prompts, responses)])  # (B, T), equal lengths: no padding
    logp_all = torch.log_softmax(model(ids).logits.float() / temperature, dim=-1)  # (B, T, V) float32
    entropy_all = -(logp_all.exp() * logp_all).sum(-1)  # (B, T)
    start, targets = len(prompts[0]), torch.tensor(responses)  # (B, R)
    logp = logp_all[:, start - 1:-1].gather(-1, targets[..., None]).squeeze(-1)  # (B, R)
    return [(a.numpy(), b.numpy()) for a, b in zip(logp, entropy_all[:, start - 1:-1])]


def _run_path(mode, model, prompts, responses, chunk_rows):
    import torch

    from reasonlens.models.scoring import lm_head_parts, score_tokens

    with torch.inference_mode():
        if mode == "decoder":
            body = lm_head_parts(model)[0]
            body(input_ids=torch.tensor([p + r for p, r in zip(prompts, responses)]), use_cache=False)
            return None
        if mode == "naive":
            return _naive(model, prompts, responses, 1.0)
    return score_tokens(model, prompts, responses, batch_size=len(prompts), chunk_rows=chunk_rows)


def worker(args) -> None:
    """One path in this process: warm up, reset the RSS peak, time `repeats` runs, print JSON."""
    import numpy as np
    import torch

    from reasonlens.models.loading import load_model

    torch.set_num_threads(args.threads)
    model, _ = load_model(args.model, device="cpu", dtype=args.dtype)
    rng = np.random.default_rng(0)
    vocab = model.config.vocab_size
    prompts = [rng.integers(0, vocab, args.prompt).tolist() for _ in range(args.batch)]
    responses = [rng.integers(0, vocab, args.response).tolist() for _ in range(args.batch)]
    _run_path(args.worker, model, prompts[:1], [r[:8] for r in responses[:1]], args.chunk_rows)  # warm-up
    before = _rss_kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := current RSS
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        out = _run_path(args.worker, model, prompts, responses, args.chunk_rows)
        times.append(time.perf_counter() - start)
    peak = (_rss_kib("VmHWM") - before) * 1024
    if out is not None and args.save:
        np.save(args.save, np.stack([np.concatenate([a for a, _ in out]), np.concatenate([b for _, b in out])]))
    print(json.dumps({"mode": args.worker, "seconds": min(times), "peak_bytes": peak}))


def _spawn(args, mode, chunk_rows, save) -> dict:
    cmd = [sys.executable, __file__, "--worker", mode, "--chunk-rows", str(chunk_rows), "--save", save]
    for name in ("model", "dtype", "batch", "prompt", "response", "repeats", "threads"):
        cmd += [f"--{name}", str(getattr(args, name))]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(args) -> None:
    import numpy as np

    from reasonlens.models.loading import load_model

    vocab = load_model(args.model, device="cpu", dtype=args.dtype)[0].config.vocab_size  # converts once
    rows, tokens = args.batch * args.response, args.batch * (args.prompt + args.response)
    with tempfile.TemporaryDirectory() as tmp:
        runs = {"decoder": _spawn(args, "decoder", args.chunk_rows, f"{tmp}/decoder.npy"),
                "chunked": _spawn(args, "chunked", args.chunk_rows, f"{tmp}/chunked.npy"),
                "naive": _spawn(args, "naive", args.chunk_rows, f"{tmp}/naive.npy")}
        chunked, naive = np.load(f"{tmp}/chunked.npy"), np.load(f"{tmp}/naive.npy")
    max_rel = float(np.max(np.abs(chunked - naive) / np.maximum(np.abs(naive), 1e-3)))
    for mode, run in runs.items():
        print(f"{mode:8s} {run['seconds']:7.3f} s   peak +{run['peak_bytes'] / 2**20:8.1f} MiB")
    logits_fp32 = tokens * vocab * 4
    buffers = min(args.chunk_rows, rows) * vocab * (4 + 4 + 2)  # float32 logits + work, bf16 lm_head output
    print(f"naive full-sequence float32 logits alone: {logits_fp32 / 2**20:.1f} MiB ({tokens} tokens x V={vocab}); "
          f"chunked buffers: {buffers / 2**20:.1f} MiB")
    result = {
        "model": args.model, "dtype": args.dtype, "threads": args.threads, "tokens": tokens, "rows_scored": rows,
        "chunk_rows": args.chunk_rows, "vocab": vocab, "seconds": {m: r["seconds"] for m, r in runs.items()},
        "peak_mib": {m: round(r["peak_bytes"] / 2**20, 1) for m, r in runs.items()},
        "naive_fp32_logits_mib": round(logits_fp32 / 2**20, 1), "chunk_buffers_mib": round(buffers / 2**20, 1),
        "time_ratio_naive_over_chunked": runs["naive"]["seconds"] / runs["chunked"]["seconds"],
        "memory_ratio_naive_over_chunked": runs["naive"]["peak_bytes"] / max(runs["chunked"]["peak_bytes"], 1),
        "chunked_over_decoder_time": runs["chunked"]["seconds"] / runs["decoder"]["seconds"],
        "max_rel_diff_chunked_vs_naive": max_rel,
    }
    print(json.dumps(result))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--dtype", default="bf16")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--prompt", type=int, default=64, help="prompt tokens per sequence")
    parser.add_argument("--response", type=int, default=448, help="response tokens per sequence")
    parser.add_argument("--chunk-rows", dest="chunk_rows", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is steadiest on a shared CPU)")
    parser.add_argument("--worker", choices=["decoder", "chunked", "naive"], help=argparse.SUPPRESS)
    parser.add_argument("--save", help=argparse.SUPPRESS)
    return parser


if __name__ == "__main__":
    arguments = _parser().parse_args()
    worker(arguments) if arguments.worker else main(arguments)
