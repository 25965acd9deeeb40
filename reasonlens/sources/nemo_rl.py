"""NeMo-RL GRPO training data (``{log_dir}/train_data_step{N}.jsonl``) as rollout-table rows.

Format read from NVIDIA-NeMo/RL 7ea279a: ``nemo_rl/algorithms/grpo.py`` (``grpo_train``, "Log training
data") builds ``content`` (each message's text, from ``batched_message_log_to_flat_message``),
``rewards``, ``input_lengths``, ``token_ids``, ``token_loss_mask``, ``sample_loss_mask``, ``advantages``,
``generation_logprobs``, ``prev_logprobs`` and writes them with ``Logger.log_batched_dict_as_jsonl``
(``nemo_rl/utils/logger.py``): one line per sample from ``make_microbatch_iterator(1)``, so every value
is that sample's one-element slice (``"rewards": [1.0]``, ``"token_ids": [[...]]``) plus ``idx``.
Token arrays are right-padded to the batch's longest sequence; ``input_lengths`` is the real length.

Alignment: ``generation_logprobs`` are the sampler's log-probabilities of each generated token, stored
at that token's position (``nemo_rl/experience/rollouts.py`` puts ``logprobs[i, input_length:total]``
on the assistant message; the loss compares ``generation_logprobs[:, 1:]`` with next-token log-probs,
``nemo_rl/algorithms/loss/loss_functions.py``), which is our convention. Response tokens are those with
``token_loss_mask`` set. No entropy is logged: entropy metrics stay unavailable (NaN) unless the run is
re-scored with its checkpoints. ``rewards`` is the reward; correctness is graded only when the log has
gold answers (it does not).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pandas as pd

from reasonlens import columns as C
from reasonlens.errors import ReasonlensError
from reasonlens.sources.files import cell_text, read_records, step_files, step_number
from reasonlens.sources.values import parse_reward, parse_step
from reasonlens.sources.token_logs import aligned, floats

FRAMEWORK = "nemo-rl"
ARRAYS = ["token_ids", "token_loss_mask", "generation_logprobs", "advantages"]
EXAMPLE = '{"content": [["q", "a"]], "rewards": [1.0], "input_lengths": [7], "token_ids": [[...]], ...}'
ENTROPY_UNAVAILABLE = ("NeMo-RL's train_data_step*.jsonl logs no entropies; re-score the log with the run's "
                       "checkpoints (reasonlens analyze CHECKPOINTS --rollouts LOG) to measure them")
_FILE = re.compile(r"train_data_step(\d+)\.jsonl")


def step_of(file: Path) -> int | None:
    """N of ``train_data_stepN.jsonl``; None for any other name."""
    return step_number(_FILE, file.name)


def find_steps(root: Path) -> dict[int, list[Path]] | None:
    """``{step: [file]}`` of the ``train_data_step{N}.jsonl`` files in ``root``; None when there are none."""
    return step_files(root.glob("train_data_step*.jsonl"), _FILE)


def read_step(files: list[Path], step: int) -> pd.DataFrame:
    """The samples of one step, in file order."""
    return pd.DataFrame([_row(fields, file, where, step)
                         for file in files for where, fields in read_records(file, "NeMo-RL train data", EXAMPLE)])


def _unwrap(value):
    """A one-sample slice's value: ``[x]`` -> ``x`` (the logger writes each sample as a batch of one)."""
    return value[0] if isinstance(value, list) and len(value) == 1 else value


def _row(fields: dict, file: Path, where: str, step: int) -> dict:
    """One logged sample as a rollout-table row: the loss-masked tokens of its real (unpadded) length."""
    fields = {k: _unwrap(v) for k, v in fields.items()}
    arrays = aligned(fields, ARRAYS, file, where)
    try:
        length = parse_step(fields.get("input_lengths"))
        reward = parse_reward(fields.get("rewards"))
    except ValueError as err:
        raise ReasonlensError(f"{file} {where}: input_lengths/rewards: {err}. Re-export the file.") from None
    if length > len(arrays["token_ids"]):
        raise ReasonlensError(f"{file} {where}: input_lengths = {length} but only {len(arrays['token_ids'])} "
                              "tokens are logged. The file is corrupt or cut; re-export it.")
    mask = np.array([bool(v) for v in arrays["token_loss_mask"][:length]], dtype=bool)  # (L,) True = generated
    ids = np.asarray(arrays["token_ids"][:length], dtype=np.int64)
    first = int(np.argmax(mask)) if mask.any() else length
    content = fields.get("content") if isinstance(fields.get("content"), list) else [fields.get("content")]
    return {C.STEP: step, C.PROMPT: "".join(cell_text(m) for m in content[:-1]),
            C.RESPONSE: cell_text(content[-1]) if content else "", C.PROMPT_TOKEN_IDS: ids[:first].tolist(),
            C.PROMPT_ID: hashlib.sha256(ids[:first].tobytes()).hexdigest()[:12],
            C.TOKEN_IDS: ids[mask].tolist(), C.N_TOKENS: int(mask.sum()), C.REWARD: reward,
            C.LOGPROBS: floats(arrays["generation_logprobs"][:length], file, where, "generation_logprobs")[mask].tolist(),
            C.ADVANTAGES: floats(arrays["advantages"][:length], file, where, "advantages")[mask].tolist(),
            "sample_loss_mask": fields.get("sample_loss_mask")}
