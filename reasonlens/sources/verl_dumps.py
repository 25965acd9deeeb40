"""verl rollout and validation dumps (``{dir}/{global_step}.jsonl``) as rollout-table columns.

Read from verl's writer, never guessed (verl-project/verl 1dda039):
``verl/trainer/ppo/v1/trainer_base.py`` ``_write_generations`` writes one JSON object per sample with
``input, output, gts, score, step`` plus every ``reward_extra_infos_dict`` list of the batch's length.
Three kinds come out of it:

- **v1 training dump** (``trainer.rollout_data_dir``, ``_log_rollout_data``): adds ``uid`` =
  ``{uuid4}_{session_id}_{index}``, the TransferQueue key (``verl/trainer/ppo/v1/replay_buffer.py``).
  The part before the last two underscores is the GRPO group; the uuid4 is drawn anew every step, so a
  prompt is linked across steps by its ``input`` text (our ``prompt_id``), and the group is kept as
  ``group_id``. The reward function's extra columns are not written by this trainer.
- **legacy training dump** (``verl/trainer/ppo/ray_trainer.py`` ``_log_rollout_data``): every
  ``reward_extra_info`` key (e.g. ``acc``, ``pred``) and ``request_id``; written with ``default=str``, so
  numpy booleans arrive as ``"True"``/``"False"`` (parsed strictly as booleans).
- **validation dump** (``trainer.validation_data_dir``; v1 ``_validate``): adds ``reward`` (the same
  list as ``score``: ``reward_extra_infos_dict["reward"].extend(scores)``), the reward function's extras
  and ``uid``. With ``val_before_train`` the step-0 file is the base model.

Reward and correctness, kept apart: ``score`` (``rm_scores.sum(-1)``, whatever the reward function
returns: DAPO's math reward gives +1/-1) is our ``reward``; the reward function's ``acc`` extra
(``verl/utils/reward_score/math_dapo.py`` returns ``{"score", "acc", "pred"}``), when logged, is our
``correct``. Without ``acc`` the analysis grades ``gts`` (our ``answer``) itself.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from reasonlens import columns as C

FRAMEWORK = "verl"
RENAME = {"input": C.PROMPT, "output": C.RESPONSE, "gts": C.ANSWER, "score": C.REWARD, "acc": C.CORRECT}
GROUP_ID = "group_id"  # str: the GRPO group of a v1 dump row (uid without its session and index)
REWARD_FROM = "verl 'score' (sum of the reward function's token scores, rm_scores)"
CORRECT_FROM = "verl 'acc' (the reward function's correctness extra)"


def is_verl_dump(columns) -> bool:
    """A verl dump has verl's text columns ``input`` and ``output`` (and ``score``, which we do not require)."""
    return {"input", "output"} <= set(columns)


def dump_kind(columns) -> str:
    """``validation`` (has ``reward``), ``v1`` (has ``uid``) or ``legacy``."""
    columns = set(columns)
    return "validation" if {"reward", "score"} <= columns else ("v1" if "uid" in columns else "legacy")


def normalise(raw: pd.DataFrame, file: Path) -> pd.DataFrame:
    """verl columns renamed to ours; validation ``reward`` dropped when it repeats ``score`` (it always
    does in verl's source), else kept as ``verl_reward``; the v1 ``uid`` split into ``group_id``."""
    df = raw.copy()
    if "reward" in df.columns and "score" in df.columns:
        same = pd.to_numeric(df["reward"], errors="coerce").equals(pd.to_numeric(df["score"], errors="coerce"))
        df = df.drop(columns=["reward"]) if same else df.rename(columns={"reward": "verl_reward"})
    if C.CORRECT in df.columns and "acc" in df.columns:
        df = df.rename(columns={C.CORRECT: "verl_correct"})  # never overwrite a column the log names ours
    df = df.rename(columns=RENAME)
    if "uid" in df.columns:
        df[GROUP_ID] = [str(u).rsplit("_", 2)[0] if str(u).count("_") >= 2 else str(u) for u in df["uid"]]
    return df
