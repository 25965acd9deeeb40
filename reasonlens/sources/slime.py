"""slime rollout dumps (``--save-debug-rollout-data``, ``--dump-details``) as rollout-table rows.

Format read from THUDM/slime 624b824: ``slime/observability/rollout_data_utils.py``
(``save_debug_rollout_data``) writes ``torch.save({"rollout_id": N, "samples": [Sample.to_dict()]})`` to
the path template (``{rollout_id}.pt``, ``eval_{rollout_id}.pt`` for evaluations; ``--dump-details DIR``
gives ``DIR/rollout_data/{id}.pt``). ``Sample`` (``slime/utils/types.py``) has ``prompt`` (text or
messages), ``tokens`` (prompt + response ids), ``response``, ``response_length``, ``label`` (gold),
``reward`` (a number, or a dict read with ``--reward-key``), ``status`` (``"truncated"``, ...) and
``rollout_log_probs`` (the engine's log-probability of each response token, at its position: our
convention).

These files are pickles: loading one runs whatever code it names. They are refused unless the user
passes ``--trust-remote-code``, and then loaded with ``torch.load(weights_only=False)``.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pandas as pd

from reasonlens import columns as C
from reasonlens.errors import ReasonlensError
from reasonlens.sources.files import cell_text, step_files, step_number
from reasonlens.sources.values import parse_reward

FRAMEWORK = "slime"
_FILE = re.compile(r"(?:eval_)?(\d+)\.pt")


def step_of(file: Path) -> int | None:
    """N of ``N.pt`` / ``eval_N.pt``; None for any other name."""
    return step_number(_FILE, file.name)


def find_steps(root: Path) -> dict[int, list[Path]] | None:
    """``{rollout_id: [file]}`` of the ``.pt`` dumps in ``root`` (or ``root/rollout_data``); None if none."""
    for base in (root / "rollout_data", root):
        if base.is_dir() and (steps := step_files(base.glob("*.pt"), _FILE)):
            return steps
    return None


def refuse_untrusted(path: Path) -> None:
    """The error for a slime dump opened without --trust-remote-code."""
    raise ReasonlensError(f"{path} holds slime rollout dumps (.pt): torch pickles, and loading a pickle runs any "
                          "code it names. Pass --trust-remote-code only if you trust the files (your own run), "
                          "or convert them to JSONL (prompt, response, label, reward per line) elsewhere.")


def read_step(files: list[Path], step: int) -> pd.DataFrame:
    """The samples of one rollout (only ever called after the user passed --trust-remote-code)."""
    import torch

    rows = []
    for file in files:
        try:
            data = torch.load(file, map_location="cpu", weights_only=False)  # trusted by the user's flag
        except Exception as err:  # noqa: BLE001 - a corrupt pickle raises anything
            raise ReasonlensError(f"{file}: not a readable torch file ({type(err).__name__}: {err}). "
                                  "It may be truncated; re-dump it.") from None
        if not isinstance(data, dict) or not isinstance(data.get("samples"), list):
            raise ReasonlensError(f"{file}: expected slime's {{'rollout_id', 'samples': [...]}}, got "
                                  f"{type(data).__name__}. Pass a --save-debug-rollout-data file.")
        if not all(isinstance(s, dict) for s in data["samples"]):
            raise ReasonlensError(f"{file}: a sample is not a dict (Sample.to_dict()); this is not a slime "
                                  "rollout dump. Pass a --save-debug-rollout-data file.")
        rows += [_row(s, file, i, step) for i, s in enumerate(data["samples"])]
    table = pd.DataFrame(rows)
    if C.TOKEN_IDS in table and table[C.TOKEN_IDS].isna().any():  # token scores for only some samples
        warnings.warn(f"slime rollout {step}: some samples have no rollout_log_probs; the step's token scores "
                      "are dropped so that every response is measured alike.", stacklevel=2)
        table = table.drop(columns=[C.TOKEN_IDS, C.LOGPROBS])
    return table


def _row(sample: dict, file: Path, i: int, step: int) -> dict:
    """One ``Sample.to_dict()`` as a rollout-table row; a dict reward gives its 'score' entry."""
    reward = sample.get("reward")
    if isinstance(reward, dict):
        reward = reward.get("score")
    try:
        reward = parse_reward(reward)
    except ValueError as err:
        raise ReasonlensError(f"{file} sample {i}: reward = {sample.get('reward')!r} is {err}.") from None
    row = {C.STEP: step, C.PROMPT: cell_text(sample.get("prompt")), C.RESPONSE: cell_text(sample.get("response")),
           C.ANSWER: cell_text(sample.get("label")), C.REWARD: reward,
           C.TRUNCATED: sample.get("status") == "truncated", "group_index": sample.get("group_index")}
    n = int(sample.get("response_length") or 0)
    logprobs, tokens = sample.get("rollout_log_probs"), list(sample.get("tokens") or [])
    if n and logprobs is not None:
        if len(logprobs) != n or len(tokens) < n:
            raise ReasonlensError(f"{file} sample {i}: response_length = {n} but rollout_log_probs has "
                                  f"{len(logprobs)} values and tokens {len(tokens)}: the arrays disagree.")
        row.update({C.TOKEN_IDS: [int(t) for t in tokens[-n:]], C.N_TOKENS: n,
                    C.LOGPROBS: [float(v) for v in logprobs]})
    return row
