"""Config fields documented once: ``option(default, help)``; the CLI is generated from the fields.

Help strings shared by several configs live here, so each is written once.
"""

from __future__ import annotations

import textwrap
from dataclasses import field, fields

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


def option(default, help: str):
    """A dataclass field with its one documentation string (read by the CLI and `help()`)."""
    return field(default=default, metadata={"help": help})


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


def check_positive(config, *names: str) -> None:
    """Raise for the first of ``names`` whose value on ``config`` is below 1."""
    for name in names:
        value = getattr(config, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ReasonlensError(f"{name}={value!r} must be an integer >= 1.")
