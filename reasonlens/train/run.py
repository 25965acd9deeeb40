"""`train_hicra(config)`: check everything, build the problems, model, TRL arguments and HicraTrainer, train.

Resume (`train.resume`) uses TRL's own checkpoints, so a resumed run continues at step N+1 with the
batches it would have seen (the prompt order is our fixed schedule, see `prompt_schedule`).
"""

from __future__ import annotations

import contextlib
import importlib.util
import warnings
from pathlib import Path
from typing import Callable, Sequence

from reasonlens.errors import ReasonlensError
from reasonlens.folders import check_out, writing
from reasonlens.records import provenance, write_json
from reasonlens.train.config import TrainConfig
from reasonlens.train.resume import RUN_FILES, checkpoint_step, prepare_run_dir

GRPO_FIELDS = {  # TrainConfig field -> the GRPOConfig field it sets, unchanged
    "steps": "max_steps", "seed": "seed", "num_generations": "num_generations",
    "max_new_tokens": "max_completion_length", "temperature": "temperature", "lr": "learning_rate",
    "epsilon": "epsilon", "epsilon_high": "epsilon_high", "beta": "beta",
    "grad_accum": "gradient_accumulation_steps", "save_every": "save_steps",
}


def train_hicra(config: TrainConfig, *, progress: bool = False, extra_rewards: Sequence[Callable] = ()) -> Path:
    """Train ``config.model`` with ``config.method`` and record the run in ``config.out``.

    ``extra_rewards`` are further TRL reward functions ``f(prompts, completions, **columns)``, added
    to the task reward with weight 1 (e.g. a length penalty). Returns the run folder (config.json,
    metrics.csv, rollouts/, checkpoints/step_N/).

    Examples
    --------
    >>> train_hicra(TrainConfig(out="runs/hicra", steps=2))  # doctest: +SKIP
    PosixPath('runs/hicra')
    """
    from reasonlens.hierarchy.lexicon import load_lexicon
    from reasonlens.models.hardware import resolve_device
    from reasonlens.sources.tasks import fewshot_examples, load_problems

    lexicon = load_lexicon(config.lexicon)  # every input is checked before the run folder is touched
    examples = fewshot_examples(config.fewshot)
    problems = load_problems(config.task, prompts_file=config.prompts_file, n=config.num_prompts,
                             seed=config.seed)
    if len(problems) < config.prompts_per_step:  # a file may hold fewer rows than num_prompts
        raise ReasonlensError(f"only {len(problems)} problems for prompts_per_step={config.prompts_per_step}: "
                              "lower --prompts-per-step or load more problems.")
    _check_model(config)
    _check_vllm(config)
    _check_trackers(config)
    _check_reporters(config)
    check_out(config.out, kind="run", option="--out", inputs=[config.prompts_file, *(
        given for given in (config.model, config.lexicon, config.fewshot) if Path(given).exists())])
    from accelerate import PartialState

    device = resolve_device("auto")
    state = PartialState(cpu=device == "cpu")  # one process, or each of an `accelerate launch`
    with contextlib.ExitStack() as held:
        with state.main_process_first():  # the main process locks and edits the run folder; the others find it
            if state.is_main_process:
                held.enter_context(writing(config.out, kind="run", covers=RUN_FILES))
            resume_from = prepare_run_dir(config, edit=state.is_main_process)
        if resume_from is not None and checkpoint_step(resume_from) >= config.steps:
            warnings.warn(f"{config.out} is already trained to step {checkpoint_step(resume_from)}: nothing to do "
                          "(raise --steps to train further).", stacklevel=2)
            return config.out
        _train(config, state, device, resume_from, (problems, examples, lexicon), extra_rewards, progress)
    return config.out


def _train(config: TrainConfig, state, device: str, resume_from, data, extra_rewards, progress: bool) -> None:
    """Load the policy, record the run's config.json (main process) and run TRL's loop."""
    from reasonlens.models.hardware import runtime, set_threads
    from reasonlens.models.loading import load_model

    problems, examples, lexicon = data
    threads = set_threads(config.threads)
    weights = weights_dtype(config)
    model, tokenizer = load_model(config.model, device=device, dtype=weights, trust_remote_code=config.trust_remote_code)
    with _quiet_deprecations():
        trainer = _build_trainer(config, model, tokenizer, problems, examples, lexicon, device, weights,
                                 extra_rewards, progress)
        if state.is_main_process:
            write_json(config.out / "config.json", {
                "config": config, "resumed_from": str(resume_from) if resume_from else None,
                "lexicon": {"name": lexicon.name, "hash": lexicon.hash, "tag_version": _tag_version()},
                "runtime": runtime(device, weights, threads) | {"autocast_bf16": trainer.args.bf16,
                                                               "processes": state.num_processes},
                "trl_args": trainer.args.to_dict(), "provenance": provenance()})
        trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)


