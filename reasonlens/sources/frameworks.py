"""Which RL framework wrote a log folder or file: its layout, with the reader of one step.

Each framework's reader lives in its own module (citing the framework's source); this module only
recognises them, in an order where no layout can be mistaken for another: prime-rl token exports
(``step_N/rank_R.jsonl``), NeMo-RL (``train_data_stepN.jsonl``), ROLL (``rollout_dump_data.step_N.jsonl``),
AReaL (integer version folders of AReaL records), slime (``N.pt`` pickles). None means "not one of
these": the caller tries our own, TRL's and verl's files.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable, Optional

from reasonlens.sources import areal, nemo_rl, prime_rl, roll, slime



@dataclasses.dataclass(frozen=True)
class LogLayout:
    """A recognised log: which framework wrote it, its parts (a step and that step's files) and how to
    read one part, plus where its reward and correctness come from (for the summary)."""

    framework: str                            # reasonlens, trl, verl, prime-rl, nemo-rl, areal, roll, slime
    parts: list                               # [(key handed back to read_part: the step, a piece of one file
                                              #   (`logs.file_pieces`) or None, [files])] in step order
    read_part: Callable                       # (files, key) -> DataFrame in the rollout-table schema
    reward_from: Optional[str] = None         # which logged field is the reward
    correct_from: Optional[str] = None        # which logged field is the correctness verdict, if any
    token_scores: bool = False                # per-token log-probabilities logged with the token ids
    needs_tokenizer: bool = False             # token ids only, no text: --tokenizer decodes them
    unavailable: dict = dataclasses.field(default_factory=dict)  # metric -> why it stays NaN


def detect(path: Path, trust_remote_code: bool = False) -> LogLayout | None:
    """The framework layout at ``path`` (a folder, or one framework file), or None."""
    if path.is_file():
        return _single_file(path, trust_remote_code)
    if steps := prime_rl.find_steps(path):
        return _prime_rl(steps)
    if steps := nemo_rl.find_steps(path):
        return _nemo_rl(steps)
    if steps := roll.find_steps(path):
        return _roll(steps)
    if steps := areal.find_steps(path):
        return _areal(steps)
    if steps := slime.find_steps(path):
        return _slime(path, steps, trust_remote_code)
    return None


def _single_file(path: Path, trust_remote_code: bool) -> LogLayout | None:
    """One framework file named as its writer names it."""
    if nemo_rl.step_of(path) is not None:
        return _nemo_rl({nemo_rl.step_of(path): [path]})
    if roll.step_of(path) is not None:
        return _roll({roll.step_of(path): [path]})
    if path.suffix == ".pt":
        step = slime.step_of(path)
        return _slime(path, {step if step is not None else 0: [path]}, trust_remote_code)
    return None


def _prime_rl(steps: dict) -> LogLayout:
    return LogLayout(prime_rl.FRAMEWORK, list(steps.items()), prime_rl.read_step, token_scores=True,
                     needs_tokenizer=True,
                     unavailable={"accuracy": "prime-rl's token export holds no reward or verdict"})


def _nemo_rl(steps: dict) -> LogLayout:
    return LogLayout(nemo_rl.FRAMEWORK, list(steps.items()), nemo_rl.read_step, token_scores=True,
                     reward_from="NeMo-RL 'rewards' (the environment's reward)",
                     unavailable={"entropy": nemo_rl.ENTROPY_UNAVAILABLE})


def _roll(steps: dict) -> LogLayout:
    return LogLayout(roll.FRAMEWORK, list(steps.items()), roll.read_step,
                     reward_from="ROLL 'scores' (the reward workers' score)")


def _areal(steps: dict) -> LogLayout:
    return LogLayout(areal.FRAMEWORK, list(steps.items()), areal.read_step,
                     reward_from="AReaL 'reward' (the workflow's reward)")


def _slime(path: Path, steps: dict, trust_remote_code: bool) -> LogLayout:
    if not trust_remote_code:
        slime.refuse_untrusted(path)
    return LogLayout(slime.FRAMEWORK, list(steps.items()), slime.read_step, token_scores=True,
                     reward_from="slime 'reward' (its 'score' entry when a dict)",
                     unavailable={"entropy": "slime dumps log the engine's log-probabilities, not entropies"})
