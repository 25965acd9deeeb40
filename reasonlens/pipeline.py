"""`analyze()`: discover -> generate -> score -> tag -> aggregate -> detect -> render.

Each checkpoint's rollouts are written to ``OUT/rollouts/step_NNNNNN.parquet`` (atomically, with a JSON
sidecar holding the cache key) as soon as the checkpoint is done, so a killed run resumes where it stopped
and a changed setting recomputes instead of mixing results. Tagging and aggregation are cheap and rerun
every time, so a new lexicon never needs new generations.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import resource
import time
from pathlib import Path
from typing import Any, Optional, TypedDict

import pandas as pd

from reasonlens import columns as C
from reasonlens.config import AnalyzeConfig
from reasonlens.errors import ReasonlensError
from reasonlens.progress import progress_bar
from reasonlens.records import cache_key, provenance, step_file, write_csv, write_json, write_parquet

STAGE_VERSION = 1  # bump when the content of a rollouts/step_*.parquet file changes
_SAMPLING = ("num_prompts", "samples", "max_new_tokens", "temperature", "top_p", "score_temperature",
             "seed", "device", "dtype")


class Summary(TypedDict):
    """Layout of OUT/summary.json: the numbers' origin sits next to them."""

    mode: str                  # "checkpoints" | "training-run" | "text-only"
    config: dict[str, Any]     # dataclasses.asdict(AnalyzeConfig)
    provenance: dict[str, Any]  # reasonlens version, git hash, library versions, date
    lexicon: dict[str, Any]    # {"name", "hash", "size"} of the strategic-gram lexicon
    tokenizer: Optional[str]   # what decodes token_ids (load_tokenizer spec); None for plain text
    checkpoints: list[dict]    # [{"step", "name", "path", "kind"}] in step order
    skipped: list[dict]        # [{"path", "reason"}] left out by --skip-bad
    phases: dict[str, Any]     # detect_phases(): consolidation / exploration, with evidence
    n_responses: int
    tokens_scored: int
    seconds: float
    peak_rss_mb: float         # this process's peak resident memory


def analyze(config: AnalyzeConfig, *, progress: bool = True) -> Path:
    """Run the whole analysis described by ``config`` and return the output folder.

    Examples
    --------
    >>> from reasonlens import AnalyzeConfig, analyze          # doctest: +SKIP
    >>> out = analyze(AnalyzeConfig(path="ckpts/", samples=4))  # doctest: +SKIP
    """
    started = time.time()
    with progress_bar(progress) as bar:
        if config.rollouts is not None:
            tokenizer = _text_tokenizer(config)
            rollouts = _read_text_log(config, tokenizer)
            info = {"mode": "text-only", "tokenizer": config.tokenizer}
        elif _is_training_run(Path(config.path)) and config.eval_task is None:
            rollouts, tokenizer, info = _read_training_run(Path(config.path))
        else:
            rollouts, tokenizer, info = _rollout_series(config, bar)
    return _finish(config, rollouts, tokenizer, info, started)


# --- inputs --------------------------------------------------------------------------------


def _is_training_run(path: Path) -> bool:
    return (path / "config.json").is_file() and any((path / "rollouts").glob("step_*.parquet"))


def _read_text_log(config: AnalyzeConfig, tokenizer) -> pd.DataFrame:
    """Text only: token arrays, even where a log has them, are dropped so nothing is mixed in;
    with a tokenizer, length is counted in its tokens."""
    from reasonlens.metrics.logs import read_rollout_log

    rollouts = read_rollout_log(config.rollouts)
    rollouts = rollouts.drop(columns=[c for c in C.TOKEN_ARRAY_COLUMNS if c in rollouts], errors="ignore")
    if tokenizer is not None:
        rollouts[C.N_TOKENS] = [len(tokenizer(r, add_special_tokens=False)["input_ids"])
                                for r in rollouts[C.RESPONSE].fillna("")]
    return rollouts


def _text_tokenizer(config: AnalyzeConfig):
    if config.tokenizer is None:
        return None
    from reasonlens.models.loading import load_tokenizer

    return load_tokenizer(config.tokenizer)


def _read_training_run(run: Path):
    """A `train-hicra` run already logged tokens, logprobs and entropies: read, never regenerate."""
    from reasonlens.metrics.logs import read_rollout_log
    from reasonlens.models.loading import load_tokenizer

    run_config = json.loads((run / "config.json").read_text())
    rollouts = read_rollout_log(run / "rollouts")
    model = _run_model(run, run_config)
    return rollouts, load_tokenizer(model), {"mode": "training-run", "run_config": run_config, "tokenizer": model}


