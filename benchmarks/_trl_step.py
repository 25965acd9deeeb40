"""train_step.py's real-trainer path, where TRL is installed: `train_hicra` itself, stage-timed from outside.

The run is a real `train-hicra` run (warm-up step + repeats) of the saved random-init policy on problems from
a JSONL file, with a seeded random 0/1 reward added to the task's (always 0 for a random policy). Its stages
are timed by wrapping, for the run only, the HicraTrainer methods that hold them (reasonlens/train/trainer.py): `_rollout_table` (token offsets, table, tagging: "tag"), `_score` (the no-grad
logprob/entropy pass: "score") and `_credit` (per-token advantages: "advantages"; TRL's group advantages
are computed inside its own `_generate_and_score_completions` and are not separable). The step time is
TRL's ``step_time`` from RUN/metrics.csv (generation, scoring and loss forward/backward of every
micro-batch; the optimizer step is outside it), so "other" = step - tag - score - advantages.
"""

from __future__ import annotations

import contextlib
import functools
import json
import statistics
import time
from pathlib import Path


@contextlib.contextmanager
def timed_methods(cls, names: list[str], sync):
    """Wrap ``cls``'s methods ``names`` to append their seconds (``sync``-ed) to lists; restore them on exit."""
    originals = {name: getattr(cls, name) for name in names}
    seconds: dict[str, list[float]] = {name: [] for name in names}

    def timed(name, method):
        @functools.wraps(method)
        def wrapper(self, *args, **kwargs):
            sync()
            start = time.perf_counter()
            out = method(self, *args, **kwargs)
            sync()
            seconds[name].append(time.perf_counter() - start)
            return out
        return wrapper

    for name, method in originals.items():
        setattr(cls, name, timed(name, method))
    try:
        yield seconds
    finally:
        for name, method in originals.items():
            setattr(cls, name, method)


def save_policy(model, tokenizer, folder: Path, problems: list[tuple[str, str]]) -> Path:
    """The policy and tokenizer as an HF folder and the problems as problems.jsonl in ``folder``."""
    model.config.eos_token_id = model.config.pad_token_id = tokenizer.eos_token_id
    model.save_pretrained(folder / "policy")
    tokenizer.save_pretrained(folder / "policy")
    (folder / "problems.jsonl").write_text("".join(json.dumps({"question": q, "answer": a}) + "\n"
                                                   for q, a in problems))
    return folder


STAGES = {"_rollout_table": "tag", "_score": "score", "_credit": "advantages"}


def random_reward(seed: int):
    """A TRL reward function of seeded random 0/1 scores: a random policy's task reward is always 0, which
    would leave every advantage, and so the loss's gradient, at 0."""
    import random

    rng = random.Random(seed)

    def random_reward(prompts, completions, **kwargs):
        return [float(rng.random() < 0.5) for _ in completions]
    return random_reward


def trl_method(method: str, folder: Path, size: tuple, *, label: str, repeats: int, device: str, seed: int) -> dict:
    """One `train_hicra` run (``folder``/run-``label``-``method``) of 1 + ``repeats`` steps of ``method`` on
    `save_policy`'s policy and problems: median seconds per stage after the first step."""
    import pandas as pd
    import torch

    from reasonlens.train.config import TrainConfig
    from reasonlens.train.run import train_hicra
    from reasonlens.train.trainer import HicraTrainer

    prompts, generations, length, micro = size
    steps = 1 + repeats
    config = TrainConfig(out=folder / f"run-{label}-{method}", model=str(folder / "policy"),
                         prompts_file=folder / "problems.jsonl", num_prompts=prompts, method=method, steps=steps,
                         prompts_per_step=prompts, num_generations=generations, max_new_tokens=length,
                         grad_accum=prompts * generations // micro, save_every=steps, report_to="none",
                         dtype="auto" if device == "cuda" else "fp32")
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    with timed_methods(HicraTrainer, list(STAGES), sync) as timed:
        train_hicra(config, extra_rewards=[random_reward(seed)])
    metrics = pd.read_csv(config.out / "metrics.csv")
    seconds = {STAGES[name]: statistics.median(values[1:]) for name, values in timed.items()}
    step = statistics.median(metrics["step_time"].tolist()[1:])
    seconds["other"] = step - sum(seconds.values())
    return {"method": method, "seconds": seconds, "step_seconds": step,
            "shares": {name: value / step for name, value in seconds.items()},
            "tag_share": seconds["tag"] / step, "advantages_share": seconds["advantages"] / step,
            "loss": float(metrics["loss"].iloc[-1]), "grad_norm": float(metrics["grad_norm"].iloc[-1])}