def _tag_version() -> int:
    from reasonlens.hierarchy.tag import TAG_VERSION

    return TAG_VERSION


def _check_model(config: TrainConfig) -> None:
    """The policy must exist and, without --trust-remote-code, use an architecture transformers knows."""
    from reasonlens.sources.specs import model_source, remote_code_problem

    kind, where = model_source(config.model)
    problem = None if config.trust_remote_code or kind not in ("hf", "peft") else remote_code_problem(Path(where))
    if problem:
        raise ReasonlensError(f"model {config.model}: {problem}.")


def _check_trackers(config: TrainConfig) -> None:
    from reasonlens.report.trackers import check_installed

    check_installed(tracker_names(config))


def _wandb_ready() -> bool:
    """W&B can log: an API key, a netrc login, or an offline/disabled mode (else it stops the run to ask)."""
    import netrc
    import os

    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_MODE") in ("offline", "disabled", "dryrun"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (OSError, netrc.NetrcParseError):
        return False


def _check_reporters(config: TrainConfig) -> None:
    """--report-to names reporters transformers knows, and W&B only once logged in: checked before any load
    (`_check_trackers` checks the packages of those that get our dynamics)."""
    from transformers.integrations.integration_utils import INTEGRATION_TO_CALLBACK

    for name in reporters_of(config):
        if name not in INTEGRATION_TO_CALLBACK:
            raise ReasonlensError(f"--report-to {config.report_to}: {name!r} is not a reporter transformers knows; "
                                  f"expected auto, none, or a comma-separated list of "
                                  f"{', '.join(INTEGRATION_TO_CALLBACK)}.")
        if name == "wandb" and not _wandb_ready():
            raise ReasonlensError("--report-to wandb needs a W&B login: run `wandb login`, set WANDB_API_KEY, or "
                                  "WANDB_MODE=offline; or drop wandb from --report-to.")


def _check_vllm(config: TrainConfig) -> None:
    if config.vllm != "off" and importlib.util.find_spec("vllm") is None:
        raise ReasonlensError(f"--vllm {config.vllm} needs vLLM in this environment (pip install -e '.[vllm]' on a "
                              "CUDA machine), or --vllm off to generate with transformers.")


def _build_trainer(config, model, tokenizer, problems, examples, lexicon, device, weights, extra_rewards, progress):
    """The HicraTrainer over the scheduled prompts, with our recorder (and progress bar)."""
    from datasets import Dataset
    from transformers.trainer_callback import PrinterCallback

    from reasonlens.sources.tasks import chat_prompt
    from reasonlens.train.recording import LiveDynamics, ProgressBar, RunRecorder
    from reasonlens.train.rewards import TaskReward, format_reward
    from reasonlens.train.trainer import HicraTrainer

    rows = [{"prompt": chat_prompt(tokenizer, p.question, examples), "prompt_id": p.prompt_id, "question": p.question,
             "answer": p.answer} for p in problems]
    schedule = prompt_schedule(len(rows), config.steps * config.prompts_per_step, config.seed)
    task_reward = TaskReward(problems)
    trackers = tracker_names(config)
    live = LiveDynamics(config.out, trackers) if trackers else None
    callbacks = [RunRecorder(config.out, config.save_every)] + ([ProgressBar()] if progress else []) + \
        ([live] if live else [])
    trainer = HicraTrainer(
        model=model, processing_class=tokenizer, args=grpo_args(config, device, weights, len(extra_rewards)),
        train_dataset=Dataset.from_list([rows[i] for i in schedule]),
        reward_funcs=[task_reward, *extra_rewards] + ([format_reward] if config.format_reward else []),
        peft_config=_lora(config), callbacks=callbacks, config=config, task_reward=task_reward, lexicon=lexicon,
        live=live)
    trainer.remove_callback(PrinterCallback)  # metrics.csv and the progress bar report each step
    return trainer


