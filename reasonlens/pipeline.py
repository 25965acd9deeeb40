"""`analyze()`: plan -> read or generate -> tag -> aggregate -> detect -> render.

Everything the run needs is checked first (`plan`: inputs, lexicon, problems, output folder), so a
bad option fails in seconds, before any model loads. Two stages are cached per step, each file
written atomically with a JSON sidecar holding its key: ``OUT/rollouts/step_NNNNNN.parquet``
(generation and scoring; keyed by settings, problems and the checkpoint's weight files) and
``OUT/tags/step_NNNNNN.parquet`` (keyed by the lexicon hash and the step's text). A killed run resumes
where it stopped, a changed setting recomputes instead of mixing results, and a fully cached rerun
loads no model and runs no tagger. ``summary.json`` is written last: an analysis folder without it
is unfinished.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import hashlib
import json
import resource
import time
from pathlib import Path
from typing import Any, Optional, TypedDict

import numpy as np
import pandas as pd

from reasonlens import columns as C
from reasonlens.config import AnalyzeConfig
from reasonlens.errors import ReasonlensError
from reasonlens.progress import progress_bar
from reasonlens.records import (cache_key, provenance, read_cached, remove_stale_temporaries, step_file, write_cached,
                                write_csv, write_json, write_parquet)

STAGE_VERSION = 2  # bump when the content of a rollouts/step_*.parquet file changes
_SAMPLING = ("num_prompts", "samples", "max_new_tokens", "temperature", "top_p", "score_temperature", "backend")
OUTPUT_FILES = ("rollouts.parquet", "dynamics.csv", "dynamics.parquet", "summary.json", "lexicon.txt",
                "report.html")
OUTPUT_FOLDERS = ("rollouts", "tags", "figures")


class Summary(TypedDict, total=False):
    """Layout of OUT/summary.json: the numbers' origin sits next to them."""

    mode: str                  # "checkpoints" | "training-run" | "eval" | "text-only"
    config: dict[str, Any]     # dataclasses.asdict(AnalyzeConfig), as given
    out: str                   # the output folder actually used
    provenance: dict[str, Any]  # reasonlens version, git hash, library versions, date
    runtime: Optional[dict]    # device, dtype, threads that actually ran (None: no model was loaded)
    lexicon: dict[str, Any]    # {"name", "hash", "size", "file"}: the phrases are in lexicon.txt
    tag_version: int           # hierarchy.tag.TAG_VERSION of the tag columns
    tokenizer: Optional[str]   # what decodes token_ids (load_tokenizer spec); None for plain text
    problems: Optional[dict]   # {"task", "seed", "n", "held_out_of_run_seed"} for generated rollouts
    checkpoints: list[dict]    # [{"step", "name", "path", "kind"}] in step order
    skipped: list[dict]        # [{"path", "reason"}] left out by --skip-bad
    run_config: Optional[dict]  # a training run's config.json (training-run and eval modes)
    phases: dict[str, Any]     # detect_phases(): consolidation / exploration, with evidence
    n_responses: int
    tokens_scored: int
    seconds: float             # wall time of the whole analysis
    stage_seconds: dict        # of which: plan, read, load, generate, score, grade, tag, metrics, write, report
    peak_rss_mb: float         # this process's peak resident memory


