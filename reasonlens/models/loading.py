"""Load a causal LM and its tokenizer from whatever the user points at.

A spec (classified by `sources.specs.model_source`) is one of: the bundled alias ``"smollm2"`` (also
``"SmolLM2-135M-Instruct"``, and its hub id when the hub is unreachable), a local HF folder, a ``.gguf``
file (dequantised), a PEFT adapter folder (merged into its base: we analyse the model, we don't train
the adapter here), a verl FSDP ``actor/`` folder (shards merged in memory, sources/verl_fsdp.py), or a
hub id. Code shipped inside a checkpoint is never run unless the caller passes ``trust_remote_code=True`` (the CLI's ``--trust-remote-code``); transformers is never left to ask.
"""

from __future__ import annotations

import os
from pathlib import Path

from reasonlens.errors import ReasonlensError
from reasonlens.models.bundled import bundled_model_dir, bundled_model_folder, smollm2_gguf
from reasonlens.models.gguf import load_gguf
from reasonlens.models.hardware import resolve_device, resolve_dtype
from reasonlens.sources.integrity import ADAPTER_CONFIG, adapter_base_model, model_folder_kind
from reasonlens.sources.specs import DEFAULT_MODEL, hub_online, model_source

_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")
_REMOTE_CODE_HINT = "trust_remote_code"  # transformers' refusal names the argument


def _load_pretrained(where: str | Path, *, dtype, hub: bool, trust_remote_code: bool):
    """AutoTokenizer + AutoModelForCausalLM from a folder or hub id, errors made readable."""
    from transformers import AutoModelForCausalLM

    local_only = hub and not hub_online()
    tokenizer = _tokenizer_from(where, hub=hub, trust_remote_code=trust_remote_code)
    try:
        model = AutoModelForCausalLM.from_pretrained(where, dtype=dtype, local_files_only=local_only,
                                                     trust_remote_code=trust_remote_code)
    except (OSError, ValueError, RuntimeError) as err:
        raise _load_error(where, hub=hub, local_only=local_only, err=err) from None
    return model, tokenizer


def _load_error(where, *, hub: bool, local_only: bool, err: Exception, what: str = "model") -> ReasonlensError:
    brief = str(err).strip().splitlines()[0][:300] if str(err).strip() else type(err).__name__
    if _REMOTE_CODE_HINT in str(err):
        return ReasonlensError(f"{what} {str(where)!r} needs code shipped inside it (custom architecture), which "
                               "reasonlens never runs on its own: inspect that code, then pass --trust-remote-code "
                               "(trust_remote_code=True) to allow it.")
    if hub and local_only:
        return ReasonlensError(
            f"{what} {where!r} is not a local path, not the bundled alias {DEFAULT_MODEL!r}, and not in the "
            "Hugging Face cache while the hub is offline or unreachable; pass a local model folder or .gguf "
            "file, or go online (unset HF_HUB_OFFLINE) to download it.")
    if hub:
        return ReasonlensError(f"{what} {where!r} is neither a local path nor loadable from the Hugging Face hub "
                               f"({brief}); check the id or pass a local model folder or .gguf file.")
    return ReasonlensError(f"Could not load the {what} in {str(where)!r} ({brief}); it needs a config.json that "
                           "matches its weights and tokenizer files (save them together with save_pretrained).")


def _adapter_base(adapter: Path, adapter_base: str | None) -> str:
    if adapter_base:
        return str(adapter_base)
    try:
        base = adapter_base_model(adapter)
    except (OSError, ValueError) as err:
        raise ReasonlensError(f"Could not read {str(adapter / ADAPTER_CONFIG)!r} ({err}); "
                              "repair or re-save the adapter.") from None
    if not base:
        raise ReasonlensError(f"PEFT adapter {str(adapter)!r} names no base_model_name_or_path; pass the base "
                              "model with --base / adapter_base=.")
    return base


def _has_tokenizer(folder: Path) -> bool:
    return any((folder / name).is_file() for name in _TOKENIZER_FILES)


def _load_verl(actor: Path, adapter_base, device: str, dtype: str, trust_remote_code: bool):
    """verl FSDP shards merged in memory, or LoRA-only shards applied as an adapter to their base."""
    from reasonlens.models.verl import load_verl_fsdp, verl_lora_adapter
    from reasonlens.sources.verl_fsdp import read_layout

    layout = read_layout(actor, check_all=False)  # merging checks every shard as it reads it
    if layout.lora_only:
        return _load_peft(verl_lora_adapter(layout), adapter_base, device, dtype, trust_remote_code)
    return load_verl_fsdp(layout, resolve_dtype(dtype, resolve_device(device)), trust_remote_code)


def _load_peft(adapter: Path, adapter_base, device: str, dtype: str, trust_remote_code: bool):
    """Load the base, apply the adapter and merge it, so analysis sees one ordinary model."""
    from peft import PeftModel

    base = _adapter_base(adapter, adapter_base)
    try:
        base_model, tokenizer = load_model(base, device=device, dtype=dtype, trust_remote_code=trust_remote_code)
    except ReasonlensError as err:
        raise ReasonlensError(f"PEFT adapter {str(adapter)!r}: its base model {base!r} cannot be loaded ({err}) "
                              "Pass the model the adapter was trained on with --base.") from None
    try:
        model = PeftModel.from_pretrained(base_model, adapter).merge_and_unload()
    except (OSError, ValueError, RuntimeError, KeyError) as err:
        raise ReasonlensError(f"Could not apply the PEFT adapter {str(adapter)!r} to its base {base!r} ({err}); "
                              "check that --base is the model the adapter was trained on.") from None
    if _has_tokenizer(adapter):
        tokenizer = _tokenizer_from(adapter, trust_remote_code=trust_remote_code)
    return model, tokenizer


