"""The configuration of one `analyze` run: every field documented once, checked in `__post_init__`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from reasonlens.errors import ReasonlensError
from reasonlens.options import LEXICON_HELP, PROMPTS_FILE_HELP, TASK_HELP, Documented
from reasonlens.options import option as _opt


@dataclass
class AnalyzeConfig(Documented):
    # --- what comes in -----------------------------------------------------------------
    path: Optional[Path] = _opt(None, "Checkpoint series, single model folder, .gguf file or `train-hicra` run.")
    rollouts: Optional[Path] = _opt(None, "Text-only mode: a rollout log (file or folder); no model is loaded.")
    base: Optional[str] = _opt(None, "Starting model added as step 0 (folder, hub id, or 'smollm2').")
    skip_bad: bool = _opt(False, "Skip unusable checkpoints (recorded in summary.json) instead of failing.")
    out: Optional[Path] = _opt(None, "Output folder (default: PATH/reasonlens).")
    # --- problems ----------------------------------------------------------------------
    task: str = _opt("gsm_symbolic", TASK_HELP)
    prompts_file: Optional[Path] = _opt(None, PROMPTS_FILE_HELP)
    question_field: str = _opt("question", "Question field in --prompts-file.")
    answer_field: str = _opt("answer", "Answer field in --prompts-file.")
    num_prompts: int = _opt(8, "Number of problems per checkpoint.")
    eval_task: Optional[str] = _opt(None, "For a training run: re-evaluate its checkpoints on this task "
                                          "(held-out problems: drawn with seed+1) instead of reading its logs.")
    # --- sampling and scoring ----------------------------------------------------------
    samples: int = _opt(4, "Samples per problem (K); pass@k is reported for powers of 2 up to K.")
    max_new_tokens: int = _opt(256, "Generation budget per response; longer ones are flagged truncated.")
    temperature: float = _opt(0.6, "Sampling temperature (0 = greedy). The paper evaluates at 0.6.")
    top_p: float = _opt(1.0, "Nucleus sampling threshold.")
    score_temperature: float = _opt(1.0, "Temperature of the distribution whose entropy is measured.")
    seed: int = _opt(0, "Seed for problems and sampling.")
    batch_size: int = _opt(8, "Sequences per generation/scoring batch.")
    device: str = _opt("auto", "cpu, cuda or auto.")
    dtype: str = _opt("auto", "bf16, fp32 or auto.")
    # --- classification and metrics ----------------------------------------------------
    lexicon: str = _opt("paper", LEXICON_HELP)
    tokenizer: Optional[str] = _opt(None, "Text-only mode: measure length in this tokenizer's tokens.")
    high_entropy_quantile: float = _opt(0.3, "Fraction of a step's tokens counted as high-entropy.")
    report: bool = _opt(True, "Write figures and report.html.")

    def __post_init__(self):
        if (self.path is None) == (self.rollouts is None):
            raise ReasonlensError("analyze needs exactly one input: a PATH (checkpoints or a training run) "
                                  "or --rollouts FILE_OR_DIR (text-only).")
        for name in ("num_prompts", "samples", "max_new_tokens", "batch_size"):
            if getattr(self, name) < 1:
                raise ReasonlensError(f"{name}={getattr(self, name)} must be >= 1.")
        if self.temperature < 0 or not 0 < self.top_p <= 1 or self.score_temperature <= 0:
            raise ReasonlensError(f"temperature={self.temperature} must be >= 0, top_p={self.top_p} in (0, 1], "
                                  f"score_temperature={self.score_temperature} > 0.")
        if not 0 < self.high_entropy_quantile < 1:
            raise ReasonlensError(f"high_entropy_quantile={self.high_entropy_quantile} must be in (0, 1).")
        source = Path(self.path if self.path is not None else self.rollouts)
        if self.out is None:
            self.out = (source if source.is_dir() else source.parent) / "reasonlens"
        self.out = Path(self.out)
