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
from reasonlens.analysis.record import Record
from reasonlens.records import cache_key, read_cached, step_file, write_cached

STAGE_VERSION = 2  # bump when the content of a rollouts/step_*.parquet file changes
_SAMPLING = ("num_prompts", "samples", "max_new_tokens", "temperature", "top_p", "score_temperature", "backend")


def rollout_series(plan: Plan, bar) -> tuple[Inputs, Record]:
    """Generate and score every checkpoint in this process, reusing the step files a previous run finished."""
    from reasonlens.models.hardware import resolve_device, set_threads

    set_threads(plan.config.threads)
    record = Record(runtime=resolve_runtime(plan.config, resolve_device(plan.config.device)))
    device, dtype = record.runtime["device"], record.runtime["dtype"]
    keys = checkpoint_keys(plan, device, dtype)
    frames = cached_steps(plan, keys)
    overall = bar.add_task("checkpoints", total=len(keys))
    for i, ckpt in enumerate(plan.series.checkpoints):
        if frames[i] is None:
            frames[i] = rollout_checkpoint(ckpt, plan, device, dtype, record, bar)
            write_step(plan, ckpt, keys[i], frames[i])
        bar.advance(overall)
    return series_inputs(plan.series.checkpoints, frames), record


def resolve_runtime(config: AnalyzeConfig, device: str) -> dict:
    """What the series runs with, resolved once per run: device, dtype (``runtime["dtype"]``), threads,
    backend, scoring and, for the vLLM backends, the provenance of that vLLM."""
    import torch

    from reasonlens.models.hardware import resolve_dtype_name, runtime

    if device.startswith("cuda") and not torch.cuda.is_available():  # a cluster's GPU, not the driver's
        dtype = "bf16" if config.dtype == "auto" else config.dtype
    else:
        dtype = resolve_dtype_name(config.dtype, device)
    ran = runtime(device, dtype, torch.get_num_threads()) | {
        "backend": config.backend, "scoring": scoring_source(config), "ray": config.ray}
    if config.backend != "transformers":
        from reasonlens.models.vllm_generation import vllm_info

        ran["vllm"] = vllm_info(config.vllm_command if config.backend == "vllm-server" else None)
    return ran


def checkpoint_keys(plan: Plan, device: str, dtype: str) -> list[str]:
    """Each checkpoint's cache key: sampling settings, device, dtype, problems and its weight files."""
    config = plan.config
    settings = {name: getattr(config, name) for name in _SAMPLING} | {
        "device": device, "dtype": dtype, "problems": plan.problem_info, "seed": plan.problem_info["seed"]}
    problems_key = cache_key([dataclasses.asdict(p) for p in plan.problems])
    return [cache_key("rollouts", STAGE_VERSION, weights_fingerprint(ckpt.path), ckpt.step, settings, problems_key)
            for ckpt in plan.series.checkpoints]


def cached_steps(plan: Plan, keys: list[str]) -> list:
    """Each checkpoint's step table a previous run finished with the same key (None: to compute)."""
    return [read_cached(step_file(plan.out, ckpt.step), key) for ckpt, key in zip(plan.series.checkpoints, keys)]


def write_step(plan: Plan, ckpt, key: str, frame: pd.DataFrame) -> None:
    """One checkpoint's rollout table, atomically, with its key and origin in the sidecar."""
    write_cached(step_file(plan.out, ckpt.step), key, frame, step=ckpt.step, checkpoint=ckpt.name,
                 path=str(ckpt.path), n_responses=len(frame))


def series_inputs(checkpoints: list, frames: list) -> Inputs:
    """The step tables of ``checkpoints`` (in order) as the stage's output."""
    missing = [c.name for c, frame in zip(checkpoints, frames) if frame is None]
    if missing:
        raise RuntimeError(f"step files of {missing} were not written")
    return Inputs(pd.concat(frames, ignore_index=True), tokenizer=tokenizer_spec(checkpoints[-1]),
                  checkpoints=checkpoint_records(checkpoints))


def checkpoint_records(checkpoints: list) -> list[dict]:
    """The ``checkpoints`` entries of summary.json: step, name, path and kind of each."""
    return [{"step": c.step, "name": c.name, "path": str(c.path), "kind": c.kind} for c in checkpoints]


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


