"""A verl FSDP checkpoint as a model: merged shards (sources/verl_fsdp.py) in the architecture of
``actor/huggingface`` (a PEFT model saved in full gets its LoRA folded into the weights), or LoRA-only
shards written once as a PEFT adapter into the cache.

The full model is never written anywhere: the merged tensors become the model's parameters (transformers'
``from_pretrained(None, config=..., state_dict=...)`` assigns them without a copy when the dtype matches),
so the peak is one merged model plus one shard. The small LoRA adapter is cached under
``$REASONLENS_CACHE/verl-lora/`` keyed by the shards' names, sizes and mtimes, never in the run folder.
"""

from __future__ import annotations

from pathlib import Path

from reasonlens.errors import ReasonlensError
from reasonlens.models.bundled import build_once, cache_dir
from reasonlens.sources.integrity import fingerprint_files
from reasonlens.sources.verl_fsdp import (HF_SUBDIR, ShardLayout, fold_lora, lora_meta, merge_shards,
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
    state = merge_shards(layout, torch_dtype)
    if any("lora_" in key for key in state):  # lora_rank > 0 without save_lora_only: the PEFT model in full
        meta = lora_meta(layout.actor)
        state = fold_lora(state, r=meta["r"], lora_alpha=meta["lora_alpha"])
    model, info = model_class.from_pretrained(None, config=config, state_dict=state, dtype=torch_dtype,
                                              output_loading_info=True)
    missing, unexpected = sorted(info["missing_keys"]), sorted(info["unexpected_keys"])
    if missing or unexpected:
        raise ReasonlensError(f"{layout.actor}: the merged shards do not match {hf / 'config.json'} (missing "
                              f"{missing[:3]}, unexpected {unexpected[:3]}); restore the huggingface/ folder saved "
                              "with this checkpoint.")
    return model, tokenizer


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
    from reasonlens.records import cache_key

    files = [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in fingerprint_files(layout.actor)]
    target = cache_dir() / "verl-lora" / cache_key(str(layout.actor.resolve()), files)[:24]
    return build_once(target, lambda tmp: write_lora_adapter(layout, tmp))