def _run_model(run: Path, run_config: Optional[dict] = None) -> str:
    """The model a training run started from (its tokenizer decodes the logs; it is step 0 of --eval-task)."""
    run_config = run_config or json.loads((run / "config.json").read_text())
    model = run_config.get("model") or run_config.get("config", {}).get("model")
    if model is None:
        raise ReasonlensError(f"{run / 'config.json'} names no 'model': cannot decode its token ids. "
                              "Re-run train-hicra, or analyze its rollouts with --rollouts.")
    return model


def _rollout_series(config: AnalyzeConfig, bar):
    """Generate and score every checkpoint, reusing the step files a previous run finished."""
    from reasonlens.sources.checkpoints import discover_checkpoints
    from reasonlens.sources.tasks import load_problems

    root, base = Path(config.path), config.base
    if _is_training_run(root):  # --eval-task: the run's checkpoints, after the model it started from
        root, base = root / "checkpoints", base or _run_model(root)
    series = discover_checkpoints(root, base=base, skip_bad=config.skip_bad)
    task = config.eval_task or config.task
    seed = config.seed + 1 if config.eval_task else config.seed
    problems = load_problems(None if config.prompts_file else task, prompts_file=config.prompts_file,
                             n=config.num_prompts, seed=seed, question_field=config.question_field,
                             answer_field=config.answer_field)
    settings = {name: getattr(config, name) for name in _SAMPLING} | {"task": task, "seed": seed}
    problems_key = cache_key([dataclasses.asdict(p) for p in problems])
    frames, tokenizer = [], None
    overall = bar.add_task("checkpoints", total=len(series.checkpoints))
    for ckpt in series.checkpoints:
        key = cache_key("rollouts", STAGE_VERSION, _fingerprint(ckpt.path), ckpt.step, settings, problems_key)
        frame = _cached_step(config.out, ckpt.step, key)
        if frame is None:
            frame, tokenizer = _rollout_checkpoint(ckpt, problems, config, bar)
            _save_step(config.out, ckpt, key, frame)
        frames.append(frame)
        bar.advance(overall)
    if tokenizer is None:  # every step came from the cache
        from reasonlens.models.loading import load_tokenizer

        tokenizer = load_tokenizer(_tokenizer_spec(series.checkpoints[-1]))
    info = {"mode": "checkpoints", "skipped": series.skipped, "tokenizer": _tokenizer_spec(series.checkpoints[-1]),
            "checkpoints": [{"step": c.step, "name": c.name, "path": str(c.path), "kind": c.kind}
                            for c in series.checkpoints]}
    return pd.concat(frames, ignore_index=True), tokenizer, info


def _tokenizer_spec(ckpt) -> str:
    """What decodes a checkpoint's tokens: the checkpoint itself, or for a PEFT adapter the base it was
    loaded on (the series was checked to share one vocabulary)."""
    return ckpt.adapter_base if ckpt.kind == "peft" and ckpt.adapter_base else str(ckpt.path)


def _fingerprint(path) -> list:
    """What identifies a checkpoint's weights without reading them: file names, sizes, mtimes."""
    path = Path(path)
    if not path.exists():  # hub id or bundled alias
        return [str(path)]
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return [str(path.resolve())] + [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files]


def _step_paths(out: Path, step: int) -> tuple[Path, Path]:
    return step_file(out, step), step_file(out, step, ".json")


def _cached_step(out: Path, step: int, key: str) -> Optional[pd.DataFrame]:
    table, sidecar = _step_paths(out, step)
    if not (table.exists() and sidecar.exists()):
        return None
    try:
        if json.loads(sidecar.read_text()).get("key") != key:
            return None  # made with other settings: recompute rather than mix
        return pd.read_parquet(table)
    except (OSError, ValueError) as err:
        import warnings

        warnings.warn(f"unreadable cache {table} ({err}); recomputing step {step}", stacklevel=2)
        return None


def _save_step(out: Path, ckpt, key: str, frame: pd.DataFrame) -> None:
    table, sidecar = _step_paths(out, ckpt.step)
    write_parquet(table, frame)
    write_json(sidecar, {"key": key, "step": ckpt.step, "checkpoint": ckpt.name, "path": str(ckpt.path),
                         "n_responses": len(frame), **provenance()})


