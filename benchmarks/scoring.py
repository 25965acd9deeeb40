"""Token-scoring benchmark: ours (`score_tokens`) against the floor and the naive path, one JSON contract.

Run (CPU, bundled SmolLM2-135M, fp32, 4 x 128 tokens, ~40 s of CPU time; without --quick 4 x 512, ~4 min):
  taskset -c 0 env OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/scoring.py --quick
Run (CUDA, random-init Qwen2.5-1.5B and -7B shapes, bf16, 16k and 32k completion tokens; no weights travel):
  .venv/bin/python benchmarks/scoring.py --gpu

Paths, all on the same batch of equal-length sequences (prompt + response, no padding):
  floor - the unavoidable work: the decoder body once, then the lm_head matmul in the model's dtype over
          the response rows only; no upcast, no softmax. Its matmul runs in the same row chunks as ours,
          into one reused buffer: a single (N, V) matmul would add N x V outputs of memory no scorer needs,
          and it is also slower: on CPU (SmolLM2, fp32, one AVX2 thread, 1792 rows) 1.82 s of CPU time
          against 1.54 s in 256-row chunks (median of 5; the fresh pages of a 352 MB output cost).
  naive - model(ids).logits for every position -> float -> log_softmax -> gather and entropy.
  ours  - `score_tokens` (decoder once, lm_head over chunks of response rows, each chunk reduced at once);
          on CUDA also `ours_torch` (reducer="torch") beside the default fused Triton reducer.
          Also reported: ours' largest relative difference from naive (max |a - b| / max(|b|, 1e-3)).
  liger - (--gpu, where liger-kernel imports) decoder once, then Liger's fused linear entropy over the
          response rows (benchmarks/_scoring_checks.py says which of its implementations ran).
--gpu also checks every path against float64 on a slice (`_scoring_checks.fp64_errors`). Every case flags
ours above 1.10x the floor's time (CPU time too, on CPU) or memory ("flags"). --dry-run runs the --gpu
cases at a toy shape on CPU (fp32, the fused kernel in Triton's interpreter), so that
benchmarks/gpu_check.sh is tested without a GPU.
Time: one process, the paths alternate within each repetition (so drifting machine load hits them all
alike) after one untimed full-size run each (kernel compilation, allocator warm-up); median per path of
the wall-clock seconds and of the process's CPU seconds (time.process_time: on a CPU shared with other
jobs, the time-slicing that inflates wall-clock seconds leaves these alone; meaningless on CUDA).
Memory: the peak *above* what is held before the call (weights, inputs). CPU: one forked child per path
(forked before any timed run, sharing the loaded model), glibc's mmap threshold fixed so RSS follows live
tensors, a small warm-up, malloc_trim, VmHWM reset through /proc/self/clear_refs, one full run, peak =
VmHWM - VmRSS before (torch CPU allocations are invisible to tracemalloc; RSS sees them). CUDA:
torch.cuda.max_memory_allocated after a reset, minus memory_allocated before; a path that runs out of
memory gets null and is not timed.
Output: one line per case, then the last line, a JSON object: time_ratio_vs_floor and mem_ratio_vs_floor
(ours / floor; with several cases the worst case's), device, dtype, per-case raw seconds and MiB, and the
machine (CPU model, torch.backends.cpu.get_cpu_capability(), threads, GPU name).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import multiprocessing
import os
import platform
import statistics
import time
from functools import partial
from pathlib import Path

from _scoring_checks import (RATIO_LIMIT, fp64_errors, liger_path, liger_scorer, max_rel_diff,  # noqa: E402
                             ratio_flags, response_rows)

# Qwen2.5 configurations (their config.json). The vocabulary is 151936 for both, as asked; the real 7B
# embedding is padded to 152064 rows (0.08% more lm_head work).
QWEN_SHAPES = {
    "1.5b": dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
                 num_key_value_heads=2, tie_word_embeddings=True),
    "7b": dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
               num_key_value_heads=4, tie_word_embeddings=False),
}
QWEN_COMMON = dict(vocab_size=151936, max_position_embeddings=32768, rope_theta=1e6, rms_norm_eps=1e-6,
                   hidden_act="silu", use_sliding_window=False)
GPU_TOKENS = {16384: (4, 4096), 32768: (4, 8192)}  # completion tokens -> (batch, response tokens per sequence)
# --dry-run: the --gpu cases at a toy size on CPU, the fused kernel in Triton's interpreter (seconds).
DRY_SHAPE = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, tie_word_embeddings=False, vocab_size=8192)
DRY_TOKENS = {112: (2, 56)}
DRY_CHUNK_ROWS = 32  # several chunks per batch, as at full size


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _floor(model, prompts, responses, *, chunk_rows):
    """Decoder once + lm_head over the response rows in ``chunk_rows`` chunks into one buffer; returns None."""
    import torch

    rows, _, weight, bias = response_rows(model, prompts, responses)  # (N, H)
    out = torch.empty(min(chunk_rows, len(rows)), weight.shape[0], dtype=weight.dtype, device=weight.device)
    for first in range(0, len(rows), chunk_rows):
        chunk = rows[first:first + chunk_rows]
        torch.matmul(chunk, weight.t(), out=out[:len(chunk)])  # (C, V) in the model's dtype
        if bias is not None:
            out[:len(chunk)].add_(bias)
    return None


def _naive(model, prompts, responses):
    """The textbook path: full (B, T, V) logits, upcast, log_softmax, then pick the response rows."""
    import torch

    device = model.get_output_embeddings().weight.device
    ids = torch.tensor([p + r for p, r in zip(prompts, responses)], device=device)  # (B, T)
    logp_all = torch.log_softmax(model(ids).logits.float(), dim=-1)  # (B, T, V) float32
    entropy_all = -(logp_all.exp() * logp_all).sum(-1)  # (B, T)
    start, targets = len(prompts[0]), torch.tensor(responses, device=device)  # (B, R)
    logp = logp_all[:, start - 1:-1].gather(-1, targets[..., None]).squeeze(-1)  # (B, R)
    return torch.stack([logp.flatten(), entropy_all[:, start - 1:-1].flatten()]).cpu().numpy()  # (2, N)


def _ours(model, prompts, responses, *, reducer, chunk_rows):
    """`score_tokens` on the whole batch -> (2, N) array of logprobs and entropies."""
    import numpy as np

    from reasonlens.models.scoring import score_tokens

    kwargs = {} if reducer is None else {"reducer": reducer}  # None: the library's default
    scored = score_tokens(model, prompts, responses, batch_size=len(prompts), chunk_rows=chunk_rows, **kwargs)
    return np.stack([np.concatenate([a for a, _ in scored]), np.concatenate([b for _, b in scored])])


def _call(path, model, prompts, responses, sync):
    import torch

    with torch.inference_mode():
        out = path(model, prompts, responses)
        sync()
    return out


def _time_paths(paths, model, prompts, responses, repeats, sync) -> tuple[dict, dict, dict]:
    """Median wall and process-CPU seconds per path, the paths alternating in every repetition; outputs."""
    outputs = {name: _call(path, model, prompts, responses, sync) for name, path in paths.items()}  # warm-up
    wall: dict[str, list[float]] = {name: [] for name in paths}
    cpu: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(repeats):
        for name, path in paths.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            _call(path, model, prompts, responses, sync)
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    median = {name: statistics.median(ts) for name, ts in wall.items()}
    return median, {name: statistics.median(ts) for name, ts in cpu.items()}, outputs


def _cpu_peak_child(path, model, prompts, responses, conn) -> None:
    """In a forked child: warm up on a tiny input, reset VmHWM, run once, send the peak in bytes."""
    libc = ctypes.CDLL(None)
    # RSS should follow live tensors, not glibc's retention policy: with its dynamic mmap threshold, freed
    # multi-MiB blocks stay in the heap, and identical runs differed by up to 30 MiB. Fixed threshold
    # (M_MMAP_THRESHOLD = -3): blocks >= 256 KiB are mmapped and unmapped on free; then return the free
    # heap pages left by the model loading and the warm-up (malloc_trim).
    libc.mallopt(-3, 256 * 1024)
    _call(path, model, prompts[:1], [r[:8] for r in responses[:1]], lambda: None)
    libc.malloc_trim(0)
    before = _rss_kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := current RSS
    _call(path, model, prompts, responses, lambda: None)
    conn.send((_rss_kib("VmHWM") - before) * 1024)
    conn.close()


def _cpu_peaks(paths, model, prompts, responses) -> dict:
    context = multiprocessing.get_context("fork")  # the child shares the loaded model, copy-on-write
    peaks = {}
    for name, path in paths.items():
        receive, send = context.Pipe(duplex=False)
        child = context.Process(target=_cpu_peak_child, args=(path, model, prompts, responses, send))
        child.start()
        child.join()  # the one int it sends fits the pipe's buffer
        if child.exitcode != 0:
            raise RuntimeError(f"the {name!r} memory run failed (exit code {child.exitcode}); see its traceback above")
        peaks[name] = receive.recv()
    return peaks


def _gpu_peaks(paths, model, prompts, responses) -> dict:
    import torch

    peaks = {}
    for name, path in paths.items():
        torch.cuda.empty_cache()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        try:
            _call(path, model, prompts, responses, torch.cuda.synchronize)
            peaks[name] = torch.cuda.max_memory_allocated() - before
        except torch.cuda.OutOfMemoryError:
            peaks[name] = None  # e.g. the naive path at 32k tokens on an 80 GB card
    return peaks


def _paths(device: str, chunk_rows: int | None) -> dict:
    """The CPU run's paths; the floor's chunk is ours (the library default unless --chunk-rows)."""
    from reasonlens.models import scoring

    return {"floor": partial(_floor, chunk_rows=chunk_rows or scoring.CPU_CHUNK_ROWS), "naive": _naive,
            "ours": partial(_ours, reducer=None, chunk_rows=chunk_rows)}


def _gpu_paths(chunk_rows: int | None, reducer: str | None, liger) -> dict:
    """The GPU run's paths: ours with ``reducer`` (None: the library's default) and the torch reducer, Liger's
    op where it runs (``liger``: its scoring path or None)."""
    from reasonlens.models import scoring

    paths = {"floor": partial(_floor, chunk_rows=chunk_rows or scoring.FUSED_CHUNK_ROWS), "naive": _naive,
             "ours": partial(_ours, reducer=reducer, chunk_rows=chunk_rows),
             "ours_torch": partial(_ours, reducer="torch", chunk_rows=chunk_rows)}
    return paths if liger is None else {**paths, "liger": liger}


def run_case(model, label, paths, *, batch, prompt, response, chunk_rows, repeats) -> tuple[dict, dict]:
    """Peaks, then alternating times, of every path on ``batch`` random sequences of prompt + response tokens.

    Returns the case's JSON record and, for later checks, (prompts, responses, outputs of each path).
    """
    import numpy as np
    import torch

    device = model.get_output_embeddings().weight.device.type
    rng = np.random.default_rng(0)
    vocab = model.config.vocab_size
    prompts = [rng.integers(0, vocab, prompt).tolist() for _ in range(batch)]
    responses = [rng.integers(0, vocab, response).tolist() for _ in range(batch)]
    peaks = (_cpu_peaks if device == "cpu" else _gpu_peaks)(paths, model, prompts, responses)
    paths = {name: path for name, path in paths.items() if peaks[name] is not None}  # drop what ran out of memory
    sync = (lambda: None) if device == "cpu" else torch.cuda.synchronize
    seconds, cpu_seconds, outputs = _time_paths(paths, model, prompts, responses, repeats, sync)
    case = {"case": label, "batch": batch, "prompt": prompt, "response": response, "rows_scored": batch * response,
            "vocab": vocab, "chunk_rows": chunk_rows, "repeats": repeats, "seconds": seconds,
            **({"cpu_seconds": cpu_seconds} if device == "cpu" else {}),
            "peak_mib": {name: None if peak is None else round(peak / 2**20, 1) for name, peak in peaks.items()}}
    return ({**case, **_ratios(seconds, cpu_seconds if device == "cpu" else None, peaks, outputs)},
            (prompts, responses, outputs))


def _ratios(seconds, cpu_seconds, peaks, outputs) -> dict:
    """Each path's time and memory over the floor's; each scorer's largest relative difference from naive."""
    ratios = {}
    for name in [name for name in seconds if name != "floor"]:
        ratios[f"{name}_time_ratio_vs_floor"] = seconds[name] / seconds["floor"]
        if cpu_seconds is not None:
            ratios[f"{name}_cpu_time_ratio_vs_floor"] = cpu_seconds[name] / cpu_seconds["floor"]
        ratios[f"{name}_mem_ratio_vs_floor"] = peaks[name] / max(peaks["floor"], 1)
        if name != "naive" and "naive" in outputs:
            ratios[f"{name}_max_rel_diff_vs_naive"] = max_rel_diff(outputs[name], outputs["naive"])
    return ratios