def rollout_checkpoint(ckpt, plan: Plan, device: str, dtype: str, record: Record, bar) -> pd.DataFrame:
    """One checkpoint's rollout table: sample K answers per problem, score every token, grade answers
    (stage timings added to ``record``)."""
    if plan.config.backend != "transformers":
        return _vllm_checkpoint(ckpt, plan, device, dtype, record, bar)
    from reasonlens.models.generation import generate
    from reasonlens.sources.tasks import chat_prompt

    config = plan.config
    model, tokenizer = load_checkpoint(ckpt, config, device, dtype, record)
    prompts = [chat_prompt(tokenizer, p.question, plan.examples) for p in plan.problems]
    task = bar.add_task(f"{ckpt.name}: generate", total=len(prompts) * config.samples)
    with record.timed("generate"):
        generations = generate(model, tokenizer, prompts, samples=config.samples,
                               max_new_tokens=config.max_new_tokens, temperature=config.temperature,
                               top_p=config.top_p, seed=plan.problem_info["seed"], batch_size=config.batch_size,
                               score_temperature=config.score_temperature, progress=lambda n: bar.advance(task, n))
    if scoring_source(config) == "generation":
        bar.remove_task(task)
        del model
        return _graded(ckpt, plan, generations, [(g.logprobs, g.entropies) for g in generations], record)
    return _score_and_grade(model, ckpt, plan, generations, record, bar, task)


def _vllm_checkpoint(ckpt, plan: Plan, device: str, dtype: str, record: Record, bar) -> pd.DataFrame:
    """vLLM samples (in this process, or a `vllm serve` started for the checkpoint), then our scorer scores."""
    from transformers import GenerationConfig

    from reasonlens.models import vllm_generation, vllm_server
    from reasonlens.models.bundled import bundled_model_dir
    from reasonlens.models.generation import stop_token_ids
    from reasonlens.models.hardware import TORCH_NAMES
    from reasonlens.models.loading import load_tokenizer
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
    with record.timed("generate"):
        generations = engine(str(folder), prompts, samples=config.samples, max_new_tokens=config.max_new_tokens,
                             temperature=config.temperature, top_p=config.top_p, seed=plan.problem_info["seed"],
                             dtype=TORCH_NAMES[dtype], stop_token_ids=stop_token_ids(generation_config, tokenizer),
                             tokenizer=tokenizer, enforce_eager=config.vllm_eager,
                             progress=lambda n: bar.advance(task, n), timings=timings)
    record.add_seconds({"vllm_startup": timings.get("startup_s", 0.0)})
    # loaded after vLLM has freed its engine: on a GPU both would not fit
    model, _ = load_checkpoint(ckpt, config, device, dtype, record)
    return _score_and_grade(model, ckpt, plan, generations, record, bar, task)


def load_checkpoint(ckpt, config: AnalyzeConfig, device: str, dtype: str, record: Record):
    """``(model, tokenizer)`` of one checkpoint (a PEFT adapter on its base), timed as "load"."""
    from reasonlens.models.loading import load_model

    with record.timed("load"):
        return load_model(str(ckpt.path), device=device, dtype=dtype, adapter_base=ckpt.adapter_base,
                          trust_remote_code=config.trust_remote_code)


def _score_and_grade(model, ckpt, plan: Plan, generations, record: Record, bar, task) -> pd.DataFrame:
    """Score the generations teacher-forced, free the model, then grade: the tail of both backends."""
    from reasonlens.models.scoring import score_tokens

    config = plan.config
    bar.update(task, description=f"{ckpt.name}: score")
    with record.timed("score"):
        scores = score_tokens(model, [g.prompt_token_ids for g in generations], [g.token_ids for g in generations],
                              temperature=config.score_temperature, batch_size=config.batch_size,
                              reducer=config.scoring)
    bar.remove_task(task)
    del model
    return _graded(ckpt, plan, generations, scores, record)


def _graded(ckpt, plan: Plan, generations, scores, record: Record) -> pd.DataFrame:
    """The model is freed (the caller dropped it), then the answers are graded into the rollout table."""
    gc.collect()
    with record.timed("grade"):
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
