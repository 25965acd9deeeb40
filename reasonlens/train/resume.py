"""Where a training run resumes: TRL's last complete checkpoint, and the run folder made consistent with it.

Resume uses TRL's own checkpoints (RUN/trl/checkpoint-N: weights, optimizer, scheduler, RNG and
data position). Whatever an interrupted run logged after step N is removed first, so every step
appears in metrics.csv and rollouts/ exactly once. A checkpoint a kill cut short (no readable
trainer_state.json or weights) is skipped with a warning and removed; a run killed before its
first checkpoint starts again from scratch, with a warning. Only what the folder's marker covers
(`folders`: a folder reasonlens made or adopted) is ever removed.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

from reasonlens.errors import ReasonlensError
from reasonlens.folders import owned, read_marker
from reasonlens.records import check_writable, remove_stale_temporaries, to_jsonable
from reasonlens.train.config import TrainConfig

_RESUMABLE = ("steps", "resume", "save_every", "report_to", "out", "threads")
RUN_FILES = ("metrics.csv", "rollouts", "trl", "checkpoints", "config.json")  # what a run's marker covers


def prepare_run_dir(config: TrainConfig, edit: bool = True) -> Path | None:
    """The TRL checkpoint to resume from (None for a fresh run); never a dead end.

    A run with a complete checkpoint needs ``--resume`` (or a new ``--out``); a run with none, killed
    before its first save, is cleared and started again. A run already at ``--steps`` is left as it is.
    Only the process with ``edit`` (the main one) removes or exports anything; the others, run after
    it, find the folder it left.
    """
    from reasonlens.train.recording import export_checkpoint, prune_after

    out, trl_dir = config.out, config.out / "trl"
    if out.is_dir() and edit:
        remove_stale_temporaries(out)
    last = last_complete_checkpoint(trl_dir, edit=edit)
    if last is None:
        marker = (read_marker(out) or {}) if out.is_dir() else {}
        ours = [out / name for name in RUN_FILES if owned(marker, name) and (out / name).exists()]
        if edit and ours:
            warnings.warn(f"{out} holds a run that stopped before its first checkpoint: starting it again.",
                          stacklevel=2)
            for path in ours:
                shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
        check_writable(out)
        return None
    if not config.resume:
        raise ReasonlensError(f"run folder {str(out)!r} already holds a run (last checkpoint: {last.name}): pass "
                              "--resume to continue it, or choose a new --out.")
    _check_same_run(config)
    step = checkpoint_step(last)
    if edit:
        prune_after(out, step)
        if not (out / "checkpoints" / f"step_{step}").is_dir():  # killed between TRL's save and our export
            export_checkpoint(last, out / "checkpoints" / f"step_{step}")
    return last


def checkpoint_step(folder: Path) -> int:
    """N of a TRL ``checkpoint-N`` folder."""
    return int(folder.name.split("-")[1])


def last_complete_checkpoint(trl_dir: Path, edit: bool = True) -> Path | None:
    """The highest ``checkpoint-N`` whose trainer_state.json (TRL writes it last) and weights read back;
    checkpoints cut short by a kill are removed (with ``edit``), with a warning."""
    from reasonlens.sources.integrity import weight_problem

    found = sorted((p for p in trl_dir.glob("checkpoint-*") if p.is_dir() and p.name.split("-")[1].isdigit()),
                   key=lambda p: int(p.name.split("-")[1]), reverse=True) if trl_dir.is_dir() else []
    for folder in found:
        adapter = (folder / "adapter_config.json").is_file()
        try:
            json.loads((folder / "trainer_state.json").read_text(encoding="utf-8"))
            problem = weight_problem(folder, adapter=adapter)
        except (OSError, ValueError) as err:
            problem = f"trainer_state.json unreadable ({err})"
        if problem is None:
            return folder
        if edit:
            warnings.warn(f"skipping the incomplete checkpoint {folder} ({problem}); removing it.", stacklevel=3)
            shutil.rmtree(folder, ignore_errors=True)
    return None


def _check_same_run(config: TrainConfig) -> None:
    """--resume may only lengthen a run (or change where/how often it saves), never change its recipe."""
    try:
        saved = json.loads((config.out / "config.json").read_text(encoding="utf-8"))["config"]
    except (OSError, ValueError, KeyError, TypeError):
        raise ReasonlensError(f"--resume: {config.out / 'config.json'} is missing or unreadable, so the run's recipe "
                              "is unknown; restore it, or start a new --out.") from None
    now = to_jsonable(config)
    changed = {k: (saved.get(k), v) for k, v in now.items() if k not in _RESUMABLE and saved.get(k) != v}
    if changed:
        diff = ", ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in changed.items())
        raise ReasonlensError(f"--resume: {str(config.out)!r} was trained with other settings ({diff}); "
                              "resume with the original settings, or start a new --out.")