def _qwen(shape: dict, device: str, dtype):
    """A random-init Qwen2.5 of ``shape`` (the shapes are what cost, not the weights), built in ``dtype``."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(**{**QWEN_COMMON, **shape})
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # build in bf16: a float32 7B would need 30 GB on the way
    try:
        with torch.device(device):
            model = Qwen2ForCausalLM(config)
    finally:
        torch.set_default_dtype(default)
    return model.eval()


def machine() -> dict:
    """Where the numbers come from: CPU model and capability, threads, versions, GPU."""
    import torch

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    info = {"cpu": cpu, "cpu_capability": torch.backends.cpu.get_cpu_capability(), "threads": torch.get_num_threads(),
            "torch": torch.__version__, "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None}
    try:
        import triton

        info["triton"] = triton.__version__
    except ImportError:
        info["triton"] = None
    return info


def _cpu_cases(args) -> tuple[list[dict], str]:
    from reasonlens.models.loading import load_model

    model, _ = load_model(args.model, device="cpu", dtype=args.dtype)
    label = f"{args.model} {args.batch}x{args.prompt + args.response}"
    case, _ = run_case(model, label, _paths("cpu", args.chunk_rows), batch=args.batch, prompt=args.prompt,
                       response=args.response, chunk_rows=args.chunk_rows, repeats=args.repeats)
    return [{**case, "flags": ratio_flags(case)}], "cpu"


def _gpu_cases(args) -> tuple[list[dict], str]:
    """Every (shape, tokens) case on CUDA in bf16; with --dry-run the toy case on CPU in float32."""
    import torch

    from reasonlens.models.scoring import select_reducer

    if not args.dry_run and not torch.cuda.is_available():
        raise SystemExit("--gpu needs a CUDA device; torch sees none (run --quick, or --dry-run, on CPU).")
    device, dtype = ("cpu", torch.float32) if args.dry_run else ("cuda", torch.bfloat16)
    reducer = "triton" if args.dry_run else None  # on CPU "auto" means torch; the interpreter runs triton
    ours = select_reducer(reducer or "auto", torch.device(device))[0].__name__  # fused unless triton is missing
    liger, liger_impl = liger_scorer(device, dtype)
    shapes = {"tiny": DRY_SHAPE} if args.dry_run else {size: QWEN_SHAPES[size] for size in args.models}
    tokens = DRY_TOKENS if args.dry_run else {n: GPU_TOKENS[n] for n in args.tokens}
    chunk_rows = args.chunk_rows or (DRY_CHUNK_ROWS if args.dry_run else None)
    cases = []
    for size, shape in shapes.items():
        model = _qwen(shape, device, dtype)
        for batch, response in tokens.values():
            prompt = response // 8  # a prompt an eighth of the response, as in long reasoning rollouts
            paths = _gpu_paths(chunk_rows, reducer, None if liger is None else liger_path(liger))
            case, (prompts, responses, outputs) = run_case(
                model, f"qwen2.5-{size} {batch}x({prompt}+{response})", paths, batch=batch, prompt=prompt,
                response=response, chunk_rows=chunk_rows, repeats=args.repeats)
            case.update(ours_reducer=ours, liger_impl=liger_impl,
                        **fp64_errors(model, prompts, responses, outputs, fused=ours == "logprob_entropy_fused"))
            cases.append({**case, "flags": ratio_flags(case)})
            print(json.dumps(cases[-1]), flush=True)
        del model
        if device == "cuda":
            torch.cuda.empty_cache()
    return cases, device


def main(args) -> None:
    import torch

    torch.set_num_threads(args.threads)
    gpu = args.gpu or args.dry_run
    cases, device = _gpu_cases(args) if gpu else _cpu_cases(args)
    if not gpu:
        print(json.dumps(cases[0]))
    worst = max(cases, key=lambda c: c["ours_time_ratio_vs_floor"])
    print(json.dumps({"time_ratio_vs_floor": worst["ours_time_ratio_vs_floor"],
                      "cpu_time_ratio_vs_floor": worst.get("ours_cpu_time_ratio_vs_floor"),
                      "mem_ratio_vs_floor": max(c["ours_mem_ratio_vs_floor"] for c in cases),
                      "device": device, "dtype": "fp32" if args.dry_run else "bf16" if gpu else args.dtype,
                      "worst_case": worst["case"], "ratio_limit": RATIO_LIMIT, "dry_run": args.dry_run,
                      "flags": [flag for case in cases for flag in case["flags"]],
                      "cases": cases, "machine": machine()}))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="CPU, SmolLM2 fp32, 4 x (16 + 112) tokens, 3 repeats (overrides --prompt, --response, "
                             "--repeats; ~40 s of CPU time)")
    parser.add_argument("--gpu", action="store_true", help="CUDA, random-init Qwen2.5 shapes in bf16")
    parser.add_argument("--dry-run", dest="dry_run", action="store_true",
                        help="the --gpu cases at a toy shape on CPU in fp32, the fused kernel in Triton's "
                             "interpreter (sets TRITON_INTERPRET=1; seconds)")
    parser.add_argument("--model", default="smollm2", help="CPU: model spec for load_model")
    parser.add_argument("--dtype", default="fp32", help="CPU: fp32 (bf16 is emulated on AVX2-only CPUs)")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--prompt", type=int, default=64, help="CPU: prompt tokens per sequence")
    parser.add_argument("--response", type=int, default=448, help="CPU: response tokens per sequence")
    parser.add_argument("--models", nargs="+", default=list(QWEN_SHAPES), choices=list(QWEN_SHAPES), help="--gpu")
    parser.add_argument("--tokens", nargs="+", type=int, default=list(GPU_TOKENS), choices=list(GPU_TOKENS),
                        help="--gpu: completion tokens per batch")
    parser.add_argument("--chunk-rows", dest="chunk_rows", type=int, help="rows per lm_head chunk (library default)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="CPU torch threads (1 is steadiest on a shared CPU)")
    return parser


if __name__ == "__main__":
    arguments = _parser().parse_args()
    if arguments.quick:
        arguments.prompt, arguments.response, arguments.repeats = 16, 112, 3
    if arguments.dry_run:
        os.environ["TRITON_INTERPRET"] = "1"  # read when the kernel is decorated, i.e. on first import
    main(arguments)
