"""Checkpoint discovery: every supported layout, the base model, and each kind of bad entry."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from reasonlens.errors import ReasonlensError
from reasonlens.sources.checkpoints import discover_checkpoints


def _link_model(src: Path, dst: Path, *, skip=()) -> Path:
    """A copy of a model folder made of symlinks (cheap), leaving out the files in ``skip``."""
    dst.mkdir(parents=True, exist_ok=True)
    for file in src.iterdir():
        if file.name not in skip:
            os.symlink(file, dst / file.name)
    return dst


def _steps(series):
    return [(c.step, c.name, c.kind) for c in series.checkpoints]


@pytest.fixture(scope="module")
def adapter_dir(tiny_model_dir, tmp_path_factory):
    """A LoRA adapter on the tiny model, saved the way PEFT (and TRL with peft_config) saves it."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    peft_model = get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj", "v_proj"]))
    path = tmp_path_factory.mktemp("adapter")
    peft_model.save_pretrained(path)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(path)
    return path


# --- layouts -------------------------------------------------------------------------------


def test_trl_series_sorted_by_step(tiny_series):
    series = discover_checkpoints(tiny_series)
    assert _steps(series) == [(1, "checkpoint-1", "hf"), (2, "checkpoint-2", "hf"), (3, "checkpoint-3", "hf")]
    assert series.skipped == []
    assert series.checkpoints[0].path == tiny_series / "checkpoint-1"


@pytest.mark.parametrize("pattern", ["step_{}", "step-{}", "step_{:06d}"], ids=["underscore", "dash", "padded"])
def test_step_folders(tiny_model_dir, tmp_path, pattern):
    for step in (120, 5, 40):  # numeric, not lexical, order
        _link_model(tiny_model_dir, tmp_path / pattern.format(step))
    assert [c.step for c in discover_checkpoints(tmp_path).checkpoints] == [5, 40, 120]


