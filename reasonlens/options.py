"""Config fields documented once: ``option(default, help)``; the CLI is generated from the fields.

Help strings shared by several configs live here, so each is written once.
"""

from __future__ import annotations

import math
import numbers
import os
import textwrap
from dataclasses import dataclass, field, fields
from typing import Callable, Optional, Union

from reasonlens.errors import ReasonlensError

TASK_HELP = ("Built-in reasoning-gym task (options as NAME:KEY=VALUE,...), or hf:NAME for a Hugging Face "
             "dataset.")
PROMPTS_FILE_HELP = "JSONL/Parquet file of problems (overrides --task)."
LEXICON_HELP = "Strategic-gram lexicon: 'paper', or a file with one phrase a line."
FEWSHOT_HELP = ("Worked examples shown before each question as earlier chat turns, so a small model copies "
                "their answer format: 'none', 'arithmetic' (\"3 + 4 = 7. So the answer is \\boxed{7}.\"), "
                "'arithmetic-steps' (a sentence of stepwise prose first), or a JSONL/Parquet file of "
                "question/response records.")
DEVICE_HELP = "cpu, cuda or auto (a GPU when torch sees one)."
DTYPE_HELP = ("auto, bf16, fp32 or fp16. auto = bf16 where the hardware computes it natively (bf16 GPUs; "
              "CPUs with AVX512_BF16/AMX, checked by a timed matmul), else fp32.")
THREADS_HELP = "Torch CPU threads (default: every core this process may use)."
REMOTE_CODE_HELP = ("Allow checkpoints and tokenizers whose architecture is Python code shipped inside them "
                    "(auto_map). Off: such inputs are refused, never run.")


def cpu_count() -> int:
    """CPUs this process may use (its affinity, not the host's total)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@dataclass(frozen=True)
class Range:
    """The values a numeric option accepts: an integer or a finite number between ``low`` and ``high``
    (``high`` may be a function of the machine, e.g. of its CPU count), each end open or closed."""

    low: Optional[float] = None
    high: Union[float, Callable[[], float], None] = None
    integer: bool = False
    low_open: bool = False
    high_open: bool = False
    why: str = ""  # said after a refusal: what the bound protects

    def top(self) -> Optional[float]:
        return self.high() if callable(self.high) else self.high

    def holds(self, value) -> bool:
        number = (numbers.Integral,) if self.integer else (numbers.Real,)
        if isinstance(value, bool) or not isinstance(value, number) or not math.isfinite(value):
            return False
        low, high = self.low, self.top()
        return ((low is None or (value > low if self.low_open else value >= low))
                and (high is None or (value < high if self.high_open else value <= high)))

    def describe(self) -> str:
        kind, low, high = ("an integer" if self.integer else "a finite number"), _shown(self.low), _shown(self.top())
        if high is None:
            return f"{kind} {'>' if self.low_open else '>='} {low}"
        if low is None:
            return f"{kind} {'<' if self.high_open else '<='} {high}"
        return f"{kind} in {'(' if self.low_open else '['}{low}, {high}{')' if self.high_open else ']'}"


def _shown(bound) -> Optional[str]:
    """A bound as written: 4294967295, not 4.29497e+09; 0.5 as 0.5."""
    return None if bound is None else str(int(bound)) if float(bound).is_integer() else f"{bound:g}"


POSITIVE_INT = Range(1, integer=True)
FRACTION = Range(0, 1, low_open=True)                  # (0, 1]
SEED = Range(0, 2**32 - 1, integer=True, why="numpy and torch seeds are 32-bit")
PROBLEMS = Range(1, 10_000, integer=True, why="problems are built before anything runs, ~5 ms each for "
                 "gsm_symbolic; split a larger evaluation into several runs")
SAMPLES = Range(1, 1024, integer=True)
TOKENS = Range(1, 131_072, integer=True, why="longer than any supported context")
BATCH = Range(1, 4096, integer=True)
THREADS = Range(1, lambda: 4 * cpu_count(), integer=True, why="more threads than 4x this machine's CPUs only slow it")
BOOTSTRAP = Range(0, 100_000, integer=True)          # replicates; 0 = no intervals
SECONDS = Range(0, 7 * 86400, why="at most a week")
TEMPERATURE = Range(0, 100)                            # 0 = greedy
SCORE_TEMPERATURE = Range(0, 100, low_open=True)    # entropy of p^(1/T): T > 0


def option(default, help: str, range: Optional[Range] = None):
    """A dataclass field with its one documentation string (read by the CLI and `help()`) and, for a number,
    the `Range` `check_options` holds it to."""
    return field(default=default, metadata={"help": help, "range": range})


def check_value(name: str, value, allowed: Range, flag: Optional[str] = None) -> None:
    """Raise, in the one wording every numeric check uses, unless ``value`` is in ``allowed`` (``flag``: the
    command-line option that set it)."""
    if not allowed.holds(value):
        said = f" ({flag})" if flag else ""
        why = f" ({allowed.why})" if allowed.why else ""
        raise ReasonlensError(f"{name}={value!r}{said} is invalid; expected {allowed.describe()}{why}.")


def check_options(config) -> None:
    """Check every numeric field of a config dataclass against its `Range` (None passes for an optional one)."""
    for f in fields(config):
        allowed = f.metadata.get("range")
        value = getattr(config, f.name)
        if allowed is not None and not (value is None and f.default is None):
            check_value(f.name, value, allowed, flag="--" + f.name.replace("_", "-"))


def field_docs(config_cls, names=None) -> str:
    """numpydoc ``name : type, default value`` entries of ``config_cls``'s fields (all, or ``names`` in
    that order), each followed by its help: the one text both the CLI and the docstrings show."""
    by_name = {f.name: f for f in fields(config_cls)}
    lines = []
    for name in names or by_name:
        f = by_name[name]
        lines.append(f"{name} : {f.type}, default {f.default!r}")
        lines += textwrap.wrap(f.metadata["help"], 100, initial_indent="    ", subsequent_indent="    ",
                               break_on_hyphens=False, break_long_words=False)
    return "\n".join(lines)


def documented(config_cls):
    """Class decorator: append the Parameters section (`field_docs`) to a config's docstring, so
    ``help(config_cls)`` lists every field with its help."""
    entries = textwrap.indent(field_docs(config_cls), "    ")
    config_cls.__doc__ = f"{config_cls.__doc__}\n\n    Parameters\n    ----------\n{entries}\n"
    return config_cls
