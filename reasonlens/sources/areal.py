"""AReaL rollout dumps (``rollout.dump_to_file=True``) as rollout-table rows.

Format read from inclusionAI/AReaL 4aef98d, ``areal/infra/workflow_executor.py``
(``_get_dump_dir``, ``_dump_trajectory``): ``{log_path}/rollout/{tail_version}/{task_id}.jsonl`` (evaluation:
``eval-rollout/``), appended to, one JSON object per sample with ``task_id, sample_idx, seqlen,
prompt_len, head_version, tail_version, reward, prompt, completion``; prompt and completion are decoded
with ``skip_special_tokens=False``. The folder name is the newest weight version that produced the
sample (``tail_version``): it is our ``step``. ``reward`` is the workflow's reward (no gold answer is
dumped, so correctness is ``reward > 0.5`` in the dynamics). Completion length in tokens is
``seqlen - prompt_len``. Samples are linked across versions by their prompt text.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from reasonlens import columns as C
from reasonlens.errors import ReasonlensError
from reasonlens.sources.files import read_records
from reasonlens.sources.values import parsed_field

FRAMEWORK = "areal"
FIELDS = ("task_id", "sample_idx", "seqlen", "prompt_len", "tail_version", "reward", "prompt", "completion")
EXAMPLE = ('{"task_id": 0, "sample_idx": 0, "seqlen": 90, "prompt_len": 40, "head_version": 3, '
           '"tail_version": 3, "reward": 1.0, "prompt": ..., "completion": ...}')


def find_steps(root: Path) -> dict[int, list[Path]] | None:
    """``{version: [task files]}`` under ``root`` or ``root/rollout``; None when neither holds version folders
    of AReaL records (checked on the first line of one file)."""
    for base in (root / "rollout", root):
        folders = {int(d.name): sorted(d.glob("*.jsonl")) for d in base.iterdir()
                   if d.is_dir() and d.name.isdigit()} if base.is_dir() else {}
        folders = {v: files for v, files in folders.items() if files}
        if folders and _looks_like_areal(next(iter(folders.values()))[0]):
            return dict(sorted(folders.items()))
    return None


def _looks_like_areal(file: Path) -> bool:
    import json

    with file.open(encoding="utf-8", errors="replace") as lines:
        first = lines.readline()
    try:
        record = json.loads(first)
    except json.JSONDecodeError:
        return True  # an AReaL-shaped tree with a broken file: let the reader name the line
    return isinstance(record, dict) and {"tail_version", "completion"} <= set(record)


def read_step(files: list[Path], step: int) -> pd.DataFrame:
    """The samples of one weight version, every task file joined (file order, then line order)."""
    rows = []
    for file in files:
        for where, fields in read_records(file, "AReaL rollout dump", EXAMPLE):
            missing = [f for f in FIELDS if f not in fields]
            if missing:
                raise ReasonlensError(f"{file} {where}: no field(s) {missing}: not an AReaL rollout record "
                                      f"(expected {EXAMPLE}). Re-dump it or remove the file.")
            seqlen, prompt_len = (parsed_field(fields, k, file, where, "count") for k in ("seqlen", "prompt_len"))
            rows.append({C.STEP: step, C.PROMPT: fields["prompt"], C.RESPONSE: fields["completion"],
                         C.REWARD: parsed_field(fields, "reward", file, where, "reward"),
                         C.N_TOKENS: seqlen - prompt_len, "task_id": fields["task_id"],
                         "areal_sample_idx": fields["sample_idx"], "head_version": fields.get("head_version")})
    return pd.DataFrame(rows)
