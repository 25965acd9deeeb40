"""Config fields documented once: `option(default, help)`; the CLI reads help and defaults back."""

from __future__ import annotations

from dataclasses import MISSING, field, fields

TASK_HELP = ("Built-in reasoning-gym task (options as NAME:KEY=VALUE,...), or hf:NAME for a Hugging Face "
             "dataset.")
PROMPTS_FILE_HELP = "JSONL/Parquet file of problems (overrides --task)."
LEXICON_HELP = "Strategic-gram lexicon: 'paper', or a file with one phrase a line."


def option(default, help: str):
    """A dataclass field with its one documentation string."""
    return field(default=default, metadata={"help": help})


class Documented:
    """Mixin for config dataclasses built from `option` fields."""

    @classmethod
    def help(cls, name: str) -> str:
        return _field(cls, name).metadata["help"]

    @classmethod
    def default(cls, name: str):
        value = _field(cls, name).default
        return None if value is MISSING else value


def _field(cls, name: str):
    return next(f for f in fields(cls) if f.name == name)