def _tokenizer_from(where, *, hub: bool = False, trust_remote_code: bool = False, **kwargs):
    from transformers import AutoTokenizer

    local_only = hub and not hub_online()
    try:
        return AutoTokenizer.from_pretrained(where, local_files_only=local_only,
                                             trust_remote_code=trust_remote_code, **kwargs)
    except (OSError, ValueError, KeyError, RuntimeError) as err:
        raise _load_error(where, hub=hub, local_only=local_only, err=err, what="tokenizer") from None


def _prepare_tokenizer(tokenizer, model=None):
    """Pad with EOS when the tokenizer has no pad token; pad on the left, as generation needs."""
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    if model is not None and getattr(model, "generation_config", None) is not None:
        if model.generation_config.pad_token_id is None:
            model.generation_config.pad_token_id = tokenizer.pad_token_id
    return tokenizer


def check_vocabulary(model, tokenizer, spec) -> None:
    """A tokenizer whose ids go past the model's embedding table would index out of range mid-run."""
    rows = model.get_input_embeddings().num_embeddings
    if len(tokenizer) > rows:
        raise ReasonlensError(f"{str(spec)!r}: the tokenizer has {len(tokenizer)} tokens but the model's embedding "
                              f"table has {rows} rows; use the tokenizer the model was trained with (or resize "
                              "the embeddings and re-save the model).")


def _quiet_transformers() -> None:
    """Our progress bars say what is happening; transformers' per-load bars and advice only add noise."""
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()


def load_model(spec: str | os.PathLike = DEFAULT_MODEL, *, device: str = "auto", dtype: str = "auto",
               adapter_base: str | None = None, trust_remote_code: bool = False):
    """Load ``(model, tokenizer)`` in eval mode on ``device``; see the module docstring for specs.

    Parameters
    ----------
    spec : bundled alias, local HF folder, ``.gguf`` file, PEFT adapter folder or hub id.
    device : ``"cpu" | "cuda" | "auto"``.
    dtype : ``"bf16" | "fp32" | "fp16" | "auto"`` (auto: bf16 where the device computes it natively).
    adapter_base : base model spec for a PEFT adapter (default: its ``base_model_name_or_path``).
    trust_remote_code : allow code shipped inside the checkpoint (off: such a checkpoint is refused).

    Examples
    --------
    >>> model, tokenizer = load_model("smollm2", device="cpu")  # doctest: +SKIP
    """
    _quiet_transformers()
    device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, device)
    kind, where = model_source(spec)
    if kind == "peft":
        model, tokenizer = _load_peft(Path(where), adapter_base, device, dtype, trust_remote_code)
    elif kind == "gguf":
        model, tokenizer = load_gguf(where, dtype=torch_dtype)
    elif kind == "verl-fsdp":
        model, tokenizer = _load_verl(Path(where), adapter_base, device, dtype, trust_remote_code)
    else:
        where = bundled_model_dir() if kind == "bundled" else where
        model, tokenizer = _load_pretrained(where, dtype=torch_dtype, hub=kind == "hub",
                                            trust_remote_code=trust_remote_code)
    check_vocabulary(model, tokenizer, spec)
    model = model.to(device).eval()
    return model, _prepare_tokenizer(tokenizer, model)


def load_tokenizer(spec: str | os.PathLike = DEFAULT_MODEL, *, trust_remote_code: bool = False):
    """The tokenizer of ``spec`` without loading weights (left padding, pad token set)."""
    folder = Path(str(spec)).expanduser()
    if folder.is_dir() and model_folder_kind(folder) != "peft" and _has_tokenizer(folder):
        return _prepare_tokenizer(_tokenizer_from(folder, trust_remote_code=trust_remote_code))
    kind, where = model_source(spec)
    if kind == "bundled":  # the converted folder, else the GGUF (seconds) rather than converting (tens of seconds)
        folder = bundled_model_folder()
        kind, where = ("hf", folder) if folder.is_dir() else ("gguf", smollm2_gguf())
    if kind == "gguf":
        tokenizer = _tokenizer_from(Path(where).parent, gguf_file=Path(where).name)
    elif kind == "verl-fsdp":
        tokenizer = _tokenizer_from(Path(where) / "huggingface", trust_remote_code=trust_remote_code)
    elif kind == "peft":
        folder = Path(where)
        tokenizer = (_tokenizer_from(folder, trust_remote_code=trust_remote_code) if _has_tokenizer(folder)
                     else load_tokenizer(_adapter_base(folder, None), trust_remote_code=trust_remote_code))
    else:
        tokenizer = _tokenizer_from(where, hub=kind == "hub", trust_remote_code=trust_remote_code)
    return _prepare_tokenizer(tokenizer)
