"""The generate stage: sample and score every checkpoint of a series, one cached step file each.

Each checkpoint's rollout table goes to ``OUT/rollouts/step_NNNNNN.parquet`` (with a JSON sidecar
holding its key: settings, problems and the checkpoint's weight files), written atomically as soon as
the checkpoint is done, so a killed run resumes where it stopped and a changed setting recomputes
instead of mixing results. `rollout_checkpoint` is the unit the distributed runner sends to workers.
"""

from __future__ import annotations

import dataclasses
import functools
import gc
from pathlib import Path

import pandas as pd

from reasonlens import columns as C
from reasonlens.analysis.config import AnalyzeConfig
from reasonlens.analysis.plan import Inputs, Plan
from reasonlens.records import cache_key, read_cached, step_file, write_cached

STAGE_VERSION = 2  # bump when the content of a rollouts/step_*.parquet file changes
_SAMPLING = ("num_prompts", "samples", "max_new_tokens", "temperature", "top_p", "score_temperature", "backend")


def rollout_series(plan: Plan, bar) -> Inputs:
    """Generate and score every checkpoint in this process, reusing the step files a previous run finished."""
    from reasonlens.models.hardware import resolve_device, set_threads

    set_threads(plan.config.threads)
    keyed, device, dtype = checkpoint_keys(plan, resolve_device(plan.config.device))
    overall = bar.add_task("checkpoints", total=len(keyed))
    for ckpt, (key, frame) in zip(plan.series.checkpoints, keyed):
        if frame is None:
            write_step(plan, ckpt, key, rollout_checkpoint(ckpt, plan, device, dtype, bar))
        bar.advance(overall)
    return series_inputs(plan, checkpoint_keys(plan, device)[0])


def checkpoint_keys(plan: Plan, device: str) -> tuple[list, str, str]:
    """Per checkpoint its cache key and cached table (None when it must be computed), and the device and
    dtype the computation runs with (recorded in ``plan.runtime``)."""
    import torch

    from reasonlens.models.hardware import resolve_dtype_name, runtime

    config = plan.config
    if device.startswith("cuda") and not torch.cuda.is_available():  # a cluster's GPU, not the driver's
        dtype = "bf16" if config.dtype == "auto" else config.dtype
    else:
        dtype = resolve_dtype_name(config.dtype, device)
    plan.runtime = runtime(device, dtype, torch.get_num_threads()) | {
        "backend": config.backend, "scoring": scoring_source(config), "ray": config.ray}
    if config.backend != "transformers":
        from reasonlens.models.vllm_generation import vllm_info

        plan.runtime["vllm"] = vllm_info(config.vllm_command if config.backend == "vllm-server" else None)
    settings = {name: getattr(config, name) for name in _SAMPLING} | {
        "device": device, "dtype": dtype, "problems": plan.problem_info, "seed": plan.problem_info["seed"]}
    problems_key = cache_key([dataclasses.asdict(p) for p in plan.problems])
    keyed = []
    for ckpt in plan.series.checkpoints:
        key = cache_key("rollouts", STAGE_VERSION, weights_fingerprint(ckpt.path), ckpt.step, settings, problems_key)
        keyed.append((key, read_cached(step_file(plan.out, ckpt.step), key)))
    return keyed, device, dtype


def write_step(plan: Plan, ckpt, key: str, frame: pd.DataFrame) -> None:
    """One checkpoint's rollout table, atomically, with its key and origin in the sidecar."""
    write_cached(step_file(plan.out, ckpt.step), key, frame, step=ckpt.step, checkpoint=ckpt.name,
                 path=str(ckpt.path), n_responses=len(frame))


