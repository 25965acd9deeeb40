"""Load a causal LM and its tokenizer from whatever the user points at.

A spec is one of: the bundled alias ``"smollm2"`` (also ``"SmolLM2-135M-Instruct"``, and the hub id
``"HuggingFaceTB/SmolLM2-135M-Instruct"`` when the hub is unreachable), a local HF folder, a ``.gguf``
file (dequantised, then made an ordinary model so it can be saved and trained), a PEFT adapter folder
(merged into its base: we analyse the model, we don't train the adapter here), or a hub id. When the
hub is offline or unreachable we look only in the local cache, so a missing model fails in
milliseconds with one sentence, not after ~46 s of retries.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

from reasonlens.errors import ReasonlensError
from reasonlens.models.bundled import (bundled_model_dir, bundled_model_folder, cache_dir, embedder_path,
                                       smollm2_gguf)
from reasonlens.sources.integrity import ADAPTER_CONFIG, adapter_base_model, model_folder_kind

__all__ = ["DEFAULT_MODEL", "DEFAULT_EMBEDDER", "SMOLLM2_HUB_ID", "load_model", "load_tokenizer",
           "load_gguf", "resolve_device", "resolve_dtype", "model_source", "bundled_model_dir",
           "embedder_path", "cache_dir"]

DEFAULT_MODEL = "smollm2"
DEFAULT_EMBEDDER = "minilm"
SMOLLM2_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
_LOCAL_ALIASES = {"smollm2", "smollm2-135m-instruct"}
_DTYPE_NAMES = {"bf16": "bfloat16", "fp32": "float32", "fp16": "float16"}
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")


def resolve_device(device: str = "auto") -> str:
    """``"auto"`` -> ``"cuda"`` when a GPU is visible, else ``"cpu"``; checks an explicit choice."""
    import torch

    device = str(device).lower()
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        return device
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ReasonlensError(f"device={device!r} was requested but torch sees no CUDA GPU; "
                                  "use --device cpu or --device auto.")
        return device
    raise ReasonlensError(f"device={device!r} is not supported; expected 'cpu', 'cuda' or 'auto'.")


def resolve_dtype(dtype: str = "auto", device: str = "cpu"):
    """``"bf16"|"fp32"|"fp16"|"auto"`` -> torch dtype; auto = bf16 on CPU and bf16-capable GPUs, else fp32.

    bf16 is the default on CPU because it runs ~2x faster than fp32 there (environment.md).
    """
    import torch

    key = str(dtype).lower()
    if key == "auto":
        if device.startswith("cuda") and not torch.cuda.is_bf16_supported():
            return torch.float32
        return torch.bfloat16
    if key not in _DTYPE_NAMES:
        raise ReasonlensError(f"dtype={dtype!r} is not supported; expected 'bf16', 'fp32', 'fp16' or 'auto'.")
    return getattr(torch, _DTYPE_NAMES[key])


def _hub_online() -> bool:
    """False when offline mode is set or the hub endpoint can't be reached within 3 s."""
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on"):
            return False
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=3).close()
    except OSError:
        return False
    return True


def model_source(spec: str | os.PathLike) -> tuple[str, str | Path]:
    """Classify a spec without loading it: ``(kind, where)`` with kind in
    ``"bundled" | "gguf" | "peft" | "hf" | "hub"``."""
    text = str(spec)
    if text.lower() in _LOCAL_ALIASES:
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
    if text.lower() == SMOLLM2_HUB_ID.lower() and not _hub_online():
        return "bundled", text
    return "hub", text


def _classify_folder(path: Path) -> tuple[str, Path]:
    kind = model_folder_kind(path)
    if kind is not None:
        return kind, path
    ggufs = sorted(path.glob("*.gguf"))
    if len(ggufs) == 1:
        return "gguf", ggufs[0]
    found = ", ".join(p.name for p in ggufs) or "none"
    raise ReasonlensError(
        f"Model folder {str(path)!r} has no config.json, no adapter_config.json and not exactly one .gguf "
        f"(.gguf files: {found}); pass an HF model folder, a PEFT adapter folder or a single .gguf file.")


def load_gguf(path: str | os.PathLike, *, dtype=None):
    """Dequantise a GGUF file into an ordinary transformers model (quantizer markers dropped)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
        model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name)
    except (OSError, ValueError, KeyError) as err:
        raise ReasonlensError(f"Could not load the GGUF file {str(path)!r} ({err}); transformers dequantises "
                              "only some architectures: convert it to an HF folder instead.") from err
    # transformers marks GGUF models as quantized, which blocks save_pretrained and training.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.is_quantized = False
    if dtype is not None:
        model = model.to(dtype)
    return model, tokenizer


def _load_pretrained(where: str | Path, *, dtype, hub: bool):
    """AutoTokenizer + AutoModelForCausalLM from a folder or hub id, errors made readable."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    local_only = hub and not _hub_online()
    try:
        tokenizer = AutoTokenizer.from_pretrained(where, local_files_only=local_only)
        model = AutoModelForCausalLM.from_pretrained(where, dtype=dtype, local_files_only=local_only)
    except (OSError, ValueError) as err:
        raise _load_error(where, hub=hub, local_only=local_only, err=err) from err
    return model, tokenizer


