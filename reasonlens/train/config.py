"""The configuration of one `train-hicra` run: every field documented once (its ``help``), numbers
bounded by the `Range` in their metadata (`options.check_options`), checked in `__post_init__`, and
written whole to ``RUN/config.json``.

Defaults fit the bundled SmolLM2-135M on a 2-core CPU (a few steps in minutes). The paper gives no
learning rate, batch or KL: we take TRL's GRPO defaults (DAPO loss, beta 0) with DAPO clip-higher
(epsilon 0.2 / 0.28) and record them; the learning rate is 10x TRL's 1e-6 because bf16 weights
round smaller Adam updates away and CPU runs are short.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from reasonlens.errors import ReasonlensError
from reasonlens.options import (BATCH, FEWSHOT_HELP, FRACTION, LEXICON_HELP, POSITIVE_INT, PROBLEMS,
                                PROMPTS_FILE_HELP, REMOTE_CODE_HELP, SCORE_TEMPERATURE, SEED, TASK_HELP, THREADS,
                                THREADS_HELP, TOKENS, Range, check_options, documented, option)

METHODS = ("hicra", "grpo", "entropy-topk", "entropy-reg")
PLANNING_SOURCES = ("lexicon", "heuristic")


@documented
@dataclass
class TrainConfig:
    """Settings of `reasonlens.train_hicra`; ``help(TrainConfig)`` and ``reasonlens train-hicra --help`` list each."""

    # --- model and data ----------------------------------------------------------------
    out: Optional[Path] = option(None, "Run folder (required): config.json, metrics.csv, rollouts/, checkpoints/.")
    model: str = option("smollm2", "Policy to train: 'smollm2' (bundled), an HF folder or hub id.")
    trust_remote_code: bool = option(False, REMOTE_CODE_HELP)
    task: str = option("gsm_symbolic", TASK_HELP)
    prompts_file: Optional[Path] = option(None, PROMPTS_FILE_HELP)
    num_prompts: int = option(64, "Distinct problems loaded; the trainer cycles through them.", PROBLEMS)
    fewshot: str = option("none", FEWSHOT_HELP)
    # --- method ------------------------------------------------------------------------
    method: str = option("hicra", "Credit assignment: hicra, grpo, entropy-topk (80/20 rule) or "
                                   "entropy-reg (entropy bonus).")
    alpha: float = option(0.2, "HICRA amplification: planning tokens get A + alpha*|A|.", Range(0, 100))
    planning_source: str = option("lexicon", "HICRA's planning tokens: 'lexicon' (strategic grams, the paper) "
                                              "or 'heuristic' (the port's top-30% entropy tokens of correct, "
                                              "longer-than-average responses, scaled by 1 + alpha).")
    lexicon: str = option("paper", LEXICON_HELP)
    entropy_quantile: float = option(0.2, "entropy-topk: fraction of highest-entropy tokens that carry gradient.",
                                       FRACTION)
    heuristic_quantile: float = option(0.3, "heuristic planning source: fraction of each eligible response's "
                                             "highest-entropy tokens.", FRACTION)
    entropy_coef: float = option(0.01, "entropy-reg: weight of the mean-token-entropy bonus (TRL entropy_coef).",
                                   Range(0, 100))
    scale_std: bool = option(True, "Divide group advantages by the group's reward std (GRPO); off = Dr. GRPO.")
    format_reward: float = option(0.0, "Weight of a reward for ending with a \\boxed{} answer (0 = off).",
                                    Range(0, 100))
    # --- optimisation ------------------------------------------------------------------
    steps: int = option(10, "Optimizer steps (one generation batch each).", Range(1, 10**7, integer=True))
    prompts_per_step: int = option(4, "Prompts per step; each is sampled --num-generations times.", BATCH)
    num_generations: int = option(4, "Completions per prompt (the GRPO group size G).",
                                   Range(2, 1024, integer=True, why="a group needs two completions to compare"))
    max_new_tokens: int = option(96, "Generation budget per completion.", TOKENS)
    temperature: float = option(1.0, "Sampling temperature (also the temperature of logprobs/entropies).",
                                 SCORE_TEMPERATURE)
    lr: float = option(1e-5, "Learning rate (AdamW, constant).", Range(0, 1, low_open=True))
    epsilon: float = option(0.2, "Lower clip range of the importance ratio.", Range(0, 1))
    epsilon_high: float = option(0.28, "Upper clip range (DAPO clip-higher).", Range(0, 10))
    beta: float = option(0.0, "KL coefficient to the starting model (0 = no reference model).", Range(0, 100))
    grad_accum: int = option(1, "Micro-batches per step (prompts_per_step*num_generations must divide evenly).",
                              BATCH)
    seed: int = option(0, "Seed for problems, sampling and initialisation.", SEED)
    dtype: str = option("auto", "auto (fp32 weights; on a GPU under bf16 autocast), bf16 or fp32 weights. bf16 "
                                 "weights alone drop updates smaller than their rounding step.")
    threads: Optional[int] = option(None, THREADS_HELP, THREADS)
    vllm: str = option("off", "Generate with vLLM (GPU): off, colocate (same GPUs) or server (a `trl vllm-serve` "
                               "process); install reasonlens[vllm].")
    lora: bool = option(False, "Train a LoRA adapter instead of all weights (checkpoints hold adapters).")
    lora_r: int = option(16, "LoRA rank.", BATCH)
    # --- outputs -----------------------------------------------------------------------
    save_every: int = option(5, "Save RUN/checkpoints/step_N every N steps (and at the last step).",
                             POSITIVE_INT)
    resume: bool = option(False, "Continue RUN from its last checkpoint: no step lost or repeated.")
    report_to: str = option("auto", "TRL reporters: auto (TensorBoard when installed), none, or a comma-separated "
                                     "list (tensorboard, trackio, wandb, ...); tensorboard, trackio and wandb also "
                                     "get reasonlens' per-step dynamics as reasonlens/* (TensorBoard: "
                                     "RUN/trl/runs/reasonlens).")

    def __post_init__(self):
        if self.out is None:
            raise ReasonlensError("train-hicra needs a run folder: pass --out RUN (TrainConfig(out=...)).")
        self.out = Path(self.out)
        if self.prompts_file is not None:
            self.prompts_file = Path(self.prompts_file)
        if self.method not in METHODS:
            raise ReasonlensError(f"method={self.method!r} is not known; expected one of {', '.join(METHODS)}.")
        if self.planning_source not in PLANNING_SOURCES:
            raise ReasonlensError(f"planning_source={self.planning_source!r} is not known; expected "
                                  f"{' or '.join(PLANNING_SOURCES)}.")
        check_options(self)
        if self.num_prompts < self.prompts_per_step:
            raise ReasonlensError(f"num_prompts={self.num_prompts} is below prompts_per_step="
                                  f"{self.prompts_per_step}: load at least as many problems as a step uses.")
        if (self.prompts_per_step * self.num_generations) % self.grad_accum:
            raise ReasonlensError(f"prompts_per_step*num_generations={self.prompts_per_step * self.num_generations}"
                                  f" is not divisible by grad_accum={self.grad_accum}: change either.")
        if self.vllm not in ("off", "colocate", "server"):
            raise ReasonlensError(f"vllm={self.vllm!r} is not supported; expected off, colocate or server.")
        if self.dtype not in ("auto", "bf16", "fp32"):
            raise ReasonlensError(f"dtype={self.dtype!r} is not supported; expected auto, bf16 or fp32.")