def series_inputs(plan: Plan, keyed: list) -> Inputs:
    """The cached step tables of the whole series as the stage's output."""
    missing = [c.name for c, (_, frame) in zip(plan.series.checkpoints, keyed) if frame is None]
    if missing:
        raise RuntimeError(f"step files of {missing} were not written")
    checkpoints = [{"step": c.step, "name": c.name, "path": str(c.path), "kind": c.kind}
                   for c in plan.series.checkpoints]
    return Inputs(pd.concat([frame for _, frame in keyed], ignore_index=True),
                  tokenizer=tokenizer_spec(plan.series.checkpoints[-1]), checkpoints=checkpoints)


def tokenizer_spec(ckpt) -> str:
    """What decodes a checkpoint's tokens: the checkpoint itself, or for a PEFT adapter the base it was
    loaded on (the series was checked to share one vocabulary)."""
    return ckpt.adapter_base if ckpt.kind == "peft" and ckpt.adapter_base else str(ckpt.path)


def weights_fingerprint(path) -> list:
    """What identifies a checkpoint without reading its weights: the names, sizes and mtimes of its weight,
    config and tokenizer files only, so outputs written inside the folder never change it."""
    from reasonlens.sources.integrity import fingerprint_files

    path = Path(path)
    if not path.exists():  # hub id or bundled alias
        return [str(path)]
    files = [path] if path.is_file() else [f for f in fingerprint_files(path) if f.is_file()]
    return [str(path.resolve())] + [(f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in files]


def rollout_checkpoint(ckpt, plan: Plan, device: str, dtype: str, bar) -> pd.DataFrame:
    """One checkpoint's rollout table: sample K answers per problem, score every token, grade answers."""
    if plan.config.backend != "transformers":
        return _vllm_checkpoint(ckpt, plan, device, dtype, bar)
    from reasonlens.models.generation import generate
    from reasonlens.models.loading import load_model
    from reasonlens.models.scoring import score_tokens
    from reasonlens.sources.tasks import chat_prompt

    config = plan.config
    with plan.timed("load"):
        model, tokenizer = load_model(str(ckpt.path), device=device, dtype=dtype, adapter_base=ckpt.adapter_base,
                                      trust_remote_code=config.trust_remote_code)
    prompts = [chat_prompt(tokenizer, p.question, plan.examples) for p in plan.problems]
    task = bar.add_task(f"{ckpt.name}: generate", total=len(prompts) * config.samples)
    with plan.timed("generate"):
        generations = generate(model, tokenizer, prompts, samples=config.samples,
                               max_new_tokens=config.max_new_tokens, temperature=config.temperature,
                               top_p=config.top_p, seed=plan.problem_info["seed"], batch_size=config.batch_size,
                               score_temperature=config.score_temperature, progress=lambda n: bar.advance(task, n))
    if scoring_source(config) == "generation":
        scores = [(g.logprobs, g.entropies) for g in generations]
    else:
        bar.update(task, description=f"{ckpt.name}: score")
        with plan.timed("score"):
            scores = score_tokens(model, [g.prompt_token_ids for g in generations],
                                  [g.token_ids for g in generations], temperature=config.score_temperature,
                                  batch_size=config.batch_size, reducer=config.scoring)
    bar.remove_task(task)
    del model
    gc.collect()
    with plan.timed("grade"):
        return rollout_rows(ckpt.step, ckpt.name, plan.problems, generations, scores)


def _vllm_checkpoint(ckpt, plan: Plan, device: str, dtype: str, bar) -> pd.DataFrame:
    """vLLM samples (in this process, or a `vllm serve` started for the checkpoint), then our scorer scores."""
    from transformers import GenerationConfig

    from reasonlens.models import vllm_generation, vllm_server
    from reasonlens.models.bundled import bundled_model_dir
    from reasonlens.models.generation import stop_token_ids
    from reasonlens.models.loading import load_model, load_tokenizer
    from reasonlens.models.scoring import score_tokens
    from reasonlens.sources.specs import model_source
    from reasonlens.sources.tasks import chat_prompt

    config = plan.config
    folder = bundled_model_dir() if model_source(ckpt.path)[0] == "bundled" else ckpt.path
    if ckpt.kind == "verl-fsdp":  # vLLM reads folders: the merged shards, written once into the cache
        from reasonlens.models.verl import verl_model_folder

        folder = verl_model_folder(ckpt.path)
    tokenizer = load_tokenizer(folder, trust_remote_code=config.trust_remote_code)
    try:
        generation_config = GenerationConfig.from_pretrained(folder)
    except OSError:  # no generation_config.json: the tokenizer's EOS ends a response
        generation_config = None
    prompts = [tokenizer(chat_prompt(tokenizer, p.question, plan.examples), add_special_tokens=False)["input_ids"]
               for p in plan.problems]
    task = bar.add_task(f"{ckpt.name}: vLLM", total=len(prompts) * config.samples)
    timings: dict = {}
    engine = vllm_generation.generate_vllm if config.backend == "vllm" else functools.partial(
        vllm_server.generate_vllm_server, vllm_command=config.vllm_command)
    with plan.timed("generate"):
        generations = engine(str(folder), prompts, samples=config.samples, max_new_tokens=config.max_new_tokens,
                             temperature=config.temperature, top_p=config.top_p, seed=plan.problem_info["seed"],
                             dtype={"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}[dtype],
                             stop_token_ids=stop_token_ids(generation_config, tokenizer), tokenizer=tokenizer,
                             enforce_eager=config.vllm_eager, progress=lambda n: bar.advance(task, n),
                             timings=timings)
    plan.seconds["vllm_startup"] = plan.seconds.get("vllm_startup", 0.0) + timings.get("startup_s", 0.0)
    bar.update(task, description=f"{ckpt.name}: score")
    with plan.timed("load"):  # after vLLM has freed its engine: on a GPU both would not fit
        model, _ = load_model(str(ckpt.path), device=device, dtype=dtype, trust_remote_code=config.trust_remote_code)
    with plan.timed("score"):
        scores = score_tokens(model, [g.prompt_token_ids for g in generations], [g.token_ids for g in generations],
                              temperature=config.score_temperature, batch_size=config.batch_size,
                              reducer=config.scoring)
    bar.remove_task(task)
    del model
    gc.collect()
    with plan.timed("grade"):
        return rollout_rows(ckpt.step, ckpt.name, plan.problems, generations, scores)


def scoring_source(config: AnalyzeConfig) -> str:
    """Where token scores come from: "generation" (the logits transformers samples from: no extra pass)
    or "teacher-forced" (our scorer, one forward pass over prompt and response)."""
    return "generation" if config.backend == "transformers" and config.scoring == "auto" else "teacher-forced"


def rollout_rows(step: int, name: str, problems, generations, scores) -> pd.DataFrame:
    """The rollout table of one checkpoint from its generations and token scores (graded here)."""
    from reasonlens.sources.tasks import score_response

    rows = []
    for gen, (logprobs, entropies) in zip(generations, scores):
        problem = problems[gen.prompt_index]
        graded = score_response(gen.text, problem)
        rows.append({
            C.STEP: step, C.CHECKPOINT: name, C.PROMPT_ID: problem.prompt_id,
            C.SAMPLE_ID: gen.sample_id, C.PROMPT: problem.question, C.PROMPT_TOKEN_IDS: gen.prompt_token_ids,
            C.RESPONSE: gen.text, C.TOKEN_IDS: gen.token_ids, C.ANSWER: problem.answer, C.PRED: graded.pred,
            C.REWARD: graded.reward, C.CORRECT: graded.correct, C.N_TOKENS: len(gen.token_ids),
            C.TRUNCATED: gen.truncated, C.TOKEN_OFFSETS: [list(o) for o in gen.offsets],
            C.LOGPROBS: logprobs.tolist(), C.ENTROPIES: entropies.tolist(),
        })
    return pd.DataFrame(rows, columns=C.ROLLOUT_COLUMNS)
