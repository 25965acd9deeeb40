"""Cheap checks that a model folder is usable: its weights open, and which tokenizer vocabulary it carries.

Weights are checked by header only (safetensors) or memory-mapped (.bin), never loaded in full.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

from reasonlens.sources.verl_fsdp import HF_SUBDIR, fsdp_files, is_fsdp_actor

SAFETENSORS_INDEX = ("model.safetensors.index.json", "adapter_model.safetensors.index.json")
BIN_INDEX = ("pytorch_model.bin.index.json",)
MODEL_CONFIG = "config.json"
ADAPTER_CONFIG = "adapter_config.json"


def model_folder_kind(folder: Path) -> str | None:
    """``"peft"`` for a PEFT adapter folder, ``"hf"`` for a Hugging Face model folder, else None.

    adapter_config.json is checked first: a folder holding both files is treated as an adapter.
    """
    if (folder / ADAPTER_CONFIG).is_file():
        return "peft"
    if (folder / MODEL_CONFIG).is_file():
        return "hf"
    return None


def adapter_base_model(folder: Path) -> str | None:
    """The ``base_model_name_or_path`` in ``folder``'s adapter_config.json (None when unset).

    Raises OSError when the file can't be read and ValueError when it is not JSON.
    """
    config = json.loads((folder / ADAPTER_CONFIG).read_text())
    if not isinstance(config, dict):
        raise ValueError(f"a JSON {type(config).__name__}, not an object")
    return config.get("base_model_name_or_path")


def config_problem(folder: Path) -> str | None:
    """Why ``folder``'s config.json can't describe a model (unreadable, not JSON, not an object), or None."""
    try:
        config = json.loads((folder / MODEL_CONFIG).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        return f"config.json is unreadable ({err})"
    return None if isinstance(config, dict) else f"config.json is a JSON {type(config).__name__}, not an object"


def weight_problem(folder: Path, *, adapter: bool = False) -> str | None:
    """Why the weights in ``folder`` can't be used (missing or unreadable), or None when they open."""
    files = weight_files(folder, adapter=adapter)
    if not files:
        expected = "adapter_model.safetensors or adapter_model.bin" if adapter else \
            "*.safetensors or pytorch_model*.bin"
        return f"no weights ({expected})"
    for file in files:
        if file.name.endswith(".index.json"):  # weight_files hands back an index it could not parse
            return f"{file.name} is unreadable (unreadable weight index)"
        if not file.is_file():
            return f"{file.name} is listed in the weight index but missing"
        problem = _safetensors_problem(file) if file.suffix == ".safetensors" else _bin_problem(file)
        if problem:
            return f"{file.name} is unreadable ({problem})"
    return None


FINGERPRINTED = (MODEL_CONFIG, ADAPTER_CONFIG, "generation_config.json", "tokenizer.json", "tokenizer_config.json",
                 "tokenizer.model", "vocab.json", "merges.txt", "vocab.txt", "special_tokens_map.json",
                 "chat_template.jinja")


def fingerprint_files(folder: Path) -> list[Path]:
    """The files whose change changes what a model folder generates: weights, configs, tokenizer."""
    if model_folder_kind(folder) is None and is_fsdp_actor(folder):  # verl: shards + actor/huggingface/
        hf = folder / HF_SUBDIR
        return fsdp_files(folder) + sorted(hf / name for name in FINGERPRINTED if (hf / name).is_file())
    adapter = model_folder_kind(folder) == "peft"
    named = [folder / name for name in FINGERPRINTED if (folder / name).is_file()]
    return sorted(set(weight_files(folder, adapter=adapter)) | set(named))


def weight_files(folder: Path, *, adapter: bool = False) -> list[Path]:
    """The weight files of ``folder``: the shards an index lists, else the weight files present."""
    for index in SAFETENSORS_INDEX + BIN_INDEX:
        if (folder / index).is_file():
            try:
                shards = json.loads((folder / index).read_text())["weight_map"].values()
            except (ValueError, KeyError, TypeError):
                return [folder / index]  # reported as unreadable by the per-file check
            return [folder / name for name in sorted(set(shards))]
    stem = "adapter_model" if adapter else ""
    found = sorted(p for p in folder.glob(f"{stem}*.safetensors") if p.is_file())
    if found:
        return found
    pattern = "adapter_model*.bin" if adapter else "pytorch_model*.bin"
    return sorted(p for p in folder.glob(pattern) if p.is_file())


def _safetensors_problem(file: Path) -> str | None:
    from safetensors import safe_open

    try:
        with safe_open(str(file), framework="numpy") as handle:
            handle.keys()
    except Exception as err:  # noqa: BLE001 - safetensors raises its own error types for bad headers
        return _brief(err)
    return None


def _bin_problem(file: Path) -> str | None:
    import torch

    try:  # mmap keeps this cheap for large files; it needs the zip format torch has written since 1.6
        torch.load(file, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(file))
    except Exception as err:  # noqa: BLE001 - pickle/zip/torch errors all mean "can't load"
        return _brief(err)
    return None


def _brief(err: Exception) -> str:
    """The error's type and first line: torch's unpickling errors run to a dozen lines."""
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[0][:200] if lines else ''}"


def tokenizer_hash(folder: Path, memo: dict | None = None) -> str | None:
    """A short hash of the vocabulary in ``folder`` (None when it holds no tokenizer files).

    Only the vocabulary, merges and added tokens count, so the same tokenizer re-saved with
    other padding or truncation settings hashes the same. ``memo`` caches by file content.
    """
    path = folder / "tokenizer.json"
    if path.is_file():
        raw = path.read_bytes()
        key = hashlib.sha256(raw).hexdigest()
        if memo is not None and key in memo:
            return memo[key]
        value = _short(_canonical_vocab(raw))
        if memo is not None:
            memo[key] = value
        return value
    parts = [folder / name for name in ("vocab.json", "merges.txt", "tokenizer.model", "vocab.txt")]
    present = [p for p in parts if p.is_file()]
    if not present:
        return None
    return _short(b"".join(p.name.encode() + b"\0" + p.read_bytes() for p in present))


def _canonical_vocab(raw: bytes) -> bytes:
    try:
        data = json.loads(raw)
    except ValueError:
        return raw  # not JSON: compare the bytes themselves
    model = data.get("model") or {}
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges") or []]
    added = sorted((t.get("id"), t.get("content")) for t in data.get("added_tokens") or [])
    return json.dumps([model.get("vocab"), merges, added], sort_keys=True).encode()


def _short(blob: bytes) -> str:
    return hashlib.sha256(blob).hexdigest()[:12]