@dataclasses.dataclass
class Plan:
    """An analysis with every input checked: what to read or generate, and where it goes."""

    config: AnalyzeConfig
    mode: str
    out: Path
    lexicon: Any                      # hierarchy.lexicon.Lexicon
    series: Any = None                # sources.checkpoints.Series (checkpoints, eval)
    problems: Optional[list] = None   # list[sources.tasks.Problem] (checkpoints, eval)
    problem_info: Optional[dict] = None
    run: Optional[Path] = None
    run_config: Optional[dict] = None
    tokenizer: Any = None             # text-only --tokenizer (token counts)
    runtime: Optional[dict] = None    # filled when a model runs
    seconds: dict = dataclasses.field(default_factory=dict)  # wall time per stage, summed over steps

    @contextlib.contextmanager
    def timed(self, stage: str):
        """Add the wall time of the ``with`` block to ``seconds[stage]``."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - start


@dataclasses.dataclass
class Inputs:
    """What every source hands on, whichever it was: the rollout table and where it came from."""

    rollouts: pd.DataFrame
    tokenizer: Optional[str] = None   # spec of what decodes token_ids
    checkpoints: list = dataclasses.field(default_factory=list)
    tagged_with: Optional[str] = None  # lexicon hash the table is already tagged with (a training run's)


def analyze(config: AnalyzeConfig, *, progress: bool = True):
    """Run the whole analysis described by ``config``; return the `Analysis` (its ``.path`` is the folder).

    Examples
    --------
    >>> from reasonlens import AnalyzeConfig, analyze          # doctest: +SKIP
    >>> a = analyze(AnalyzeConfig(path="ckpts/", samples=4))    # doctest: +SKIP
    >>> a.dynamics[["step", "rel_ppl_execution"]]               # doctest: +SKIP
    """
    started = time.time()
    plan = make_plan(config)
    plan.seconds["plan"] = time.time() - started  # discovery, problems, lexicon, output checks
    with progress_bar(progress) as bar:
        inputs = read_inputs(plan, bar)
        rollouts = tag_stage(inputs, plan, bar)
    return finish(plan, inputs, rollouts, started)


# --- plan: every check before any model loads ----------------------------------------------


def make_plan(config: AnalyzeConfig) -> Plan:
    """Resolve the mode, lexicon, checkpoints, problems and output folder; raise on the first bad one."""
    from reasonlens.hierarchy.lexicon import load_lexicon

    lexicon = load_lexicon(config.lexicon)
    if config.rollouts is not None:
        plan = _text_plan(config, lexicon)
    elif is_training_run(config.path) and config.eval_task is None:
        plan = Plan(config, "training-run", _out(config, config.path / "reasonlens"), lexicon, run=config.path,
                    run_config=_run_config(config.path))
    else:
        plan = _generation_plan(config, lexicon)
    _check_output_folder(plan)
    return plan


def is_training_run(path) -> bool:
    """A `train-hicra` run folder: config.json next to rollouts/step_*.parquet."""
    path = Path(path)
    return (path / "config.json").is_file() and any((path / "rollouts").glob("step_*.parquet"))


def _out(config: AnalyzeConfig, default: Path) -> Path:
    return Path(config.out) if config.out is not None else default


def _text_plan(config: AnalyzeConfig, lexicon) -> Plan:
    from reasonlens.sources.logs import log_files

    source = Path(config.rollouts)
    if not source.exists():
        raise ReasonlensError(f"rollout log {source} does not exist: pass a rollouts.parquet, a JSONL/Parquet "
                              "log, a folder of step_*.parquet, a TRL completions folder or a verl dump folder.")
    log_files(source)  # an unknown layout fails here, not after the tokenizer loads
    tokenizer = None
    if config.tokenizer is not None:
        from reasonlens.models.loading import load_tokenizer

        tokenizer = load_tokenizer(config.tokenizer, trust_remote_code=config.trust_remote_code)
    default = (source if source.is_dir() else source.parent) / "reasonlens"
    return Plan(config, "text-only", _out(config, default), lexicon, tokenizer=tokenizer)


def _run_config(run: Path) -> dict:
    try:
        return json.loads((run / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError) as err:
        raise ReasonlensError(f"{run / 'config.json'} is not readable JSON ({err}); it is the run's record: "
                              "restore it, or analyze the run's logs with --rollouts RUN/rollouts.") from None


def run_model(run: Path, run_config: dict) -> str:
    """The model a training run started from (its tokenizer decodes the logs; it is step 0 of --eval-task)."""
    model = (run_config.get("config") or {}).get("model")
    if not model:
        raise ReasonlensError(f"{run / 'config.json'} names no 'model': cannot tell what the run started from. "
                              "Re-run train-hicra, or analyze its rollouts with --rollouts.")
    return model


def _generation_plan(config: AnalyzeConfig, lexicon) -> Plan:
    """Checkpoints to sample from (a series, or a training run's saved checkpoints) and the problems."""
    from reasonlens.models.hardware import resolve_device
    from reasonlens.sources.checkpoints import discover_checkpoints
    from reasonlens.sources.tasks import load_problems

    root, base, run, run_config = Path(config.path), config.base, None, None
    task, seed, held_out = config.task, config.seed, None
    if config.eval_task is not None:
        if not is_training_run(root):
            raise ReasonlensError(f"--eval-task re-evaluates a train-hicra run, but {root} is not one (no "
                                  "config.json next to rollouts/step_*.parquet); for a checkpoint series use --task.")
        run, run_config = root, _run_config(root)
        root, base = root / "checkpoints", base or run_model(run, run_config)
        held_out = int((run_config.get("config") or {}).get("seed", 0))
        task, seed = config.eval_task, held_out + 1  # never the problems the run trained on
    resolve_device(config.device)  # a missing GPU fails now
    series = discover_checkpoints(root, base=base, skip_bad=config.skip_bad,
                                  trust_remote_code=config.trust_remote_code)
    problems = load_problems(None if config.prompts_file else task, prompts_file=config.prompts_file,
                             n=config.num_prompts, seed=seed, question_field=config.question_field,
                             answer_field=config.answer_field)
    info = {"task": None if config.prompts_file else task, "prompts_file": config.prompts_file, "seed": seed,
            "n": len(problems), "held_out_of_run_seed": held_out}
    mode = "eval" if run is not None else "checkpoints"
    default = (run / "reasonlens-eval") if run is not None else \
        (Path(config.path) if Path(config.path).is_dir() else Path(config.path).parent) / "reasonlens"
    return Plan(config, mode, _out(config, default), lexicon, series=series, problems=problems,
                problem_info=info, run=run, run_config=run_config)


def _check_output_folder(plan: Plan) -> None:
    """The output folder must be a writable folder, and writing it must not overwrite any input."""
    out = plan.out
    if out.exists() and not out.is_dir():
        raise ReasonlensError(f"--out {out} is an existing file, not a folder: choose a folder for the analysis.")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test-{time.time_ns()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise ReasonlensError(f"--out {out} is not writable ({err.strerror}): choose a folder you can write to.") from None
    remove_stale_temporaries(out)  # half-written files of a killed run: never read, never kept
    written = {(out / name).resolve() for name in OUTPUT_FILES}
    folders = [(out / name).resolve() for name in OUTPUT_FOLDERS]
    for source in _input_files(plan):
        source = source.resolve()
        if source in written or any(folder in source.parents for folder in folders):
            raise ReasonlensError(f"--out {out} would overwrite the input {source}: choose another --out "
                                  "(reasonlens never writes over its inputs).")


def _input_files(plan: Plan) -> list[Path]:
    config, files = plan.config, []
    if config.rollouts is not None:
        from reasonlens.sources.logs import log_files

        files += log_files(Path(config.rollouts))
    for given in (config.prompts_file, config.lexicon):
        if given is not None and Path(given).is_file():
            files.append(Path(given))
    if plan.run is not None and plan.mode == "training-run":
        files += sorted((plan.run / "rollouts").glob("step_*.*"))
    return files


# --- read or generate --------------------------------------------------------------------------


def read_inputs(plan: Plan, bar) -> Inputs:
    """The rollout table of the plan's source: a text log, a training run's logs, or generated rollouts."""
    if plan.mode == "text-only":
        with plan.timed("read"):
            return _read_text_log(plan)
    if plan.mode == "training-run":
        with plan.timed("read"):
            return _read_training_run(plan)
    return _rollout_series(plan, bar)


def _read_text_log(plan: Plan) -> Inputs:
    """Text only: token arrays and old tags a log may carry are dropped so nothing is mixed in;
    with a tokenizer, length is counted in its tokens."""
    from reasonlens.hierarchy.tag import TAG_COLUMNS
    from reasonlens.sources.logs import read_rollout_log

    rollouts = read_rollout_log(plan.config.rollouts)
    rollouts = rollouts.drop(columns=[c for c in C.TOKEN_ARRAY_COLUMNS + TAG_COLUMNS if c in rollouts])
    if plan.tokenizer is not None:
        rollouts[C.N_TOKENS] = [len(plan.tokenizer(r, add_special_tokens=False)["input_ids"])
                                for r in rollouts[C.RESPONSE]]
    return Inputs(rollouts, tokenizer=plan.config.tokenizer)


def _read_training_run(plan: Plan) -> Inputs:
    """A `train-hicra` run logged tokens, logprobs, entropies and tags: read, never regenerate or re-tag
    unless the analysis lexicon differs from the run's."""
    from reasonlens.hierarchy.tag import TAG_VERSION
    from reasonlens.sources.logs import read_rollout_log

    rollouts = read_rollout_log(plan.run / "rollouts")
    logged = plan.run_config.get("lexicon") or {}
    same_tags = logged.get("tag_version") == TAG_VERSION and C.GRAMS in rollouts.columns
    return Inputs(rollouts, tokenizer=run_model(plan.run, plan.run_config),
                  tagged_with=logged.get("hash") if same_tags else None)


def _rollout_series(plan: Plan, bar) -> Inputs:
    """Generate and score every checkpoint, reusing the step files a previous run finished."""
    from reasonlens.models.hardware import resolve_device, resolve_dtype_name, runtime, set_threads

    config = plan.config
    threads = set_threads(config.threads)
    device = resolve_device(config.device)
    dtype = resolve_dtype_name(config.dtype, device)
    plan.runtime = runtime(device, dtype, threads) | {"backend": config.backend, "scoring": scoring_source(config)}
    settings = {name: getattr(config, name) for name in _SAMPLING} | {
        "device": device, "dtype": dtype, "problems": plan.problem_info, "seed": plan.problem_info["seed"]}
    problems_key = cache_key([dataclasses.asdict(p) for p in plan.problems])
    frames = []
    overall = bar.add_task("checkpoints", total=len(plan.series.checkpoints))
    for ckpt in plan.series.checkpoints:
        key = cache_key("rollouts", STAGE_VERSION, weights_fingerprint(ckpt.path), ckpt.step, settings, problems_key)
        table = step_file(plan.out, ckpt.step)
        frame = read_cached(table, key)
        if frame is None:
            frame = _rollout_checkpoint(ckpt, plan, device, dtype, bar)
            write_cached(table, key, frame, step=ckpt.step, checkpoint=ckpt.name, path=str(ckpt.path),
                         n_responses=len(frame))
        frames.append(frame)
        bar.advance(overall)
    checkpoints = [{"step": c.step, "name": c.name, "path": str(c.path), "kind": c.kind}
                   for c in plan.series.checkpoints]
    return Inputs(pd.concat(frames, ignore_index=True), tokenizer=_tokenizer_spec(plan.series.checkpoints[-1]),
                  checkpoints=checkpoints)


def _tokenizer_spec(ckpt) -> str:
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


def _rollout_checkpoint(ckpt, plan: Plan, device: str, dtype: str, bar) -> pd.DataFrame:
    """One checkpoint's rollout table: sample K answers per problem, score every token, grade answers."""
    from reasonlens.models.generation import generate
    from reasonlens.models.loading import load_model
    from reasonlens.models.scoring import score_tokens
    from reasonlens.sources.tasks import chat_prompt

    config = plan.config
    with plan.timed("load"):
        model, tokenizer = load_model(str(ckpt.path), device=device, dtype=dtype, adapter_base=ckpt.adapter_base,
                                      trust_remote_code=config.trust_remote_code)
    prompts = [chat_prompt(tokenizer, p.question) for p in plan.problems]
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
                                  batch_size=config.batch_size)
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


# --- tag ---------------------------------------------------------------------------------------


def tag_stage(inputs: Inputs, plan: Plan, bar) -> pd.DataFrame:
    """The rollout table with the tag columns, tagging only steps no cache file holds for this lexicon."""
    from reasonlens.hierarchy.tag import TAG_COLUMNS, TAG_VERSION, tag_rollouts

    rollouts = inputs.rollouts
    if inputs.tagged_with == plan.lexicon.hash:
        return rollouts  # a training run tagged with this very lexicon: its logged mask is kept
    frames = []
    steps = bar.add_task("tag", total=rollouts[C.STEP].nunique())
    for step, frame in rollouts.groupby(C.STEP, sort=True):
        frame = frame.reset_index(drop=True)
        key = cache_key("tags", TAG_VERSION, plan.lexicon.hash, content_digest(frame))
        table = step_file(plan.out, int(step), stage="tags")
        tags = read_cached(table, key)
        if tags is None or len(tags) != len(frame):
            with plan.timed("tag"):
                tagged = tag_rollouts(frame, plan.lexicon)
            tags = tagged[[c for c in TAG_COLUMNS + [C.PLANNING_MASK] if c in tagged]]
            write_cached(table, key, tags, step=int(step), lexicon=plan.lexicon.hash, n_responses=len(frame))
        frames.append(frame.drop(columns=[c for c in tags.columns if c in frame]).join(tags))
        bar.advance(steps)
    bar.remove_task(steps)
    return pd.concat(frames, ignore_index=True)


def content_digest(frame: pd.DataFrame) -> str:
    """sha256 of what tagging reads: each response's text and its token offsets."""
    digest = hashlib.sha256()
    offsets = frame[C.TOKEN_OFFSETS] if C.TOKEN_OFFSETS in frame else [None] * len(frame)
    for text, offs in zip(frame[C.RESPONSE], offsets):
        digest.update(str(text).encode("utf-8", "surrogatepass") + b"\0")
        if offs is not None:
            digest.update(np.asarray([tuple(o) for o in offs], dtype=np.int64).tobytes() + b"\1")
    return digest.hexdigest()


# --- aggregate, detect, render -----------------------------------------------------------------


def finish(plan: Plan, inputs: Inputs, rollouts: pd.DataFrame, started: float):
    """Aggregate, detect phases, then write tables, lexicon.txt, figures, report.html and summary.json last."""
    from reasonlens.hierarchy.lexicon import write_lexicon
    from reasonlens.metrics.dynamics import dynamics_table, top_grams
    from reasonlens.metrics.phases import detect_phases
    from reasonlens.analysis import Analysis

    out = plan.out
    (out / "summary.json").unlink(missing_ok=True)  # the folder is unfinished until the new one is written
    with plan.timed("metrics"):
        dynamics = dynamics_table(rollouts, high_entropy_quantile=plan.config.high_entropy_quantile)
        phases = detect_phases(dynamics)
    summary = _summary(plan, inputs, rollouts, phases, started)
    with plan.timed("write"):
        write_parquet(out / "rollouts.parquet", rollouts)
        write_csv(out / "dynamics.csv", dynamics)
        write_parquet(out / "dynamics.parquet", dynamics)
        write_lexicon(out / "lexicon.txt", plan.lexicon)
    if plan.config.report:
        from reasonlens.report.figures import save_figures
        from reasonlens.report.html import write_report

        with plan.timed("report"):
            figures = save_figures(out, dynamics, top_grams(rollouts, n=12), summary["phases"])
            write_report(out, summary=summary, dynamics=dynamics, rollouts=rollouts, figures=figures)
    summary["seconds"] = round(time.time() - started, 2)
    summary["stage_seconds"] = {stage: round(t, 3) for stage, t in plan.seconds.items()}
    write_json(out / "summary.json", summary)
    return Analysis(out, dynamics, rollouts, summary, plan.lexicon.phrases)


def _summary(plan: Plan, inputs: Inputs, rollouts: pd.DataFrame, phases: dict, started: float) -> Summary:
    from reasonlens.hierarchy.tag import TAG_VERSION

    lexicon = plan.lexicon
    tokens = int(rollouts[C.LOGPROBS].map(len).sum()) if C.LOGPROBS in rollouts else 0
    return Summary(
        mode=plan.mode, config=dataclasses.asdict(plan.config), out=str(plan.out), provenance=provenance(),
        runtime=plan.runtime,
        lexicon={"name": lexicon.name, "hash": lexicon.hash, "size": len(lexicon.phrases), "file": "lexicon.txt"},
        tag_version=TAG_VERSION, tokenizer=inputs.tokenizer, problems=plan.problem_info,
        checkpoints=inputs.checkpoints, skipped=plan.series.skipped if plan.series is not None else [],
        run_config=plan.run_config, phases=phases, n_responses=len(rollouts), tokens_scored=tokens,
        seconds=round(time.time() - started, 2),
        peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1))
