"""A verl FSDP checkpoint as a model: merged shards (sources/verl_fsdp.py) in the architecture of
``actor/huggingface`` (a PEFT model saved in full gets its LoRA folded into the weights), or LoRA-only
shards written once as a PEFT adapter into the cache.

For transformers the merged tensors become the model's parameters (``from_pretrained(None, config=...,
state_dict=...)`` assigns them without a copy when the dtype matches), so the peak is one merged model plus
one shard and nothing is written. vLLM reads folders only: for it the merged model is written once to
``$REASONLENS_CACHE/verl-merged/``; LoRA adapters go to ``$REASONLENS_CACHE/verl-lora/``; both keyed by the
shards' names, sizes and mtimes, never in the run folder.
"""

from __future__ import annotations

from pathlib import Path

from reasonlens.errors import ReasonlensError
from reasonlens.models.bundled import build_once, cache_dir
from reasonlens.sources.integrity import fingerprint_files
from reasonlens.sources.verl_fsdp import (HF_SUBDIR, ShardLayout, fold_lora, lora_meta, merge_shards, read_layout,
                                          write_lora_adapter)


def load_verl_fsdp(layout: ShardLayout, torch_dtype, trust_remote_code: bool):
    """``(model, tokenizer)`` from the checked shards of ``layout``, in ``torch_dtype``."""
    from transformers import AutoConfig, AutoTokenizer

    hf = layout.actor / HF_SUBDIR
    try:
        config = AutoConfig.from_pretrained(hf, trust_remote_code=trust_remote_code)
        tokenizer = AutoTokenizer.from_pretrained(hf, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, KeyError) as err:
        raise ReasonlensError(f"{hf} does not hold a readable model config and tokenizer ({type(err).__name__}: "
                              f"{str(err)[:200]}); restore the huggingface/ folder verl saved with this "
                              "checkpoint.") from None
    model_class = causal_lm_class(config, hf, trust_remote_code)
    state = merged_state(layout, torch_dtype)
    model, info = model_class.from_pretrained(None, config=config, state_dict=state, dtype=torch_dtype,
                                              output_loading_info=True)
    missing, unexpected = sorted(info["missing_keys"]), sorted(info["unexpected_keys"])
    if missing or unexpected:
        raise ReasonlensError(f"{layout.actor}: the merged shards do not match {hf / 'config.json'} (missing "
                              f"{missing[:3]}, unexpected {unexpected[:3]}); restore the huggingface/ folder saved "
                              "with this checkpoint.")
    return model, tokenizer


def merged_state(layout: ShardLayout, torch_dtype=None) -> dict:
    """The plain model's full state dict from the shards (a PEFT model saved in full gets its LoRA folded)."""
    state = merge_shards(layout, torch_dtype)
    if any("lora_" in key for key in state):  # lora_rank > 0 without save_lora_only: the PEFT model in full
        meta = lora_meta(layout.actor)
        state = fold_lora(state, r=meta["r"], lora_alpha=meta["lora_alpha"])
    return state


def verl_model_folder(actor: Path) -> Path:
    """The merged checkpoint as an HF folder in the cache, for engines that read folders only (vLLM): built
    once per shard fingerprint (safetensors as stored, plus actor/huggingface's config and tokenizer files)."""
    import shutil

    from safetensors.torch import save_file

    layout = read_layout(actor, check_all=False)

    def build(tmp: Path) -> None:
        for item in (actor / HF_SUBDIR).iterdir():
            if item.is_file():
                shutil.copy2(item, tmp / item.name)
        save_file({k: v.contiguous() for k, v in merged_state(layout).items()}, str(tmp / "model.safetensors"),
                  metadata={"format": "pt"})

    return build_once(_cached(layout, "verl-merged"), build)


def _cached(layout: ShardLayout, kind: str) -> Path:
    """Where a folder derived from ``layout``'s files lives in the cache: keyed by their names, sizes, mtimes."""
    from reasonlens.records import cache_key

    files = [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in fingerprint_files(layout.actor)]
    return cache_dir() / kind / cache_key(str(layout.actor.resolve()), files)[:24]


def causal_lm_class(config, folder: Path, trust_remote_code: bool):
    """The causal-LM class for ``config``: transformers' own, or the checkpoint's code when trusted."""
    from transformers.dynamic_module_utils import get_class_from_dynamic_module
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING

    if type(config) in MODEL_FOR_CAUSAL_LM_MAPPING:
        return MODEL_FOR_CAUSAL_LM_MAPPING[type(config)]
    reference = (getattr(config, "auto_map", None) or {}).get("AutoModelForCausalLM")
    if reference is None:
        raise ReasonlensError(f"{folder / 'config.json'}: model type {config.model_type!r} has no causal-LM class "
                              "in transformers; reasonlens analyses causal language models only.")
    if not trust_remote_code:
        raise ReasonlensError(f"{folder / 'config.json'} maps its architecture to code shipped inside the "
                              f"checkpoint ({reference}), which reasonlens never runs unless you pass "
                              "--trust-remote-code.")
    return get_class_from_dynamic_module(reference, folder)


def verl_lora_adapter(layout: ShardLayout) -> Path:
    """The PEFT adapter folder of LoRA-only shards, built once into the cache."""
    return build_once(_cached(layout, "verl-lora"), lambda tmp: write_lora_adapter(layout, tmp))
