"""The plan of one analysis: every input, option and output folder checked before any model loads.

`make_plan` resolves the mode (a checkpoint series, a training run read or re-evaluated, a text log,
or a text log re-scored by its checkpoints), the lexicon, the checkpoints, the problems and the
output folder, and raises on the first bad one, so a wrong option costs seconds, not hours. Writing
the analysis must never overwrite one of its inputs, nor a folder reasonlens does not own (`folders`).
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from pathlib import Path
from typing import Any, Optional

import pandas as pd

from reasonlens.analysis.config import AnalyzeConfig
from reasonlens.errors import ReasonlensError
from reasonlens.folders import check_out, is_run_folder
from reasonlens.records import check_writable

OUTPUT_FILES = ("rollouts.parquet", "dynamics.csv", "dynamics.parquet", "summary.json", "lexicon.txt",
                "report.html")
OUTPUT_FOLDERS = ("rollouts", "tags", "parts", "figures", "tensorboard", ".watch")  # what the folder's marker covers
RAY_CONNECT_SECONDS = 10.0


@dataclasses.dataclass(frozen=True)
class Plan:
    """An analysis with every input checked: what to read or generate, and where it goes. Frozen: what
    actually ran (runtime, timings, grading) goes into the stages' `record.Record`."""

    config: AnalyzeConfig
    mode: str
    out: Path
    lexicon: Any                      # hierarchy.lexicon.Lexicon
    series: Any = None                # sources.checkpoints.Series (checkpoints, eval)
    problems: Optional[list] = None   # list[sources.tasks.Problem] (checkpoints, eval)
    examples: tuple = ()              # worked examples shown before each question (sources.tasks.fewshot_examples)
    problem_info: Optional[dict] = None
    run: Optional[Path] = None
    run_config: Optional[dict] = None
    tokenizer: Any = None             # --tokenizer of a log: token counts, or decodes a token-level log
    log: Any = None                   # sources.logs.LogLayout of --rollouts (framework, parts, outcome sources)


@dataclasses.dataclass
class Inputs:
    """What every source hands on, whichever it was: the rollout table and where it came from."""

    rollouts: pd.DataFrame
    tokenizer: Optional[str] = None   # spec of what decodes token_ids
    checkpoints: list = dataclasses.field(default_factory=list)
    tagged_with: Optional[str] = None  # lexicon hash the table is already tagged with (a training run's)


# --- every check before any model loads ------------------------------------------------------


def make_plan(config: AnalyzeConfig) -> Plan:
    """Resolve the mode, lexicon, checkpoints, problems and output folder; raise on the first bad one."""
    from reasonlens.hierarchy.lexicon import load_lexicon

    lexicon = load_lexicon(config.lexicon)
    if config.ray:
        _check_ray(config.ray_address)
    from reasonlens.report.trackers import check_installed, parse_report_to

    check_installed(parse_report_to(config.report_to))
    if config.rollouts is not None and config.path is not None:
        plan = _rescore_plan(config, lexicon)
    elif config.rollouts is not None:
        plan = _text_plan(config, lexicon)
    elif is_training_run(config.path) and config.eval_task is None:
        plan = Plan(config, "training-run", output_folder(config), lexicon, run=config.path,
                    run_config=_run_config(config.path))
    else:
        plan = _generation_plan(config, lexicon)
    _check_output_folder(plan)
    return plan


def _check_ray(address: Optional[str]) -> None:
    """Ray must be installed, and a cluster address must answer within `RAY_CONNECT_SECONDS` (Ray itself
    retries a closed port for minutes)."""
    import importlib.util
    import os
    import socket

    if importlib.util.find_spec("ray") is None:
        raise ReasonlensError("--ray needs Ray in this environment: pip install 'reasonlens[ray]' (or drop --ray).")
    address = address or os.environ.get("RAY_ADDRESS")
    if not address or address in ("auto", "local"):
        return  # a local cluster, or the one `ray start` recorded on this machine
    host, _, port = address.split("://")[-1].rpartition(":")
    if not port.isdigit():
        raise ReasonlensError(f"--ray-address {address!r} has no port: expected HOST:PORT or ray://HOST:PORT.")
    try:
        socket.create_connection((host or "localhost", int(port)), timeout=RAY_CONNECT_SECONDS).close()
    except OSError as err:
        raise ReasonlensError(f"--ray-address {address}: no Ray cluster answers at {host}:{port} within "
                              f"{RAY_CONNECT_SECONDS:g} s ({err.strerror or err}): start it (ray start --head) or "
                              "fix the address (RAY_ADDRESS counts too).") from None


