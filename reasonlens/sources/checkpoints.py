"""Find the checkpoints of a training run, in step order, and refuse (or skip) the unusable ones.

Layouts: ``checkpoint-N`` (TRL / HF Trainer), ``step_N`` / ``step-N`` (reasonlens, others),
``global_step_N`` (verl: FSDP shards, Megatron, or merged; see sources/layouts.py), ``global_stepN_hf``
(OpenRLHF), PEFT adapter folders, a reasonlens training run (``RUN/checkpoints/step_N``), a single
model folder, or one .gguf file. NeMo-RL and prime-rl DCP checkpoints are refused with their converter.
"""

from __future__ import annotations

import errno
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from reasonlens.errors import ReasonlensError
from reasonlens.sources.integrity import (adapter_base_model, config_problem, model_folder_kind, tokenizer_hash,
                                          weight_problem)
from reasonlens.sources.layouts import foreign_problem, framework_of, verl_checkpoint, warn_short_series
from reasonlens.sources.specs import model_source, remote_code_problem
from reasonlens.sources.verl_fsdp import HF_SUBDIR, is_fsdp_actor

_STEP_DIR = re.compile(r"^(?:checkpoint-|step[_-]?|global_step_?)(\d+)(_hf)?$")
LAYOUTS = ("a folder of checkpoint-N/ (TRL, HF Trainer), step_N/ or step-N/, global_step_N/ (verl) or "
           "global_stepN_hf/ (OpenRLHF) subfolders, each a Hugging Face model folder or PEFT adapter; a reasonlens "
           "training run (RUN/checkpoints/step_N/); a single model folder (config.json or adapter_config.json); "
           "or a .gguf file")
SKIP_HINT = "Fix or remove them, or use --skip-bad to continue without them."


@dataclass(frozen=True)
class Checkpoint:
    """One model to analyse. ``str(path)`` is what model loading takes (a folder, .gguf, alias or hub id)."""

    step: int
    name: str
    path: Path
    kind: str  # "hf" | "peft" (or verl LoRA shards) | "verl" | "verl-fsdp" (merged when loaded) | "base" | "gguf"
    adapter_base: str | None = None  # PEFT only: the model the adapter applies to


@dataclass
class Series:
    """Checkpoints sorted by step, and the entries skipped with ``skip_bad`` (dicts: path, reason)."""

    checkpoints: list[Checkpoint]
    skipped: list[dict] = field(default_factory=list)


class _Bad(Exception):
    """An entry that can't be analysed, with the reason (internal: collected into one user error)."""


def discover_checkpoints(path, *, base: str | None = None, skip_bad: bool = False,
                         trust_remote_code: bool = False) -> Series:
    """The checkpoint series at ``path``, sorted by step; ``base`` adds the starting model as step 0.

    Parameters
    ----------
    path : a series folder, training run, single model folder or .gguf file (see ``LAYOUTS``).
    base : the model training started from (folder, .gguf, hub id or alias such as "smollm2"),
        added as step 0 named "base"; for PEFT adapters it is also the model they apply to.
    skip_bad : record unusable entries in ``Series.skipped`` instead of raising.
    trust_remote_code : accept checkpoints whose architecture is code shipped inside them.

    A single model folder or .gguf file is step 0, or step 1 when ``base`` is given. For PEFT
    adapters, ``base`` (when given) wins over the base named in adapter_config.json.

    Returns
    -------
    Series whose checkpoints all have weights that open and one tokenizer vocabulary.

    Examples
    --------
    >>> series = discover_checkpoints("runs/grpo", base="smollm2")  # doctest: +SKIP
    >>> [(c.step, c.name) for c in series.checkpoints]  # doctest: +SKIP
    [(0, 'base'), (100, 'checkpoint-100'), (200, 'checkpoint-200')]
    """
    root = Path(path).expanduser()
    if not root.exists():
        return _named_model(path, base)
    base_path = None if base is None else _base_path(base)
    entries = _entries(root, base_path)
    found, bad = [], []
    for entry in entries:
        try:
            found.append(_inspect(entry, base_path, trust_remote_code))
        except _Bad as reason:
            bad.append({"path": str(entry.path), "name": entry.name, "reason": str(reason)})
    bad += _duplicate_steps(found) + _tokenizer_mismatches(found)
    bad_paths = {b["path"] for b in bad}
    good = [c for c in found if str(c.path) not in bad_paths]
    _raise_or_record(root, bad, good, skip_bad)
    warn_short_series(sum(not e.is_base for e in entries), framework_of([e.name for e in entries], root), root)
    return Series(sorted(good, key=lambda c: c.step), [{"path": b["path"], "reason": b["reason"]} for b in bad])


