"""prime-rl trainer token exports (``enable_token_export``) as rollout-table rows, one per sequence.

Format read from PrimeIntellect-ai/prime-rl 559b447, ``src/prime_rl/trainer/rl/token_export.py``:
``{output_dir}/token_exports/step_{N}/rank_{R}.jsonl``, one JSON object per packed sequence (prompt +
completion), with aligned per-token arrays ``token_ids, position_ids, loss_mask, advantages,
inference_logprobs, trainer_logprobs, entropy, mismatch_kl, ...`` (non-finite floats written as null)
and ``step, rank, micro_step, micro_sequence_idx, export_sequence_idx, env_name``. After every rank has
flushed a step, the trainer touches ``step_{N}/STABLE`` (``mark_stable``, after a barrier in
``src/prime_rl/trainer/rl/train.py``): a step folder without it is still being written and is skipped.

Alignment (``train.py``: ``labels = shift_tensor_left(input_ids)``, then ``shift_tensor_right`` on
``logprobs`` and ``entropy``, ``loss.py``): position t holds log p(token t | tokens < t) and the entropy
of that same distribution, at the sampling temperature. That is our convention, so the arrays are taken
as they are, restricted to ``loss_mask`` (the completion tokens the trainer trained on; in multi-turn
samples the environment's tokens between turns are left out). The prompt is the tokens before the
first loss-mask token; its hash is the ``prompt_id``. No text and no reward are exported: text comes
from decoding with ``--tokenizer``, and accuracy is unavailable.
"""

from __future__ import annotations

import hashlib
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from reasonlens import columns as C
from reasonlens.errors import ReasonlensError
from reasonlens.sources.files import read_records
from reasonlens.sources.token_logs import aligned, floats

FRAMEWORK = "prime-rl"
ARRAYS = ["token_ids", "loss_mask", "trainer_logprobs", "entropy"]
EXAMPLE = '{"step": 3, "token_ids": [...], "loss_mask": [...], "trainer_logprobs": [...], "entropy": [...]}'
_STEP_DIR = re.compile(r"step_(\d+)")
_RANK_FILE = re.compile(r"rank_(\d+)\.jsonl")


def find_steps(root: Path) -> dict[int, list[Path]] | None:
    """``{step: [rank files]}`` of the STABLE step folders under ``root`` (or ``root/token_exports``);
    None when ``root`` holds no token export. Unfinished steps are skipped with a warning."""
    base = root / "token_exports" if (root / "token_exports").is_dir() else root
    folders = {int(m.group(1)): d for d in base.iterdir()
               if d.is_dir() and (m := _STEP_DIR.fullmatch(d.name)) and any(d.glob("rank_*.jsonl"))}
    if not folders:
        return None
    unstable = sorted(s for s, d in folders.items() if not (d / "STABLE").is_file())
    if unstable:
        warnings.warn(f"prime-rl token exports {base}: step(s) {unstable} have no STABLE marker (still being "
                      "written, or the trainer stopped mid-step); they are skipped.", stacklevel=3)
    stable = {s: _rank_files(d) for s, d in sorted(folders.items()) if s not in unstable}
    if not stable:
        raise ReasonlensError(f"prime-rl token exports {base}: no step folder has its STABLE marker, so none is "
                              "known to be complete. Wait for the trainer to finish a step and rerun.")
    return stable


def _rank_files(folder: Path) -> list[Path]:
    files = [f for f in folder.iterdir() if _RANK_FILE.fullmatch(f.name)]
    return sorted(files, key=lambda f: int(_RANK_FILE.fullmatch(f.name).group(1)))


def read_step(files: list[Path], step: int) -> pd.DataFrame:
    """The rows of one step, every rank's file joined (ranks in order, then export order)."""
    rows = [_row(fields, file, where, step)
            for file in files for where, fields in read_records(file, "prime-rl token export", EXAMPLE)]
    return pd.DataFrame([r for r in rows if r is not None])


def _row(fields: dict, file: Path, where: str, step: int) -> dict | None:
    """One exported sequence as a rollout-table row (None for a sequence with no loss-mask token)."""
    names = ARRAYS + (["advantages"] if "advantages" in fields else [])
    arrays = aligned(fields, names, file, where)
    mask = np.array([bool(v) for v in arrays["loss_mask"]], dtype=bool)  # (T,) True = trained completion token
    if not mask.any():
        return None  # the exporter writes none of these; a hand-made file might
    ids = np.asarray(arrays["token_ids"], dtype=np.int64)
    prompt_ids = ids[: int(np.argmax(mask))]
    row = {C.STEP: step, C.PROMPT: "", C.RESPONSE: "", C.PROMPT_TOKEN_IDS: prompt_ids.tolist(),
           C.PROMPT_ID: hashlib.sha256(prompt_ids.tobytes()).hexdigest()[:12],
           C.TOKEN_IDS: ids[mask].tolist(), C.N_TOKENS: int(mask.sum()),
           C.LOGPROBS: floats(arrays["trainer_logprobs"], file, where, "trainer_logprobs")[mask].tolist(),
           C.ENTROPIES: floats(arrays["entropy"], file, where, "entropy")[mask].tolist(),
           "rank": fields.get("rank"), "env_name": fields.get("env_name")}
    if "advantages" in arrays:
        row[C.ADVANTAGES] = floats(arrays["advantages"], file, where, "advantages")[mask].tolist()
    return row
