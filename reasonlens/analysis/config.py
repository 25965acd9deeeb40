"""The configuration of one `analyze` run: every field documented once (its help), numbers bounded by the
`Range` in their metadata (`options.check_options`), checked in `__post_init__` without touching the file
system; the `analyze` command is generated from it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from reasonlens.errors import ReasonlensError
from reasonlens.models.scoring import REDUCERS
from reasonlens.options import (BATCH, BOOTSTRAP, DEVICE_HELP, DTYPE_HELP, FEWSHOT_HELP, FRACTION, LEXICON_HELP,
                                PROBLEMS, PROMPTS_FILE_HELP, REMOTE_CODE_HELP, SAMPLES, SCORE_TEMPERATURE, SECONDS,
                                SEED, TASK_HELP, TEMPERATURE, THREADS, THREADS_HELP, TOKENS, Range, check_options,
                                documented,
                                option)

BACKENDS = ("transformers", "vllm", "vllm-server")


@documented
@dataclass
class AnalyzeConfig:
    """Settings of `reasonlens.analyze`; ``help(AnalyzeConfig)`` and ``reasonlens analyze --help`` list each."""

    # --- what comes in -----------------------------------------------------------------
    path: Optional[Path] = option(None, "Checkpoint series, single model folder, .gguf file or `train-hicra` run.")
    rollouts: Optional[Path] = option(None, "A rollout log (file or folder: reasonlens, TRL, verl, prime-rl, NeMo-RL, "
                                            "AReaL, ROLL, slime, JSONL; docs/layouts.md). Alone: "
                                            "text-only, no model is loaded. With PATH: every logged step is "
                                            "re-scored by its checkpoint (no generation).")
    strict_steps: bool = option(False, "With PATH and --rollouts: refuse a logged step that has no checkpoint of "
                                       "its own (default: score it with the nearest earlier one, recorded).")
    base: Optional[str] = option(None, "Starting model added as step 0 (folder, hub id, or 'smollm2').")
    skip_bad: bool = option(False, "Skip unusable checkpoints (recorded in summary.json) instead of failing.")
    out: Optional[Path] = option(None, "Output folder (default: PATH/reasonlens, PATH/reasonlens-eval with "
                                       "--eval-task, or next to the --rollouts log).")
    trust_remote_code: bool = option(False, REMOTE_CODE_HELP)
    # --- problems ----------------------------------------------------------------------
    task: str = option("gsm_symbolic", TASK_HELP)
    prompts_file: Optional[Path] = option(None, PROMPTS_FILE_HELP)
    question_field: str = option("question", "Question field in --prompts-file.")
    answer_field: str = option("answer", "Gold-answer field in --prompts-file, or in a --rollouts log without a "
                                         "'correct' field (its responses are then graded; verl's 'gts' is read "
                                         "as 'answer').")
    num_prompts: int = option(8, "Number of problems per checkpoint.", PROBLEMS)
    eval_task: Optional[str] = option(None, "For a training run: re-evaluate its checkpoints on this task, on "
                                            "problems it never trained on (drawn with a seed far from the run's, "
                                            "its training questions removed), instead of reading its logs.")
    fewshot: Optional[str] = option(None, FEWSHOT_HELP + " Default: the run's own with --eval-task, else none.")
    # --- sampling and scoring ----------------------------------------------------------
    samples: int = option(4, "Samples per problem (K); pass@k is reported for powers of 2 up to K.", SAMPLES)
    max_new_tokens: int = option(256, "Generation budget per response; longer ones are flagged truncated.", TOKENS)
    temperature: float = option(0.6, "Sampling temperature (0 = greedy). The paper evaluates at 0.6.", TEMPERATURE)
    top_p: float = option(1.0, "Nucleus sampling threshold.", FRACTION)
    score_temperature: float = option(1.0, "Temperature of the distribution whose entropy is measured.",
                                      SCORE_TEMPERATURE)
    seed: int = option(0, "Seed for problems and sampling.", SEED)
    batch_size: int = option(8, "Sequences per generation/scoring batch.", BATCH)
    backend: str = option("transformers", "Generation engine: transformers; vllm (vLLM in this environment, "
                                          "one engine per checkpoint); vllm-server (a `vllm serve` process started "
                                          "per checkpoint from --vllm-command, e.g. .venv-vllm/bin/vllm). vLLM "
                                          "samples, our scorer scores (teacher-forced).")
    vllm_command: str = option("vllm", "--backend vllm-server: how to run vLLM's CLI (another venv's vllm).")
    vllm_eager: bool = option(False, "vLLM backends: skip vLLM's compilation (starts in seconds, not minutes; "
                                     "generates slower: worth it for small runs and on CPUs).")
    ray: bool = option(False, "Run on Ray (the `ray` extra): checkpoints, one task each; a --rollouts log alone, "
                              "one task per step. A local cluster unless --ray-address or RAY_ADDRESS names one.")
    ray_address: Optional[str] = option(None, "Ray cluster to join (e.g. ray://head:10001 or auto); implies --ray.")
    scoring: str = option("auto", "Token scores: auto (transformers: from the logits each token is sampled "
                                  "from, no extra pass; otherwise our teacher-forced scorer, a fused Triton "
                                  "kernel on CUDA, chunked torch elsewhere), torch or triton (teacher-forced).")
    device: str = option("auto", DEVICE_HELP)
    dtype: str = option("auto", DTYPE_HELP)
    threads: Optional[int] = option(None, THREADS_HELP, THREADS)
    workers: Optional[int] = option(None, "A --rollouts log alone: processes that read, grade, tag and measure its "
                                          "steps (default: the usable cores; 1 = this process only).", THREADS)
    # --- classification and metrics ----------------------------------------------------
    lexicon: str = option("paper", LEXICON_HELP)
    tokenizer: Optional[str] = option(None, "With --rollouts: decode a token-level log (prime-rl token exports, "
                                            "NeMo-RL train data, slime dumps) to use its logged token scores; "
                                            "for a text log, measure length in this tokenizer's tokens.")
    high_entropy_quantile: float = option(0.3, "Fraction of a step's tokens counted as high-entropy.",
                                          Range(0, 1, low_open=True, high_open=True))
    bootstrap: int = option(200, "Bootstrap replicates (prompts resampled with their samples, seeded by --seed) "
                                 "for the 95% interval of every per-step metric; 0 = no intervals.",
                            BOOTSTRAP)
    report: bool = option(True, "Write figures and report.html.")
    # --- trackers and live mode ------------------------------------------------------------
    report_to: str = option("none", "Also send the dynamics to experiment trackers: none, or a comma-separated "
                                    "list of tensorboard, trackio, wandb (pip install 'reasonlens[trackers]').")
    tensorboard_dir: Optional[Path] = option(None, "--report-to tensorboard: event-file folder (default "
                                                   "OUT/tensorboard; a folder inside the training run's own "
                                                   "log dir shows as a sibling run).")
    trackio_project: str = option("reasonlens", "--report-to trackio: project of the local run (under "
                                                "TRACKIO_DIR, default $HF_HOME/trackio).")
    wandb_run: Optional[str] = option(None, "--report-to wandb: attach to this run, ENTITY/PROJECT/ID (default: a "
                                            "new run in project 'reasonlens', reused by reruns). WANDB_MODE "
                                            "applies (offline: nothing leaves the machine).")
    watch: bool = option(False, "Follow an input still being written (a training run, a log or checkpoint "
                                "folder): analyse each new step once complete, until Ctrl-C, SIGTERM or "
                                "--watch-idle; both finish cleanly (exit 0).")
    watch_interval: float = option(5.0, "--watch: seconds between looks at the input.", SECONDS)
    watch_settle: float = option(30.0, "--watch: a step with no later step and no STABLE marker counts as "
                                       "complete once its files are unchanged this many seconds (reasonlens "
                                       "runs write atomically: complete at once).", SECONDS)
    watch_idle: Optional[float] = option(None, "--watch: stop after this many seconds without a new step "
                                               "(default: never).", SECONDS)

    def __post_init__(self):
        if self.path is None and self.rollouts is None:
            raise ReasonlensError("analyze needs an input: a PATH (checkpoints or a training run), --rollouts "
                                  "FILE_OR_DIR (text-only), or both (re-score the log with its checkpoints).")
        for name in ("path", "rollouts", "out", "prompts_file", "tensorboard_dir"):
            if getattr(self, name) is not None:
                setattr(self, name, Path(getattr(self, name)))
        check_options(self)
        for name, choices in (("backend", BACKENDS), ("scoring", REDUCERS)):
            if getattr(self, name) not in choices:
                raise ReasonlensError(f"{name}={getattr(self, name)!r} is not known; expected one of "
                                      f"{', '.join(choices)}.")
        from reasonlens.report.trackers import parse_report_to, parse_wandb_run

        parse_report_to(self.report_to)
        parse_wandb_run(self.wandb_run)
        if self.ray_address:
            self.ray = True
        from reasonlens.models.hardware import check_dtype

        self.dtype = check_dtype(self.dtype)
