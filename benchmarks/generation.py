"""Sampling throughput: vLLM in-process (`generate_vllm`) vs transformers (`generate`), bundled SmolLM2, CPU.

Run (vLLM's environment, which has both backends):
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 .venv-vllm/bin/python benchmarks/generation.py \
        [--prompts 16 --samples 4 --max-new-tokens 128 --temperature 0.6 --seed 0 --batch-size 16]

Both backends get the same prompt token ids (chat-templated problems of --task), seed and sampling
settings, in fp32. Generated tokens count the stop token of a response that stopped. tokens/s is given
over generation alone and, for vLLM, also over its whole call (engine start-up, i.e. load + compile,
included), since one engine is started per checkpoint, and with the scoring pass that vLLM's responses
need afterwards (``score_tokens``; ``generate`` scores while it samples). Also: the share of responses
with a \\boxed{} answer and the share graded correct (the backends sample differently, so these agree
only within sampling noise; ``*_noise_1sd`` is one binomial standard deviation of a share). Last line: JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time

DEMO_TASK = "basic_arithmetic:min_terms=2,max_terms=2,min_digits=1,max_digits=1"


def _summary(gens, problems, seconds: float) -> dict:
    from reasonlens.sources.tasks import score_response

    graded = [score_response(g.text, problems[g.prompt_index]) for g in gens]
    tokens = sum(len(g.token_ids) + (0 if g.truncated else 1) for g in gens)
    n = len(gens)
    return {"responses": n, "generated_tokens": tokens, "seconds": round(seconds, 2),
            "tokens_per_s": round(tokens / seconds, 1), "truncated_share": round(sum(g.truncated for g in gens) / n, 3),
            "boxed_share": round(sum(s.pred is not None for s in graded) / n, 3),
            "correct_share": round(sum(s.correct for s in graded) / n, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default=DEMO_TASK)
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--temperature", type=float, default=0.6)
    parser.add_argument("--top-p", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=16, help="transformers: sequences per generate call")
    parser.add_argument("--backends", default="transformers,vllm")
    parser.add_argument("--enforce-eager", action="store_true", help="vLLM without torch.compile")
    args = parser.parse_args()

    import torch

    from reasonlens.models.bundled import bundled_model_dir
    from reasonlens.models.generation import generate, stop_token_ids
    from reasonlens.models.loading import load_model
    from reasonlens.sources.tasks import chat_prompt, load_problems

    threads = int(os.environ.get("OMP_NUM_THREADS", "0")) or torch.get_num_threads()
    torch.set_num_threads(threads)
    path = bundled_model_dir()
    model, tokenizer = load_model(str(path), device="cpu", dtype="fp32")
    problems = load_problems(args.task, n=args.prompts, seed=args.seed)
    prompts = [chat_prompt(tokenizer, p.question) for p in problems]
    prompt_ids = tokenizer(prompts, add_special_tokens=False)["input_ids"]
    stops = stop_token_ids(model.generation_config, tokenizer)
    sampling = dict(samples=args.samples, max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                    top_p=args.top_p, seed=args.seed)
    result = {"model": "SmolLM2-135M-Instruct (bundled)", "dtype": "float32", "task": args.task,
              "prompts": len(prompts), **sampling, "torch_threads": threads,
              "cpu_affinity": sorted(os.sched_getaffinity(0)), "loadavg_start": os.getloadavg()}

    for backend in args.backends.split(","):
        if backend == "transformers":
            started = time.perf_counter()
            gens = generate(model, tokenizer, prompts, batch_size=args.batch_size, **sampling)
            result["transformers"] = {**_summary(gens, problems, time.perf_counter() - started),
                                      "batch_size": args.batch_size}
            assert [g.prompt_token_ids for g in gens[::args.samples]] == prompt_ids
        elif backend == "vllm":
            from reasonlens.models.vllm_generation import generate_vllm, vllm_info

            timings: dict = {}
            started = time.perf_counter()
            gens = generate_vllm(path, prompt_ids, dtype="float32", stop_token_ids=stops, tokenizer=tokenizer,
                                 enforce_eager=args.enforce_eager, timings=timings, **sampling)
            total = time.perf_counter() - started
            summary = _summary(gens, problems, timings["generate_s"])
            summary["tokens_per_s_incl_startup"] = round(summary["generated_tokens"] / total, 1)
            # `generate` scores tokens while it samples; vLLM's responses need a scoring pass afterwards
            from reasonlens.models.scoring import score_tokens

            started = time.perf_counter()
            score_tokens(model, [g.prompt_token_ids for g in gens], [g.token_ids for g in gens],
                         batch_size=args.batch_size)
            summary["score_s"] = round(time.perf_counter() - started, 2)
            summary["tokens_per_s_incl_startup_and_scoring"] = round(
                summary["generated_tokens"] / (total + summary["score_s"]), 1)
            result["vllm"] = {**summary, "call_seconds": round(total, 2),
                              **{k: round(v, 2) for k, v in timings.items()},
                              "enforce_eager": args.enforce_eager, **vllm_info()}
        else:
            raise SystemExit(f"unknown backend {backend!r}; expected transformers or vllm")

    if "transformers" in result and "vllm" in result:
        n = result["vllm"]["responses"]
        for share in ("boxed_share", "correct_share"):
            p = (result["vllm"][share] + result["transformers"][share]) / 2
            result[f"{share}_noise_1sd"] = round(math.sqrt(p * (1 - p) / n), 3)
        result["speedup_generation"] = round(result["vllm"]["tokens_per_s"] / result["transformers"]["tokens_per_s"], 2)
        result["speedup_incl_startup"] = round(
            result["vllm"]["tokens_per_s_incl_startup"] / result["transformers"]["tokens_per_s"], 2)
    result["loadavg_end"] = os.getloadavg()
    print(json.dumps(result))


if __name__ == "__main__":  # vLLM spawns worker processes that re-import this file
    main()