def is_training_run(path) -> bool:
    """A `train-hicra` run folder (its marker, or an earlier version's config.json next to rollouts/step_*.parquet);
    a model folder that merely holds a config.json and an analysis' rollouts/ is not one."""
    return is_run_folder(Path(path))


def output_folder(config: AnalyzeConfig) -> Path:
    """--out, else next to the input: SOURCE/reasonlens for a log (its folder) or a checkpoint series or
    training run, RUN/reasonlens-eval with --eval-task. Known before the input is read (--watch needs it)."""
    if config.out is not None:
        return Path(config.out)
    if config.rollouts is not None:
        source = Path(config.rollouts)
        return (source if source.is_dir() else source.parent) / "reasonlens"
    path = Path(config.path)
    if config.eval_task is not None:
        return path / "reasonlens-eval"
    return (path if path.is_dir() else path.parent) / "reasonlens"


def _text_plan(config: AnalyzeConfig, lexicon) -> Plan:
    """A --rollouts log alone: text only, or a token-level log (its logged scores) decoded with --tokenizer."""
    from reasonlens.sources.logs import detect_layout

    source = Path(config.rollouts)
    layout = detect_layout(source, trust_remote_code=config.trust_remote_code)  # fails before any load
    if layout.needs_tokenizer and config.tokenizer is None:
        raise ReasonlensError(f"--rollouts {source} is a {layout.framework} log of token ids without text: pass "
                              "--tokenizer with the run's model (hub id or folder) to decode them.")
    tokenizer = None
    if config.tokenizer is not None:
        from reasonlens.models.loading import load_tokenizer

        tokenizer = load_tokenizer(config.tokenizer, trust_remote_code=config.trust_remote_code)
    elif layout.token_scores:
        warnings.warn(f"--rollouts {source} ({layout.framework}) logs token ids and log-probabilities: pass "
                      "--tokenizer to use them; without it the analysis is text only.", stacklevel=3)
    mode = "token-log" if layout.token_scores and tokenizer is not None else "text-only"
    return Plan(config, mode, output_folder(config), lexicon, tokenizer=tokenizer, log=layout)


def _rescore_plan(config: AnalyzeConfig, lexicon) -> Plan:
    """A logged rollout table and the checkpoints that wrote it: each step is re-scored, not regenerated."""
    from reasonlens.models.hardware import resolve_device
    from reasonlens.sources.checkpoints import discover_checkpoints

    text = _text_plan(config, lexicon)
    if text.log.needs_tokenizer:
        raise ReasonlensError(f"--rollouts {config.rollouts} ({text.log.framework}) already holds the trainer's own "
                              "token scores and no text to re-score: analyze it without PATH, with --tokenizer.")
    root, base = Path(config.path), config.base
    if is_training_run(root):
        root, base = root / "checkpoints", base or run_model(root, _run_config(root))
    resolve_device(config.device)
    series = discover_checkpoints(root, base=base, skip_bad=config.skip_bad,
                                  trust_remote_code=config.trust_remote_code)
    return dataclasses.replace(text, mode="rescored", series=series)


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
    from reasonlens.sources.tasks import fewshot_examples, load_problems

    root, base, run, run_config = Path(config.path), config.base, None, None
    fewshot = config.fewshot
    if config.eval_task is not None:
        if not is_training_run(root):
            raise ReasonlensError(f"--eval-task re-evaluates a train-hicra run, but {root} is not one (no "
                                  "config.json next to rollouts/step_*.parquet); for a checkpoint series use --task.")
        run, run_config = root, _run_config(root)
        root, base = root / "checkpoints", base or run_model(run, run_config)
        fewshot = fewshot if fewshot is not None else (run_config.get("config") or {}).get("fewshot")
    resolve_device(config.device)  # a missing GPU fails now
    series = discover_checkpoints(root, base=base, skip_bad=config.skip_bad,
                                  trust_remote_code=config.trust_remote_code)
    _check_backend(config, series)
    examples = fewshot_examples(fewshot)
    if run is not None and not config.prompts_file:
        problems, info = _held_out(config, run_config)
    else:
        problems = load_problems(None if config.prompts_file else config.task, prompts_file=config.prompts_file,
                                 n=config.num_prompts, seed=config.seed, question_field=config.question_field,
                                 answer_field=config.answer_field)
        info = {"task": None if config.prompts_file else config.task, "prompts_file": config.prompts_file,
                "seed": config.seed, "n": len(problems), "held_out_of_run_seed": None}
    info |= {"fewshot": fewshot or "none", "examples": [list(e) for e in examples]}
    mode = "eval" if run is not None else "checkpoints"
    return Plan(config, mode, output_folder(config), lexicon, series=series, problems=problems,
                problem_info=info, run=run, run_config=run_config, examples=examples)