def _rollout_checkpoint(ckpt, problems, config: AnalyzeConfig, bar):
    """One checkpoint's rollout table: sample K answers per problem, score every token, grade answers."""
    from reasonlens.models.generation import generate
    from reasonlens.models.loading import load_model
    from reasonlens.models.scoring import score_tokens
    from reasonlens.sources.tasks import chat_prompt

    model, tokenizer = load_model(str(ckpt.path), device=config.device, dtype=config.dtype,
                                  adapter_base=ckpt.adapter_base)
    prompts = [chat_prompt(tokenizer, p.question) for p in problems]
    task = bar.add_task(f"{ckpt.name}: generate", total=len(prompts) * config.samples)
    generations = generate(model, tokenizer, prompts, samples=config.samples,
                           max_new_tokens=config.max_new_tokens, temperature=config.temperature,
                           top_p=config.top_p, seed=config.seed, batch_size=config.batch_size,
                           progress=lambda n: bar.advance(task, n))
    bar.update(task, description=f"{ckpt.name}: score")
    scores = score_tokens(model, [g.prompt_token_ids for g in generations], [g.token_ids for g in generations],
                          temperature=config.score_temperature, batch_size=config.batch_size)
    bar.remove_task(task)
    del model
    gc.collect()
    return _rollout_rows(ckpt, problems, generations, scores), tokenizer


def _rollout_rows(ckpt, problems, generations, scores) -> pd.DataFrame:
    from reasonlens.sources.tasks import score_response

    rows = []
    for gen, (logprobs, entropies) in zip(generations, scores):
        problem = problems[gen.prompt_index]
        graded = score_response(gen.text, problem)
        rows.append({
            C.STEP: ckpt.step, C.CHECKPOINT: ckpt.name, C.PROMPT_ID: problem.prompt_id,
            C.SAMPLE_ID: gen.sample_id, C.PROMPT: problem.question, C.PROMPT_TOKEN_IDS: gen.prompt_token_ids,
            C.RESPONSE: gen.text, C.TOKEN_IDS: gen.token_ids, C.ANSWER: problem.answer, C.PRED: graded.pred,
            C.REWARD: graded.reward, C.CORRECT: graded.correct, C.N_TOKENS: len(gen.token_ids),
            C.TRUNCATED: gen.truncated, C.LOGPROBS: logprobs.tolist(), C.ENTROPIES: entropies.tolist(),
        })
    return pd.DataFrame(rows, columns=C.ROLLOUT_COLUMNS)


# --- outputs -------------------------------------------------------------------------------


def _finish(config: AnalyzeConfig, rollouts: pd.DataFrame, tokenizer, info: dict, started: float) -> Path:
    """Tag, aggregate, detect phases, then write tables, summary.json and the report."""
    from reasonlens.hierarchy.tagger import PlanningTagger
    from reasonlens.hierarchy.tokens import add_planning_mask
    from reasonlens.metrics.dynamics import dynamics_table
    from reasonlens.metrics.phases import detect_phases

    out = Path(config.out)
    tagger = PlanningTagger(config.lexicon).fit()
    if tokenizer is not None and C.TOKEN_IDS in rollouts:
        rollouts = add_planning_mask(rollouts, tokenizer, tagger)
    dynamics = dynamics_table(rollouts, tagger, high_entropy_quantile=config.high_entropy_quantile)
    write_parquet(out / "rollouts.parquet", rollouts)
    write_csv(out / "dynamics.csv", dynamics)
    write_parquet(out / "dynamics.parquet", dynamics)
    summary = _summary(config, rollouts, tagger, info, detect_phases(dynamics), started)
    write_json(out / "summary.json", summary)
    if config.report:
        from reasonlens.report.figures import save_figures
        from reasonlens.report.html import write_report

        figures = save_figures(out, dynamics, rollouts, summary["phases"], tagger=tagger)
        write_report(out, summary=summary, dynamics=dynamics, rollouts=rollouts, figures=figures,
                     tokenizer=tokenizer, tagger=tagger)
    return out


def _summary(config, rollouts, tagger, info, phases, started) -> Summary:
    lexicon = tagger.lexicon_
    tokens = int(rollouts[C.LOGPROBS].map(len).sum()) if C.LOGPROBS in rollouts else 0
    return Summary(
        mode=info["mode"], config=dataclasses.asdict(config), provenance=provenance(),
        lexicon={"name": lexicon.name, "hash": lexicon.hash, "size": len(lexicon.phrases)},
        tokenizer=info.get("tokenizer"),
        checkpoints=info.get("checkpoints", []), skipped=info.get("skipped", []), phases=phases,
        n_responses=len(rollouts), tokens_scored=tokens, seconds=round(time.time() - started, 2),
        peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    ) | ({"run_config": info["run_config"]} if "run_config" in info else {})