@contextlib.contextmanager
def _quiet_deprecations():
    """TRL 1.16 calls transformers APIs deprecated for v6: warnings the user cannot act on."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*deprecated and will be removed in v6", category=FutureWarning)
        yield


def prompt_schedule(n_problems: int, n_rows: int, seed: int) -> list[int]:
    """Problem indices for ``n_rows`` training prompts: a fresh seeded permutation per pass.

    The trainer reads them in order (TRL's shuffling off). Why: TRL's sampler replays its first
    permutation after a resume that crosses a pass, while this schedule depends only on
    (n_problems, seed), so a longer run extends a shorter one's and a resume sees exactly the
    prompts the uninterrupted run would.

    Examples
    --------
    >>> len(prompt_schedule(3, 7, seed=0)), sorted(prompt_schedule(3, 6, seed=0)[3:])
    (7, [0, 1, 2])
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    order: list[int] = []
    while len(order) < n_rows:
        order.extend(rng.permutation(n_problems).tolist())
    return order[:n_rows]


def weights_dtype(config: TrainConfig) -> str:
    """The weights' dtype: fp32 master weights for ``auto`` everywhere (on a GPU under bf16 autocast).
    Why not bf16 weights on a CPU that computes bf16 natively: an Adam step at lr 1e-5 is below a bf16
    weight's rounding step, so updates vanish (the demo did not learn in bf16 on an AVX512 CPU, and did
    in fp32)."""
    return "fp32" if config.dtype == "auto" else config.dtype


def grpo_args(config: TrainConfig, device: str, weights: str, n_extra: int):
    """TRL's GRPOConfig: the `GRPO_FIELDS` copied as they are, and what reasonlens fixes (DAPO loss, logging)."""
    from trl import GRPOConfig

    batch = config.prompts_per_step * config.num_generations
    world = world_size()
    if batch % (config.grad_accum * world):
        raise ReasonlensError(f"prompts_per_step*num_generations={batch} completions per step cannot be split over "
                              f"{world} process(es) x grad_accum={config.grad_accum}: make it a multiple of "
                              f"{config.grad_accum * world}.")
    reporters = reporters_of(config)
    mapped = {trl_name: getattr(config, name) for name, trl_name in GRPO_FIELDS.items()}
    return GRPOConfig(
        **mapped, output_dir=str(config.out / "trl"), data_seed=config.seed,
        per_device_train_batch_size=batch // (config.grad_accum * world), lr_scheduler_type="constant",
        loss_type="dapo",
        scale_rewards="group" if config.scale_std else "none",
        entropy_coef=config.entropy_coef if config.method == "entropy-reg" else 0.0,
        reward_weights=[1.0] * (1 + n_extra) + ([config.format_reward] if config.format_reward else []),
        bf16=config.dtype == "auto" and device != "cpu" and weights == "fp32",  # GPU: bf16 autocast
        use_vllm=config.vllm != "off", vllm_mode="colocate" if config.vllm == "off" else config.vllm,
        use_cpu=device == "cpu", disable_dropout=True, shuffle_dataset=False, logging_steps=1,
        save_strategy="steps", save_total_limit=2, report_to=reporters or "none", disable_tqdm=True)


def reporters_of(config: TrainConfig) -> list[str]:
    """TRL's report_to: the named ones, or for 'auto' TensorBoard when installed (local files; W&B and trackio
    only when named, since W&B without credentials stops the run)."""
    if config.report_to == "auto":
        return ["tensorboard"] if importlib.util.find_spec("tensorboard") else []
    return [] if config.report_to == "none" else [n.strip() for n in config.report_to.split(",") if n.strip()]


def tracker_names(config: TrainConfig) -> tuple[str, ...]:
    """The reporters that also get reasonlens' per-step dynamics (`report.trackers.TRACKERS`)."""
    from reasonlens.report.trackers import TRACKERS

    return tuple(name for name in reporters_of(config) if name in TRACKERS)


def world_size() -> int:
    """Processes of this run (``accelerate launch`` sets WORLD_SIZE): a step's completions are split over them."""
    import os

    return int(os.environ.get("WORLD_SIZE", "1"))


def _lora(config: TrainConfig):
    if not config.lora:
        return None
    from peft import LoraConfig

    return LoraConfig(r=config.lora_r, lora_alpha=2 * config.lora_r, target_modules="all-linear",
                      task_type="CAUSAL_LM")


def summary_line(run_dir: Path) -> str:
    """The last logged step of a run in one line: reward, accuracy, planning ratio, advantages."""
    import pandas as pd

    from reasonlens.metrics import columns as dc

    last = pd.read_csv(Path(run_dir) / "metrics.csv").iloc[-1]
    return (f"step {int(last['step'])}: reward {last['reward']:.3f}, accuracy {last[dc.ACCURACY]:.3f}, "
            f"planning ratio {last[dc.PLANNING_RATIO]:.3f}, mean advantage planning "
            f"{last[dc.ADVANTAGE_PLANNING]:.3f} / execution {last[dc.ADVANTAGE_EXECUTION]:.3f}; "
            f"checkpoints in {Path(run_dir) / 'checkpoints'}")