def _held_out(config: AnalyzeConfig, run_config: dict) -> tuple[list, dict]:
    """--eval-task problems the run never trained on: drawn with a seed far from the run's (reasoning-gym seeds
    item i with seed + i, so seed + 1 would be the training problems shifted by one), minus every question of
    the run's own training problems (small tasks repeat questions)."""
    from reasonlens.sources.tasks import HELD_OUT_SEED_OFFSET, held_out_problems, load_problems

    trained = run_config.get("config") or {}
    run_seed = int(trained.get("seed", 0))
    training = load_problems(trained.get("task"), prompts_file=trained.get("prompts_file"),
                             n=int(trained.get("num_prompts", 64)), seed=run_seed)
    seed = run_seed + HELD_OUT_SEED_OFFSET
    problems = held_out_problems(config.eval_task, config.num_prompts, seed=seed,
                                 exclude={p.question for p in training})
    return problems, {"task": config.eval_task, "prompts_file": None, "seed": seed, "n": len(problems),
                      "held_out_of_run_seed": run_seed, "excluded_training_questions": len(training)}


def _check_backend(config: AnalyzeConfig, series) -> None:
    """vLLM must be reachable, and it loads only full model folders (no adapter, no .gguf)."""
    import importlib.util
    import shutil

    if config.backend == "transformers":
        return
    if config.backend == "vllm" and importlib.util.find_spec("vllm") is None:
        raise ReasonlensError("--backend vllm needs vLLM in this environment: run `make install-vllm` and use "
                              ".venv-vllm/bin/reasonlens, or --backend vllm-server --vllm-command .venv-vllm/bin/vllm.")
    if config.backend == "vllm-server" and shutil.which(config.vllm_command.split()[0]) is None:
        raise ReasonlensError(f"--vllm-command {config.vllm_command!r} is not an executable: point it at vLLM's CLI, "
                              "e.g. .venv-vllm/bin/vllm (make install-vllm builds it).")
    unusable = [c.name for c in series.checkpoints if c.kind in ("peft", "gguf")]
    if unusable:
        raise ReasonlensError(f"--backend {config.backend} loads full model folders only; {', '.join(unusable)} "
                              "are PEFT adapters or .gguf files: merge them into model folders, or use "
                              "--backend transformers.")


def _check_output_folder(plan: Plan) -> None:
    """The output folder: reasonlens' own (or new), outside every input (`folders.check_out`), writable."""
    out, config = plan.out, plan.config
    check_out(out, kind="analysis", option="--out", inputs=[
        config.path, config.rollouts, config.prompts_file, plan.run,
        *(given for given in (config.base, config.lexicon, config.tokenizer, config.fewshot)
          if given is not None and Path(given).exists())])
    check_writable(out)
