"""`analyze` on a verl FSDP series as verl saves it (per-rank shards) vs the same series as HF folders.

Run: HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/verl_fsdp_series.py [--prompts 2 --samples 2 --tokens 32]
Three checkpoints of the bundled SmolLM2-135M-Instruct (fp32, each moved by a seeded step) are written
twice: by a 2-rank gloo group exactly as verl's FSDPCheckpointManager writes them (tests/verl_writer.py:
``model_world_size_2_rank_R.pt`` + fsdp_config.json + huggingface/ without weights), and with
``save_pretrained`` (safetensors). Each series is analysed in its own child process (so peak RSS is its
own), the two alternating ``--repeats`` times, with the same task, prompts and seeds: the only difference
is how the weights are read (shards merged in memory vs safetensors). The two analyses must agree token
for token. Last line: JSON with the best wall time and peak RSS (VmHWM) of each, their ratios, the load
stage, and wall time less generation (the same work in both, and the noisiest stage on a shared machine).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STEPS = (10, 20, 30)


def build_series(tmp: Path) -> tuple[Path, Path]:
    """(verl series, HF series) of the same three checkpoints."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from reasonlens.models.bundled import bundled_model_dir

    sys.path.insert(0, str(ROOT / "tests"))
    from verl_writer import write_verl_fsdp

    hf_series, verl_series = tmp / "hf", tmp / "verl"
    for step in STEPS:
        model = AutoModelForCausalLM.from_pretrained(bundled_model_dir(), dtype=torch.float32)
        generator = torch.Generator().manual_seed(step)
        with torch.no_grad():
            for param in model.parameters():
                param.add_(1e-3 * param.std() * torch.randn(param.shape, generator=generator))
        model.save_pretrained(hf_series / f"global_step_{step}")
        AutoTokenizer.from_pretrained(bundled_model_dir()).save_pretrained(hf_series / f"global_step_{step}")
    write_verl_fsdp([(hf_series / f"global_step_{s}", verl_series / f"global_step_{s}" / "actor", "fsdp2")
                     for s in STEPS], threads=1)
    return verl_series, hf_series


def child(series: str, out: str, prompts: int, samples: int, tokens: int) -> None:
    """One analysis in this process; prints wall time, peak RSS and stage seconds as JSON."""
    import warnings

    from reasonlens.analysis.config import AnalyzeConfig
    from reasonlens.analysis.run import analyze

    warnings.simplefilter("ignore")
    start = time.perf_counter()
    summary = analyze(AnalyzeConfig(path=series, out=Path(out), task="basic_arithmetic", num_prompts=prompts,
                                    samples=samples, max_new_tokens=tokens, device="cpu", dtype="fp32",
                                    threads=1, report=False), progress=False).summary
    print(json.dumps({"wall_s": time.perf_counter() - start, "stage_seconds": summary["stage_seconds"],
                      "peak_rss_mib": peak_rss_mib()}))


def peak_rss_mib() -> float:
    """This process's peak resident memory (VmHWM: unlike ru_maxrss, not inherited from the parent at exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def run_child(series: Path, out: Path, args) -> dict:
    done = subprocess.run([sys.executable, __file__, "--child", str(series), str(out), str(args.prompts),
                           str(args.samples), str(args.tokens)], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def same_tokens(a: Path, b: Path) -> bool:
    """Both analyses sampled the same tokens with the same scores (to float32 round-off)."""
    import numpy as np
    import pandas as pd

    left, right = pd.read_parquet(a / "rollouts.parquet"), pd.read_parquet(b / "rollouts.parquet")
    return (left["token_ids"].map(list).tolist() == right["token_ids"].map(list).tolist()
            and all(np.allclose(x, y, atol=1e-5) for x, y in zip(left["entropies"], right["entropies"])))


def cpu_capability() -> str:
    import torch

    return torch.backends.cpu.get_cpu_capability()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=2)
    parser.add_argument("--samples", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=None, help="keep (and reuse) the two series here")
    parser.add_argument("--child", nargs=5, default=None)
    args = parser.parse_args()
    if args.child:
        series, out, prompts, samples, tokens = args.child
        return child(series, out, int(prompts), int(samples), int(tokens))
    with tempfile.TemporaryDirectory() as tmp:
        work = args.workdir or Path(tmp)
        built = (work / "verl").is_dir() and (work / "hf").is_dir()
        verl_series, hf_series = (work / "verl", work / "hf") if built else build_series(work)
        runs = {"verl_fsdp": [], "hf": []}
        for repeat in range(args.repeats):
            for name, series in (("verl_fsdp", verl_series), ("hf", hf_series))[:: 1 if repeat % 2 == 0 else -1]:
                runs[name].append(run_child(series, Path(tmp) / f"out-{name}-{repeat}", args))
        agree = same_tokens(Path(tmp) / "out-verl_fsdp-0", Path(tmp) / "out-hf-0")
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "child"}
    best = {name: min(r["wall_s"] for r in rs) for name, rs in runs.items()}
    peak = {name: max(r["peak_rss_mib"] for r in rs) for name, rs in runs.items()}
    load = {name: min(r["stage_seconds"].get("load", 0.0) for r in rs) for name, rs in runs.items()}
    # generation is the same work in both arms and the noisiest stage on a shared machine: compare the rest too
    rest = {name: min(r["wall_s"] - r["stage_seconds"].get("generate", 0.0) for r in rs) for name, rs in runs.items()}
    for name, label in (("verl_fsdp", "verl FSDP shards"), ("hf", "HF folders")):
        print(f"{label:>16}: {best[name]:.1f} s, peak {peak[name]:.0f} MiB, load {load[name]:.2f} s")
    print(json.dumps({"machine": f"2-core AMD EPYC ({cpu_capability()}), no GPU, torch 1 thread, fp32",
                      "model": "SmolLM2-135M-Instruct fp32, 3 checkpoints, 2 ranks", "settings": settings,
                      "wall_s": best, "peak_rss_mib": peak, "load_s": load,
                      "wall_ratio_verl_over_hf": round(best["verl_fsdp"] / best["hf"], 3),
                      "peak_ratio_verl_over_hf": round(peak["verl_fsdp"] / peak["hf"], 3),
                      "wall_minus_generate_s": rest,
                      "wall_minus_generate_ratio": round(rest["verl_fsdp"] / rest["hf"], 3),
                      "same_tokens_and_entropies": agree, "runs": runs}))


if __name__ == "__main__":
    main()