def _load_error(where, *, hub: bool, local_only: bool, err: Exception) -> ReasonlensError:
    if not hub:
        return ReasonlensError(f"Could not load the model folder {str(where)!r} ({err}); it needs config.json, "
                               "weights and tokenizer files (save them with save_pretrained).")
    if local_only:
        return ReasonlensError(
            f"Model {where!r} is not a local path, not the bundled alias {DEFAULT_MODEL!r}, and not in the "
            "Hugging Face cache while the hub is offline or unreachable; pass a local model folder or .gguf "
            "file, or go online (unset HF_HUB_OFFLINE) to download it.")
    return ReasonlensError(f"Model {where!r} is neither a local path nor loadable from the Hugging Face hub "
                           f"({err}); check the id or pass a local model folder or .gguf file.")


def _adapter_base(adapter: Path, adapter_base: str | None) -> str:
    if adapter_base:
        return str(adapter_base)
    try:
        base = adapter_base_model(adapter)
    except (OSError, json.JSONDecodeError) as err:
        raise ReasonlensError(f"Could not read {str(adapter / ADAPTER_CONFIG)!r} ({err}); "
                              "repair or re-save the adapter.") from err
    if not base:
        raise ReasonlensError(f"PEFT adapter {str(adapter)!r} names no base_model_name_or_path; pass the base "
                              "model with --base / adapter_base=.")
    return base


def _has_tokenizer(folder: Path) -> bool:
    return any((folder / name).is_file() for name in _TOKENIZER_FILES)


def _load_peft(adapter: Path, adapter_base, device: str, dtype: str):
    """Load the base, apply the adapter and merge it, so analysis sees one ordinary model."""
    from peft import PeftModel

    base_model, tokenizer = load_model(_adapter_base(adapter, adapter_base), device=device, dtype=dtype)
    try:
        model = PeftModel.from_pretrained(base_model, adapter).merge_and_unload()
    except (OSError, ValueError, RuntimeError) as err:
        raise ReasonlensError(f"Could not apply the PEFT adapter {str(adapter)!r} to its base ({err}); "
                              "check that adapter_base is the model the adapter was trained on.") from err
    if _has_tokenizer(adapter):
        tokenizer = _tokenizer_from(adapter)
    return model, tokenizer


def _tokenizer_from(where, **kwargs):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(where, **kwargs)
    except (OSError, ValueError) as err:
        raise ReasonlensError(f"Could not load a tokenizer from {str(where)!r} ({err}); save one there with "
                              "tokenizer.save_pretrained(folder).") from err


def _prepare_tokenizer(tokenizer, model=None):
    """Pad with EOS when the tokenizer has no pad token; pad on the left, as generation needs."""
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    if model is not None and getattr(model, "generation_config", None) is not None:
        if model.generation_config.pad_token_id is None:
            model.generation_config.pad_token_id = tokenizer.pad_token_id
    return tokenizer


def _quiet_transformers() -> None:
    """Our progress bars say what is happening; transformers' per-load bars and advice only add noise."""
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()


def load_model(spec: str | os.PathLike = DEFAULT_MODEL, *, device: str = "auto", dtype: str = "auto",
               adapter_base: str | None = None):
    """Load ``(model, tokenizer)`` in eval mode on ``device``; see the module docstring for specs.

    Parameters
    ----------
    spec : bundled alias, local HF folder, ``.gguf`` file, PEFT adapter folder or hub id.
    device : ``"cpu" | "cuda" | "auto"``.
    dtype : ``"bf16" | "fp32" | "fp16" | "auto"`` (auto: bf16 unless the GPU lacks it).
    adapter_base : base model spec for a PEFT adapter (default: its ``base_model_name_or_path``).

    Examples
    --------
    >>> model, tokenizer = load_model("smollm2", device="cpu")  # doctest: +SKIP
    """
    _quiet_transformers()
    device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, device)
    kind, where = model_source(spec)
    if kind == "peft":
        model, tokenizer = _load_peft(Path(where), adapter_base, device, dtype)
    elif kind == "gguf":
        model, tokenizer = load_gguf(where, dtype=torch_dtype)
    elif kind == "bundled":
        model, tokenizer = _load_pretrained(bundled_model_dir(), dtype=torch_dtype, hub=False)
    else:
        model, tokenizer = _load_pretrained(where, dtype=torch_dtype, hub=kind == "hub")
    model = model.to(device).eval()
    return model, _prepare_tokenizer(tokenizer, model)


def load_tokenizer(spec: str | os.PathLike = DEFAULT_MODEL):
    """The tokenizer of ``spec`` without loading weights (left padding, pad token set)."""
    from transformers import AutoTokenizer

    folder = Path(str(spec)).expanduser()
    if folder.is_dir() and model_folder_kind(folder) != "peft" and _has_tokenizer(folder):
        return _prepare_tokenizer(_tokenizer_from(folder))  # any folder with tokenizer files will do
    kind, where = model_source(spec)
    if kind == "bundled":  # the converted folder, else the GGUF (seconds) rather than converting (tens of seconds)
        folder = bundled_model_folder()
        kind, where = ("hf", folder) if folder.is_dir() else ("gguf", smollm2_gguf())
    if kind == "gguf":
        tokenizer = _tokenizer_from(Path(where).parent, gguf_file=Path(where).name)
    elif kind == "peft":
        folder = Path(where)
        tokenizer = _tokenizer_from(folder) if _has_tokenizer(folder) else load_tokenizer(
            _adapter_base(folder, None))
    elif kind == "hub":
        local_only = not _hub_online()
        try:
            tokenizer = AutoTokenizer.from_pretrained(where, local_files_only=local_only)
        except (OSError, ValueError) as err:
            raise _load_error(where, hub=True, local_only=local_only, err=err) from err
    else:
        tokenizer = _tokenizer_from(where)
    return _prepare_tokenizer(tokenizer)