def test_training_run_dir(tiny_model_dir, tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model": "smollm2"}))  # a run config, not a model
    _link_model(tiny_model_dir, tmp_path / "checkpoints" / "step_2")
    assert _steps(discover_checkpoints(tmp_path)) == [(2, "step_2", "hf")]


def test_verl_uses_actor_huggingface(tiny_model_dir, tmp_path):
    for step in (10, 20):
        hf = _link_model(tiny_model_dir, tmp_path / f"global_step_{step}" / "actor" / "huggingface")
        (hf.parent / "model_world_size_1_rank_0.pt").write_bytes(b"shard")
    series = discover_checkpoints(tmp_path)
    assert _steps(series) == [(10, "global_step_10", "verl"), (20, "global_step_20", "verl")]
    assert series.checkpoints[0].path == tmp_path / "global_step_10" / "actor" / "huggingface"


def test_verl_shards_without_fsdp_config_name_it(tiny_model_dir, tmp_path):
    """Shards are merged (tests/test_verl_fsdp.py), but only with the world size fsdp_config.json gives."""
    actor = tmp_path / "global_step_10" / "actor"
    _link_model(tiny_model_dir, actor / "huggingface", skip={"model.safetensors"})  # config + tokenizer only
    (actor / "model_world_size_1_rank_0.pt").write_bytes(b"shard")
    with pytest.raises(ReasonlensError, match=r"global_step_10: .*actor/fsdp_config\.json is missing: verl writes it "
                                              r"next to the model_world_size_W_rank_R\.pt shards"):
        discover_checkpoints(tmp_path)


def test_peft_adapters_take_base_from_adapter_config(adapter_dir, tmp_path):
    for step in (1, 2):
        _link_model(adapter_dir, tmp_path / f"checkpoint-{step}")
    series = discover_checkpoints(tmp_path)
    assert _steps(series) == [(1, "checkpoint-1", "peft"), (2, "checkpoint-2", "peft")]
    recorded = json.loads((adapter_dir / "adapter_config.json").read_text())["base_model_name_or_path"]
    assert series.checkpoints[0].adapter_base == recorded


def test_peft_adapters_with_base_argument(adapter_dir, tiny_model_dir, tmp_path):
    _link_model(adapter_dir, tmp_path / "checkpoint-5")
    series = discover_checkpoints(tmp_path, base=str(tiny_model_dir))
    assert _steps(series) == [(0, "base", "base"), (5, "checkpoint-5", "peft")]
    assert series.checkpoints[1].adapter_base == str(tiny_model_dir.resolve())


def test_peft_adapter_as_base_is_refused(adapter_dir, tiny_series):
    with pytest.raises(ReasonlensError, match="base: --base is a PEFT adapter; it must be the full model"):
        discover_checkpoints(tiny_series, base=str(adapter_dir))


def test_peft_adapter_without_any_base(adapter_dir, tmp_path):
    folder = _link_model(adapter_dir, tmp_path / "checkpoint-1", skip={"adapter_config.json"})
    config = json.loads((adapter_dir / "adapter_config.json").read_text()) | {"base_model_name_or_path": None}
    (folder / "adapter_config.json").write_text(json.dumps(config))
    with pytest.raises(ReasonlensError, match="checkpoint-1: adapter_config.json names no base model.*--base"):
        discover_checkpoints(tmp_path)


def test_single_model_folder(tiny_model_dir):
    series = discover_checkpoints(tiny_model_dir)
    assert _steps(series) == [(0, tiny_model_dir.name, "hf")]


def test_base_adds_step_zero(tiny_series, tiny_model_dir):
    series = discover_checkpoints(tiny_series, base=str(tiny_model_dir))
    assert [(c.step, c.name) for c in series.checkpoints][:2] == [(0, "base"), (1, "checkpoint-1")]
    assert series.checkpoints[0].kind == "base" and series.checkpoints[0].path == tiny_model_dir.resolve()


def test_base_alias_and_single_folder(tiny_model_dir):
    series = discover_checkpoints(tiny_model_dir, base="smollm2")
    assert _steps(series) == [(0, "base", "base"), (1, tiny_model_dir.name, "hf")]
    assert str(series.checkpoints[0].path) == "smollm2"  # resolved by model loading


def test_gguf_file_is_a_series_of_one(tmp_path):
    gguf = tmp_path / "model.Q4_1.gguf"
    gguf.write_bytes(b"GGUF")
    assert _steps(discover_checkpoints(gguf)) == [(0, "model.Q4_1", "gguf")]


# --- errors and bad entries ------------------------------------------------------------------


def test_empty_folder_describes_layouts(tmp_path):
    with pytest.raises(ReasonlensError, match=r"no checkpoints found in .*checkpoint-N.*global_step_N.*\.gguf"):
        discover_checkpoints(tmp_path)


def test_missing_path_and_missing_base(tmp_path, tiny_model_dir):
    with pytest.raises(ReasonlensError, match="does not exist"):
        discover_checkpoints(tmp_path / "nope")
    with pytest.raises(ReasonlensError, match="base model ./nope does not exist"):
        discover_checkpoints(tiny_model_dir, base="./nope")


def _corrupt(folder: Path) -> None:
    (folder / "model.safetensors").unlink()
    (folder / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not a header")


def _other_tokenizer(folder: Path) -> None:
    """Same files, one vocabulary entry renamed: a different tokenizer."""
    data = json.loads((folder / "tokenizer.json").read_text())
    vocab = data["model"]["vocab"]
    token = next(t for t in vocab if len(t) > 2)
    vocab["zzzz"] = vocab.pop(token)
    (folder / "tokenizer.json").unlink()
    (folder / "tokenizer.json").write_text(json.dumps(data))


BAD_CASES = {
    "no-config": (lambda f: (f / "config.json").unlink(), "no config.json"),
    "corrupt-weights": (_corrupt, "model.safetensors is unreadable"),
    "no-weights": (lambda f: (f / "model.safetensors").unlink(), r"no weights \(\*\.safetensors"),
    "other-tokenizer": (_other_tokenizer, "tokenizer differs from the rest of the series"),
}


@pytest.fixture(params=list(BAD_CASES), ids=list(BAD_CASES))
def series_with_bad(request, tiny_model_dir, tmp_path):
    """checkpoint-1..3 where checkpoint-2 is broken in one way; yields (root, expected message)."""
    for step in (1, 2, 3):
        _link_model(tiny_model_dir, tmp_path / f"checkpoint-{step}")
    breaker, message = BAD_CASES[request.param]
    breaker(tmp_path / "checkpoint-2")
    return tmp_path, message


def test_bad_entry_raises_listing_it(series_with_bad):
    root, message = series_with_bad
    with pytest.raises(ReasonlensError, match=rf"1 unusable checkpoint\(s\).*\n  - checkpoint-2: {message}"
                                              r"(.|\n)*--skip-bad"):
        discover_checkpoints(root)


def test_skip_bad_records_and_goes_on(series_with_bad):
    root, message = series_with_bad
    series = discover_checkpoints(root, skip_bad=True)
    assert [c.name for c in series.checkpoints] == ["checkpoint-1", "checkpoint-3"]
    assert len(series.skipped) == 1 and series.skipped[0]["path"].endswith("checkpoint-2")
    assert re.search(message, series.skipped[0]["reason"])


def test_every_bad_entry_listed_in_one_error(tiny_model_dir, tmp_path):
    _link_model(tiny_model_dir, tmp_path / "step_1", skip={"config.json"})
    _link_model(tiny_model_dir, tmp_path / "step_2")
    _corrupt(_link_model(tiny_model_dir, tmp_path / "step_3"))
    with pytest.raises(ReasonlensError, match=r"2 unusable(.|\n)*step_1: no config(.|\n)*step_3: model\.safetensors"):
        discover_checkpoints(tmp_path)


def test_folder_without_tokenizer_inherits(tiny_model_dir, tmp_path):
    _link_model(tiny_model_dir, tmp_path / "checkpoint-1")
    _link_model(tiny_model_dir, tmp_path / "checkpoint-2", skip={"tokenizer.json", "tokenizer_config.json"})
    assert len(discover_checkpoints(tmp_path).checkpoints) == 2


def test_all_bad_with_skip_bad_still_errors(tiny_model_dir, tmp_path):
    _link_model(tiny_model_dir, tmp_path / "checkpoint-1", skip={"config.json"})
    with pytest.raises(ReasonlensError, match="no usable checkpoints"):
        discover_checkpoints(tmp_path, skip_bad=True)


# --- weight checks -----------------------------------------------------------------------------


def _truncate(folder: Path) -> None:
    raw = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").unlink()
    (folder / "model.safetensors").write_bytes(raw[: len(raw) // 2])


def _as_bin(folder: Path, payload=None) -> None:
    """Swap the safetensors weights for a pytorch_model.bin (a real one, or garbage bytes)."""
    import torch
    from safetensors.torch import load_file

    state = load_file(folder / "model.safetensors")
    (folder / "model.safetensors").unlink()
    if payload is None:
        torch.save(state, folder / "pytorch_model.bin")
    else:
        (folder / "pytorch_model.bin").write_bytes(payload)


def _missing_shard(folder: Path) -> None:
    (folder / "model.safetensors").unlink()
    index = {"metadata": {}, "weight_map": {"lm_head.weight": "model-00001-of-00002.safetensors"}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))


WEIGHT_CASES = {
    "truncated-safetensors": (_truncate, "model.safetensors is unreadable .*incomplete metadata"),
    "garbage-bin": (lambda f: _as_bin(f, b"garbage" * 10), "pytorch_model.bin is unreadable"),
    "missing-shard": (_missing_shard, "model-00001-of-00002.safetensors is listed in the weight index but missing"),
}


@pytest.mark.parametrize("case", list(WEIGHT_CASES), ids=list(WEIGHT_CASES))
def test_unreadable_weights(case, tiny_model_dir, tmp_path):
    breaker, message = WEIGHT_CASES[case]
    breaker(_link_model(tiny_model_dir, tmp_path / "checkpoint-7"))
    with pytest.raises(ReasonlensError, match=f"checkpoint-7: {message}"):
        discover_checkpoints(tmp_path)


def test_readable_bin_weights(tiny_model_dir, tmp_path):
    _as_bin(_link_model(tiny_model_dir, tmp_path / "checkpoint-7"))
    assert _steps(discover_checkpoints(tmp_path)) == [(7, "checkpoint-7", "hf")]


def test_verl_merged_but_corrupt_weights(tiny_model_dir, tmp_path):
    _corrupt(_link_model(tiny_model_dir, tmp_path / "global_step_3" / "actor" / "huggingface"))
    with pytest.raises(ReasonlensError, match="global_step_3: actor/huggingface: model.safetensors is unreadable"):
        discover_checkpoints(tmp_path)


def test_duplicate_step_numbers(tiny_model_dir, tmp_path):
    _link_model(tiny_model_dir, tmp_path / "checkpoint-4")
    _link_model(tiny_model_dir, tmp_path / "step_4")
    with pytest.raises(ReasonlensError, match=r"step_4: step 4 again \(also checkpoint-4\)"):
        discover_checkpoints(tmp_path)


def test_base_with_other_tokenizer_is_flagged(tiny_series, tiny_model_dir, tmp_path):
    base = _link_model(tiny_model_dir, tmp_path / "base-model")
    _other_tokenizer(base)
    series = discover_checkpoints(tiny_series, base=str(base), skip_bad=True)
    assert [c.name for c in series.checkpoints] == ["checkpoint-1", "checkpoint-2", "checkpoint-3"]
    assert "tokenizer differs" in series.skipped[0]["reason"]


def test_bundled_alias_is_a_series_of_one():
    series = discover_checkpoints("smollm2")
    assert [(c.step, c.name, str(c.path), c.kind) for c in series.checkpoints] == [(0, "smollm2", "smollm2", "base")]
