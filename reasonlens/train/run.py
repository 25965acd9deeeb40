"""`train_hicra(config)`: build the problems, model, TRL arguments and HicraTrainer, then train.

Resume uses TRL's own checkpoints (RUN/trl/checkpoint-N: weights, optimizer, scheduler, RNG and
data position), so a resumed run continues at step N+1 with the batches it would have seen (the
prompt order is our fixed schedule, see `prompt_schedule`). Whatever an interrupted run logged
after step N is removed first, so every step appears in metrics.csv and rollouts/ exactly once.
"""

from __future__ import annotations

import contextlib
import importlib.util
import warnings
from pathlib import Path
from typing import Callable, Sequence

from reasonlens.errors import ReasonlensError
from reasonlens.records import provenance, write_json
from reasonlens.train.config import TrainConfig


_RESUMABLE = ("steps", "resume", "save_every", "report_to", "out")


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
    from reasonlens.models.loading import load_model, resolve_device
    from reasonlens.sources.tasks import load_problems

    resume_from = _prepare_run_dir(config)
    device = resolve_device("auto")
    problems = load_problems(config.task, prompts_file=config.prompts_file, n=config.num_prompts,
                             seed=config.seed)
    if len(problems) < config.prompts_per_step:  # a file may hold fewer rows than num_prompts
        raise ReasonlensError(f"only {len(problems)} problems for prompts_per_step={config.prompts_per_step}: "
                              "lower --prompts-per-step or load more problems.")
    model, tokenizer = load_model(config.model, device=device, dtype=_weights_dtype(config, device))
    with _quiet_deprecations():
        trainer = _build_trainer(config, model, tokenizer, problems, device, extra_rewards, progress)
        lexicon = trainer.tagger.lexicon_
        write_json(config.out / "config.json", {
            "config": config, "resumed_from": str(resume_from) if resume_from else None,
            "lexicon": {"name": lexicon.name, "hash": lexicon.hash},
            "trl_args": trainer.args.to_dict(), "provenance": provenance()})
        trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    return config.out


def _build_trainer(config, model, tokenizer, problems, device, extra_rewards, progress):
    """The HicraTrainer over the scheduled prompts, with our recorder (and progress bar)."""
    from datasets import Dataset
    from transformers.trainer_callback import PrinterCallback

    from reasonlens.hierarchy.tagger import PlanningTagger
    from reasonlens.sources.tasks import chat_prompt
    from reasonlens.train.recording import ProgressBar, RunRecorder
    from reasonlens.train.rewards import TaskReward, format_reward
    from reasonlens.train.trainer import HicraTrainer

    rows = [{"prompt": chat_prompt(tokenizer, p.question), "prompt_id": p.prompt_id, "question": p.question,
             "answer": p.answer} for p in problems]
    schedule = prompt_schedule(len(rows), config.steps * config.prompts_per_step, config.seed)
    task_reward = TaskReward(problems)
    callbacks = [RunRecorder(config.out, config.save_every)] + ([ProgressBar()] if progress else [])
    trainer = HicraTrainer(
        model=model, processing_class=tokenizer, args=_grpo_args(config, device, len(extra_rewards)),
        train_dataset=Dataset.from_list([rows[i] for i in schedule]),
        reward_funcs=[task_reward, *extra_rewards] + ([format_reward] if config.format_reward else []),
        peft_config=_lora(config), callbacks=callbacks, config=config, task_reward=task_reward,
        tagger=PlanningTagger(config.lexicon).fit())
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


def _prepare_run_dir(config: TrainConfig) -> Path | None:
    """The TRL checkpoint to resume from (None for a fresh run); refuses to overwrite a run."""
    from transformers.trainer_utils import get_last_checkpoint

    from reasonlens.train.recording import prune_after

    out = config.out
    trl_dir = out / "trl"
    if not config.resume:
        if (out / "metrics.csv").exists() or (out / "rollouts").exists() or trl_dir.exists():
            raise ReasonlensError(f"run folder {str(out)!r} already holds a run: pass --resume to continue it, "
                                  "or choose a new --out.")
        return None
    last = get_last_checkpoint(str(trl_dir)) if trl_dir.is_dir() else None
    if last is None:
        raise ReasonlensError(f"--resume: no checkpoint in {str(trl_dir)!r} (checkpoints are saved every "
                              "--save-every steps); start a fresh run without --resume.")
    _check_same_run(config)
    step = int(Path(last).name.split("-")[1])
    if step >= config.steps:
        raise ReasonlensError(f"--resume: {str(out)!r} is already at step {step} >= --steps {config.steps}; "
                              "raise --steps to train further.")
    prune_after(out, step)
    return Path(last)


def _check_same_run(config: TrainConfig) -> None:
    """--resume may only lengthen a run (or change where/how often it saves), never change its recipe."""
    import json

    from reasonlens.records import to_jsonable

    saved = json.loads((config.out / "config.json").read_text())["config"]
    now = to_jsonable(config)
    changed = {k: (saved.get(k), v) for k, v in now.items()
               if k not in _RESUMABLE and saved.get(k) != v}
    if changed:
        diff = ", ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in changed.items())
        raise ReasonlensError(f"--resume: {str(config.out)!r} was trained with other settings ({diff}); "
                              "resume with the original settings, or start a new --out.")


def _weights_dtype(config: TrainConfig, device: str) -> str:
    """bf16 weights on CPU (2x faster there), fp32 master weights under bf16 autocast on a GPU."""
    if config.dtype != "auto":
        return config.dtype
    return "bf16" if device == "cpu" else "fp32"


def _grpo_args(config: TrainConfig, device: str, n_extra: int):
    from trl import GRPOConfig

    batch = config.prompts_per_step * config.num_generations
    reporters = ([name for name in ("tensorboard", "wandb") if importlib.util.find_spec(name)]
                 if config.report_to == "auto" else config.report_to.split(","))
    return GRPOConfig(
        output_dir=str(config.out / "trl"), max_steps=config.steps, seed=config.seed, data_seed=config.seed,
        per_device_train_batch_size=batch // config.grad_accum, gradient_accumulation_steps=config.grad_accum,
        num_generations=config.num_generations, max_completion_length=config.max_new_tokens,
        temperature=config.temperature, learning_rate=config.lr, lr_scheduler_type="constant",
        epsilon=config.epsilon, epsilon_high=config.epsilon_high, beta=config.beta, loss_type="dapo",
        scale_rewards="group" if config.scale_std else "none",
        entropy_coef=config.entropy_coef if config.method == "entropy-reg" else 0.0,
        reward_weights=[1.0] * (1 + n_extra) + ([config.format_reward] if config.format_reward else []),
        bf16=config.dtype == "auto" and device != "cpu",  # GPU: bf16 autocast over fp32 weights
        use_vllm=config.vllm != "off", vllm_mode="colocate" if config.vllm == "off" else config.vllm,
        use_cpu=device == "cpu", disable_dropout=True, shuffle_dataset=False, logging_steps=1,
        save_strategy="steps", save_steps=config.save_every, save_total_limit=2,
        report_to=reporters or "none", disable_tqdm=True)


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
