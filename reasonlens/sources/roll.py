"""ROLL RLVR rollout dumps (``rollout_dump_dir``) as rollout-table rows.

Format read from alibaba/ROLL 8eb27cc, ``roll/pipeline/rlvr/utils.py`` (``dump_rollout_to_specific_path``,
``write_to_json_process``): ``{rollout_dump_dir}/rollout_dump_data.step_{N}.jsonl`` holds ONE JSON line, an
object of column arrays limited to ``COLUMMNS_CONFIG``: ``global_step, id, source, difficulty, prompt,
messages, ground_truth, case_type, test_case_function, test_cases, tag, domain, responses, scores,
sampling_params`` (only those the batch has). ``responses`` are decoded with ``skip_special_tokens=True``;
``scores`` is the reward (``data.batch['scores']``); ``ground_truth`` is the gold answer, graded here when
the log carries no verdict; ``id`` is the dataset row's id, our ``prompt_id`` (it links a prompt across
steps). ``sampling_params`` repeats the batch's meta info on every row and is dropped. ROLL writes the
file only when ``rollout_dump_dir`` is an absolute path.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from reasonlens import columns as C
from reasonlens.errors import ReasonlensError
from reasonlens.sources.files import cell_text, read_records, step_files, step_number

FRAMEWORK = "roll"
RENAME = {"global_step": C.STEP, "id": C.PROMPT_ID, "ground_truth": C.ANSWER, "responses": C.RESPONSE,
          "scores": C.REWARD}
EXAMPLE = '{"global_step": [3, 3], "prompt": ["q", "q"], "responses": ["a", "b"], "scores": [1.0, 0.0], ...}'
_FILE = re.compile(r"rollout_dump_data\.step_(\d+)\.jsonl")


def step_of(file: Path) -> int | None:
    """N of ``rollout_dump_data.step_N.jsonl``; None for any other name."""
    return step_number(_FILE, file.name)


def find_steps(root: Path) -> dict[int, list[Path]] | None:
    """``{step: [file]}`` of the dump files in ``root``; None when there are none."""
    return step_files(root.glob("rollout_dump_data.step_*.jsonl"), _FILE)


def read_step(files: list[Path], step: int) -> pd.DataFrame:
    """One step's column arrays as rows; arrays of different lengths are an error naming file and column."""
    frames = []
    for file in files:
        records = read_records(file, "ROLL rollout dump", EXAMPLE)
        if len(records) != 1:
            raise ReasonlensError(f"{file}: {len(records)} JSON lines; ROLL writes one line of column arrays per "
                                  "step file. The file was appended to or edited; keep the step's one line.")
        columns = {k: v for k, v in records[0][1].items() if k != "sampling_params"}
        frames.append(_frame(columns, file, step))
    return pd.concat(frames, ignore_index=True)


def _frame(columns: dict, file: Path, step: int) -> pd.DataFrame:
    """The column arrays as a DataFrame, checked to have one length and ROLL's response/score columns."""
    missing = [c for c in ("responses", "scores") if c not in columns]
    if missing or "prompt" not in columns and "messages" not in columns:
        raise ReasonlensError(f"{file}: no column(s) {missing or ['prompt']} (has {sorted(columns)}): not a ROLL "
                              "rollout dump. Re-dump it with rollout_dump_dir set.")
    lengths = {k: len(v) if isinstance(v, list) else None for k, v in columns.items()}
    if None in lengths.values() or len(set(lengths.values())) != 1:
        raise ReasonlensError(f"{file}: column arrays have different lengths {lengths}; each must hold one value "
                              "per response. The file is corrupt or cut; re-dump it.")
    df = pd.DataFrame(columns, dtype=object).rename(columns=RENAME)
    if "prompt" not in columns:
        df[C.PROMPT] = df["messages"]  # a conversation: its last message is the question
    df[C.PROMPT] = df[C.PROMPT].map(cell_text)
    if C.STEP not in df:
        df[C.STEP] = step
    if C.PROMPT_ID in df:
        df[C.PROMPT_ID] = df[C.PROMPT_ID].map(cell_text)
    return df