def _named_model(spec, base) -> Series:
    """A bundled alias ("smollm2") or hub id is a series of one; any other missing path is an error."""
    try:
        kind, _ = model_source(spec)
    except ReasonlensError:
        kind = None
    if kind not in ("bundled", "hub") or base is not None:
        raise ReasonlensError(f"checkpoint path {spec} does not exist. Expected {LAYOUTS}.")
    return Series([Checkpoint(0, str(spec), Path(str(spec)), "base")], [])


class _Entry(NamedTuple):
    step: int
    name: str
    path: Path
    is_base: bool = False


def _entries(root: Path, base: Path | None) -> list[_Entry]:
    """Candidate entries at ``root`` in step order, the base model (from ``_base_path``) first when given."""
    head = [] if base is None else [_Entry(0, "base", base, True)]
    single_step = 1 if head else 0  # a lone model after its base counts as one step further
    if root.is_file():
        if root.suffix.lower() != ".gguf":
            raise ReasonlensError(f"checkpoint path {root} is a file but not a .gguf model. Expected {LAYOUTS}.")
        return head + [_Entry(single_step, root.stem, root)]
    numbered = _numbered(root)
    if not numbered and (root / "checkpoints").is_dir():  # a reasonlens training run
        root = root / "checkpoints"
        numbered = _numbered(root)
    if numbered:
        return head + numbered
    if model_folder_kind(root) is not None:
        return head + [_Entry(single_step, root.name, root)]
    raise ReasonlensError(f"no checkpoints found in {root}. Expected {LAYOUTS}.")


def _numbered(root: Path) -> list[_Entry]:
    found = [_Entry(int(m.group(1)), p.name, p) for p in root.iterdir()  # folders, files, broken links: all named
             if (m := _STEP_DIR.match(p.name))]
    return sorted(found, key=lambda e: (e.step, e.name))


def _base_path(base: str) -> Path:
    """A local base as an absolute path; an alias or hub id stays as written (model loading resolves it)."""
    local = Path(base).expanduser()
    if local.exists():
        return local.resolve()
    if base.startswith((".", "/", "~")) or base.lower().endswith(".gguf"):
        raise ReasonlensError(f"base model {base} does not exist. Pass an existing folder or .gguf file, "
                              "a hub id, or the bundled alias smollm2.")
    return Path(base)


def _inspect(entry: _Entry, base: Path | None, trust_remote_code: bool) -> Checkpoint:
    """The Checkpoint for one entry, or _Bad with the reason it can't be used."""
    if entry.is_base:
        if model_folder_kind(entry.path) == "peft":
            raise _Bad("--base is a PEFT adapter; it must be the full model the checkpoints started from")
        if entry.path.exists():  # a local base must open like any checkpoint
            _inspect_local(entry.path, None)
            _check_code(entry.path, trust_remote_code)
        return Checkpoint(0, "base", entry.path, "base")  # an alias or hub id is resolved when loaded
    if not entry.path.is_dir() and entry.path.suffix.lower() != ".gguf":
        raise _Bad(_not_a_folder(entry.path))
    problem = None if model_folder_kind(entry.path) else foreign_problem(entry.path)
    if problem:
        raise _Bad(problem)
    if entry.name.startswith("global_step") and not entry.name.endswith("_hf"):
        try:
            path, kind, adapter_base = verl_checkpoint(entry.path, None if base is None else str(base))
        except ReasonlensError as err:
            raise _Bad(str(err)) from None
        found = Checkpoint(entry.step, entry.name, path, kind, adapter_base)
    else:
        found = _inspect_local(entry.path, None if base is None else str(base))
    _check_code(_config_folder(found), trust_remote_code)
    return Checkpoint(entry.step, entry.name, found.path, found.kind, found.adapter_base)


