"""What a model spec names, decided without loading anything: the bundled alias, a folder, a GGUF
file, a PEFT adapter, or a hub id; and whether the hub can be reached at all.

When the hub is offline or unreachable, hub ids are looked up in the local cache only, so a missing
model fails in milliseconds with one sentence, not after ~46 s of retries.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

from reasonlens.errors import ReasonlensError
from reasonlens.sources.integrity import MODEL_CONFIG, model_folder_kind
from reasonlens.sources.verl_fsdp import is_fsdp_actor

DEFAULT_MODEL = "smollm2"
SMOLLM2_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
LOCAL_ALIASES = frozenset({"smollm2", "smollm2-135m-instruct"})
KINDS = ("bundled", "gguf", "peft", "hf", "verl-fsdp", "hub")
_TRUTHY = ("1", "true", "yes", "on")


def hub_offline_requested() -> bool:
    """True when HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE is set to a true value."""
    return any(os.environ.get(var, "").strip().lower() in _TRUTHY for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def hub_online() -> bool:
    """False when offline mode is set or the hub endpoint can't be reached within 3 s."""
    if hub_offline_requested():
        return False
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=3).close()
    except OSError:
        return False
    return True


def model_source(spec: str | os.PathLike) -> tuple[str, str | Path]:
    """Classify a spec without loading it: ``(kind, where)``, kind one of ``KINDS``.

    Examples
    --------
    >>> model_source("smollm2")
    ('bundled', 'smollm2')
    """
    text = str(spec)
    if text.lower() in LOCAL_ALIASES:
        return "bundled", text
    path = Path(text).expanduser()
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise ReasonlensError(f"Model {text!r} is a file but not a .gguf; pass a .gguf file, an HF model "
                                  "folder (with config.json), a PEFT adapter folder, or a hub id.")
        return "gguf", path
    if path.is_dir():
        return _classify_folder(path)
    if text.endswith(".gguf") or text.startswith(("/", ".", "~")):
        raise ReasonlensError(f"Model path {text!r} does not exist; check the path.")
    if text.lower() == SMOLLM2_HUB_ID.lower() and not hub_online():
        return "bundled", text
    return "hub", text


def _classify_folder(path: Path) -> tuple[str, Path]:
    kind = model_folder_kind(path)
    if kind is not None:
        return kind, path
    if is_fsdp_actor(path):
        return "verl-fsdp", path
    ggufs = sorted(path.glob("*.gguf"))
    if len(ggufs) == 1:
        return "gguf", ggufs[0]
    found = ", ".join(p.name for p in ggufs) or "none"
    raise ReasonlensError(
        f"Model folder {str(path)!r} has no config.json, no adapter_config.json and not exactly one .gguf "
        f"(.gguf files: {found}); pass an HF model folder, a PEFT adapter folder or a single .gguf file.")


def remote_code_problem(folder: Path) -> str | None:
    """Why ``folder`` would need code shipped inside it (its config.json or tokenizer_config.json maps a model
    type or tokenizer class transformers does not know to its own ``*.py``), or None. Checked before any load,
    so the answer comes at once."""
    data = _json_object(folder / MODEL_CONFIG)
    if "auto_map" in data:
        from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

        if data.get("model_type") not in CONFIG_MAPPING_NAMES:  # a known one: transformers' code, auto_map ignored
            return (f"its config.json maps model type {data.get('model_type')!r} to code shipped inside the "
                    f"checkpoint (auto_map: {_targets(data['auto_map'])}), which reasonlens never runs unless "
                    "you pass --trust-remote-code")
    tokenizer = _json_object(folder / "tokenizer_config.json")
    if isinstance(tokenizer.get("auto_map"), dict) and "AutoTokenizer" in tokenizer["auto_map"]:
        from transformers.models.auto.tokenization_auto import TOKENIZER_MAPPING_NAMES

        known = {str(name).removesuffix("Fast") for names in TOKENIZER_MAPPING_NAMES.values()
                 for name in (names if isinstance(names, tuple) else (names,))}
        if str(tokenizer.get("tokenizer_class")).removesuffix("Fast") not in known:
            return (f"its tokenizer_config.json maps tokenizer class {tokenizer.get('tokenizer_class')!r} to code "
                    f"shipped inside the checkpoint (auto_map: {_targets(tokenizer['auto_map'])}), which "
                    "reasonlens never runs unless you pass --trust-remote-code")
    return None


def _json_object(path: Path) -> dict:
    """A JSON object file, or {} when absent or unreadable (reported by the weight and config checks)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _targets(auto_map) -> str:
    values = auto_map.values() if isinstance(auto_map, dict) else [auto_map]
    return ", ".join(str(v) for v in values)
