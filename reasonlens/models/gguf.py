"""Dequantise a GGUF file into an ordinary transformers model that can be saved, scored and trained."""

from __future__ import annotations

import os
from pathlib import Path

from reasonlens.errors import ReasonlensError


def load_gguf(path: str | os.PathLike, *, dtype=None):
    """``(model, tokenizer)`` from a GGUF file, with the quantizer markers dropped.

    transformers marks GGUF models as quantized, which blocks ``save_pretrained`` and training;
    the weights are plain dequantised tensors, so the markers are removed.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name, trust_remote_code=False)
        model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, trust_remote_code=False)
    except (OSError, ValueError, KeyError) as err:
        raise ReasonlensError(f"Could not load the GGUF file {str(path)!r} ({err}); transformers dequantises "
                              "only some architectures: convert it to an HF folder instead.") from err
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.is_quantized = False
    if dtype is not None:
        model = model.to(dtype)
    return model, tokenizer