def _not_a_folder(path: Path) -> str:
    """Why a step-named entry is not a checkpoint folder: a broken symlink, a symlink loop, or a plain file."""
    if path.is_symlink():
        try:
            path.resolve(strict=True)
        except (OSError, RuntimeError) as err:  # RuntimeError: Python < 3.13 reports a loop so
            loop = isinstance(err, RuntimeError) or getattr(err, "errno", None) == errno.ELOOP
            return "a symlink loop" if loop else f"a dangling symlink (to {os.readlink(path)}, which does not exist)"
    return "a file, not a checkpoint folder" if path.exists() else "unreadable (not a folder)"


def _config_folder(ckpt: Checkpoint) -> Path:
    """Where a checkpoint's config and tokenizer live: verl FSDP keeps them in actor/huggingface."""
    return ckpt.path / HF_SUBDIR if ckpt.path.is_dir() and is_fsdp_actor(ckpt.path) else ckpt.path


def _check_code(path: Path, trust_remote_code: bool) -> None:
    problem = None if trust_remote_code or not path.is_dir() else remote_code_problem(path)
    if problem:
        raise _Bad(problem)


def _inspect_local(path: Path, base: str | None) -> Checkpoint:
    """Checks for a model folder or .gguf file (step and name filled in by the caller)."""
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise _Bad("not a model folder or .gguf file")
        return Checkpoint(0, path.stem, path, "gguf")
    kind = model_folder_kind(path)
    if kind == "peft":
        return _inspect_peft(path, base)
    if kind is None:
        raise _Bad("no config.json (not a Hugging Face model folder, nor a PEFT adapter)")
    problem = config_problem(path) or weight_problem(path)
    if problem:
        raise _Bad(problem)
    return Checkpoint(0, path.name, path, "hf")


def _inspect_peft(path: Path, base: str | None) -> Checkpoint:
    try:
        recorded = adapter_base_model(path)
    except ValueError as err:
        raise _Bad(f"adapter_config.json is not valid JSON ({err})") from None
    adapter_base = base or recorded
    if not adapter_base:
        raise _Bad("adapter_config.json names no base model (base_model_name_or_path): pass --base MODEL")
    try:
        model_source(adapter_base)
    except ReasonlensError:
        raise _Bad(f"PEFT adapter whose base model {adapter_base!r} (base_model_name_or_path in "
                   "adapter_config.json) does not exist here: pass the base model with --base MODEL") from None
    problem = weight_problem(path, adapter=True)
    if problem:
        raise _Bad(problem)
    return Checkpoint(0, path.name, path, "peft", adapter_base)


def _duplicate_steps(found: list[Checkpoint]) -> list[dict]:
    first: dict[int, Checkpoint] = {}
    bad = []
    for ckpt in found:
        if ckpt.step in first:
            bad.append({"path": str(ckpt.path), "name": ckpt.name,
                        "reason": f"step {ckpt.step} again (also {first[ckpt.step].name})"})
        else:
            first[ckpt.step] = ckpt
    return bad


def _tokenizer_mismatches(found: list[Checkpoint]) -> list[dict]:
    """Entries whose vocabulary differs from the most common one (folders without tokenizer files inherit)."""
    memo: dict = {}
    hashes = {c.path: tokenizer_hash(_config_folder(c), memo) for c in found if c.path.is_dir()}
    counts = Counter(h for h in hashes.values() if h is not None)
    if len(counts) < 2:
        return []
    reference = counts.most_common(1)[0][0]
    ref_name = next(c.name for c in found if hashes.get(c.path) == reference)
    return [{"path": str(c.path), "name": c.name,
             "reason": f"tokenizer differs from the rest of the series (vocabulary {hashes[c.path]} vs "
                       f"{reference} of {ref_name})"}
            for c in found if hashes.get(c.path) not in (None, reference)]


def _raise_or_record(root: Path, bad: list[dict], good: list[Checkpoint], skip_bad: bool) -> None:
    if bad and not skip_bad:
        lines = "\n".join(f"  - {b['name']}: {b['reason']}" for b in bad)
        raise ReasonlensError(f"{len(bad)} unusable checkpoint(s) in {root}:\n{lines}\n{SKIP_HINT}")
    if not good:
        reasons = "; ".join(f"{b['name']}: {b['reason']}" for b in bad)
        raise ReasonlensError(f"no usable checkpoints in {root} (all skipped: {reasons}). Expected {LAYOUTS}.")
