"""verl FSDP checkpoints as verl writes them (real DTensors from a 2-process gloo group), merged in memory.

The fixture runs tests/verl_writer.py: two ranks shard a tiny Llama with FSDP2 ``fully_shard`` and each
``torch.save``s its ``model.state_dict()``, as verl's FSDPCheckpointManager does. The merged weights are
compared with the weights that were sharded (bit for bit), and token scores of the merged checkpoint with
a float64 forward of the original model (an independent computation of log-softmax and entropy).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from reasonlens.errors import ReasonlensError
from reasonlens.sources.checkpoints import discover_checkpoints

sys.path.insert(0, str(Path(__file__).parent))
from verl_writer import LORA, write_verl_fsdp  # noqa: E402

STEPS = (1, 2, 3)
HOSTILE_MODES = ("hsdp", "lora", "lora-full", "tp", "partial")


def _perturbed(tiny_model_dir: Path, folder: Path, step: int) -> Path:
    """The tiny model with its weights moved by a seeded step (so the checkpoints differ), as an HF folder."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    generator = torch.Generator().manual_seed(step)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.05 * torch.randn(param.shape, generator=generator))
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def verl_run(tiny_model_dir, tmp_path_factory):
    """{"series": run folder of global_step_1..3, "sources": {step: HF folder}, mode: actor folder}."""
    root = tmp_path_factory.mktemp("verl-run")
    sources = {s: _perturbed(tiny_model_dir, root / "sources" / f"step_{s}", s) for s in STEPS}
    series = root / "checkpoints" / "proj" / "exp"
    jobs = [(sources[s], series / f"global_step_{s}" / "actor", "fsdp2") for s in STEPS]
    jobs += [(sources[1], root / mode / "global_step_1" / "actor", mode) for mode in HOSTILE_MODES]
    write_verl_fsdp(jobs)
    return {"series": series, "sources": sources} | {mode: root / mode for mode in HOSTILE_MODES}


def _copy_run(folder: Path, tmp_path: Path, steps=(1,)) -> Path:
    """A private copy of some checkpoints of a run, to damage."""
    for step in steps:
        shutil.copytree(folder / f"global_step_{step}", tmp_path / "run" / f"global_step_{step}")
    return tmp_path / "run"


def _float64_scores(folder: Path, ids: list[int], prompt_len: int):
    """log p(token) and entropy of every response token from a float64 forward: the independent value."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float64).eval()
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0]  # (T, V)
    logp = torch.log_softmax(logits[prompt_len - 1:-1], dim=-1)  # position t predicts token t + 1
    targets = torch.tensor(ids[prompt_len:])
    return logp.gather(1, targets[:, None])[:, 0], -(logp.exp() * logp).sum(-1)


def test_series_loads_unmodified_and_scores_match_float64(verl_run):
    import torch

    from reasonlens.models.loading import load_model
    from reasonlens.models.scoring import score_tokens

    with pytest.warns(UserWarning, match=r"only 3 checkpoint\(s\).*trainer\.save_freq steps \(default -1: never"):
        series = discover_checkpoints(verl_run["series"])
    assert [(c.step, c.kind) for c in series.checkpoints] == [(1, "verl-fsdp"), (2, "verl-fsdp"), (3, "verl-fsdp")]
    assert series.checkpoints[0].path == verl_run["series"] / "global_step_1" / "actor"
    prompt, response = [5, 17, 42, 8], [99, 3, 250, 7, 61]
    for ckpt in series.checkpoints:
        model, tokenizer = load_model(ckpt.path, device="cpu", dtype="fp32")
        assert len(tokenizer) == model.get_input_embeddings().num_embeddings
        [(logprobs, entropies)] = score_tokens(model, [prompt], [response], batch_size=1)
        want_lp, want_h = _float64_scores(verl_run["sources"][ckpt.step], prompt + response, len(prompt))
        assert torch.allclose(torch.as_tensor(logprobs, dtype=torch.float64), want_lp, atol=1e-4)
        assert torch.allclose(torch.as_tensor(entropies, dtype=torch.float64), want_h, atol=1e-4)


def test_merge_rebuilds_the_sharded_weights_bit_for_bit(verl_run):
    """Shard(0) pieces joined in rank order, including the embedding whose rows do not split evenly."""
    import torch
    from safetensors.torch import load_file

    from reasonlens.sources.verl_fsdp import merge_shards, read_layout

    for step in (1, 3):
        layout = read_layout(verl_run["series"] / f"global_step_{step}" / "actor")
        merged = merge_shards(layout)
        original = load_file(verl_run["sources"][step] / "model.safetensors")
        assert set(original) <= set(merged)
        assert all(torch.equal(merged[k], original[k]) for k in original)
    rows = layout.plans["model.embed_tokens.weight"].shape[0]
    assert layout.plans["model.embed_tokens.weight"].how == "shard"
    assert [f.name for f in layout.files] == ["model_world_size_2_rank_0.pt", "model_world_size_2_rank_1.pt"]
    assert rows == merged["model.embed_tokens.weight"].shape[0]


def test_hsdp_mesh_reads_one_replica(verl_run):
    """A ("ddp", "fsdp") mesh of 2 x 1: each rank holds a full replica, so only rank 0's file is read."""
    import torch
    from safetensors.torch import load_file

    from reasonlens.sources.verl_fsdp import merge_shards, read_layout

    layout = read_layout(verl_run["hsdp"] / "global_step_1" / "actor")
    assert [f.name for f in layout.files] == ["model_world_size_2_rank_0.pt"]
    merged = merge_shards(layout)
    original = load_file(verl_run["sources"][1] / "model.safetensors")
    assert all(torch.equal(merged[k], original[k]) for k in original)


def test_lora_only_shards_become_an_adapter_over_base(verl_run, tmp_path, monkeypatch):
    import torch
    from transformers import AutoModelForCausalLM

    from reasonlens.models.loading import load_model

    monkeypatch.setenv("REASONLENS_CACHE", str(tmp_path / "cache"))
    base = verl_run["sources"][1]
    with pytest.raises(ReasonlensError, match=r"global_step_1: LoRA-only verl checkpoint.*--base MODEL"):
        discover_checkpoints(verl_run["lora"])
    [ckpt] = discover_checkpoints(verl_run["lora"], base=str(base)).checkpoints[1:]
    actor = verl_run["lora"] / "global_step_1" / "actor"
    assert (ckpt.kind, ckpt.path, ckpt.adapter_base) == ("peft", actor, str(base))
    model, _ = load_model(ckpt.path, device="cpu", dtype="fp32", adapter_base=ckpt.adapter_base)
    [adapter] = [p for p in (tmp_path / "cache" / "verl-lora").iterdir() if p.is_dir()]  # not in the run folder
    assert sorted(p.name for p in adapter.iterdir()) == ["adapter_config.json", "adapter_model.safetensors"]
    assert sorted(p.name for p in (verl_run["lora"] / "global_step_1" / "actor").iterdir()) == [
        "fsdp_config.json", "huggingface", "lora_train_meta.json", "model_world_size_2_rank_0.pt",
        "model_world_size_2_rank_1.pt"]
    reference = _lora_reference(base)  # built and merged independently, in float64
    ids = torch.tensor([[5, 17, 42, 8, 99, 3]])
    with torch.no_grad():
        got, want = model(ids).logits.double(), reference(ids).logits
    assert torch.allclose(got, want, atol=1e-4)
    assert not torch.allclose(want, AutoModelForCausalLM.from_pretrained(base, dtype=torch.float64)(ids).logits,
                              atol=1e-3)  # the adapter does change the model


def _lora_reference(base: Path):
    """The writer's LoRA model (same seed, same config), merged by PEFT itself, in float64."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(1)
    return get_peft_model(AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32),
                          LoraConfig(**LORA, init_lora_weights=False)).merge_and_unload().double()


def test_peft_model_saved_in_full_has_its_lora_folded(verl_run):
    """verl's default with lora_rank > 0: base_layer + lora_A/B keys in the shards, folded as W + (alpha/r) B A."""
    import torch

    from reasonlens.models.loading import load_model

    with pytest.warns(UserWarning):
        [ckpt] = discover_checkpoints(verl_run["lora-full"]).checkpoints
    assert ckpt.kind == "verl-fsdp"
    model, _ = load_model(ckpt.path, device="cpu", dtype="fp32")
    ids = torch.tensor([[5, 17, 42, 8, 99, 3]])
    with torch.no_grad():
        got, want = model(ids).logits.double(), _lora_reference(verl_run["sources"][1])(ids).logits
    assert torch.allclose(got, want, atol=1e-4)


def test_fold_lora_by_hand():
    """W = I, A = [[1, 2]] (r=1), B = [[1], [0]], alpha/r = 2: W + 2 B A = [[3, 4], [0, 1]]."""
    import torch

    from reasonlens.sources.verl_fsdp import fold_lora

    p = "base_model.model.layer.q_proj"
    state = {f"{p}.base_layer.weight": torch.eye(2), f"{p}.base_layer.bias": torch.zeros(2),
             f"{p}.lora_A.default.weight": torch.tensor([[1.0, 2.0]]),
             f"{p}.lora_B.default.weight": torch.tensor([[1.0], [0.0]]),
             "base_model.model.embed.weight": torch.ones(1)}
    folded = fold_lora(state, r=1, lora_alpha=2)
    assert sorted(folded) == ["embed.weight", "layer.q_proj.bias", "layer.q_proj.weight"]
    assert folded["layer.q_proj.weight"].tolist() == [[3.0, 4.0], [0.0, 1.0]]
    with pytest.raises(ReasonlensError, match=r"layer\.q_proj has a base layer but not the LoRA pair"):
        fold_lora({f"{p}.base_layer.weight": torch.eye(2)}, r=1, lora_alpha=2)


@pytest.mark.parametrize("mode, message", [
    ("tp", r"sharded on a 2-D mesh \('fsdp', 'tp'\) \(FSDP \+ tensor parallel\)"),
    ("partial", r"is a Partial placement"),
], ids=["fsdp-tp", "partial"])
def test_tp_mesh_and_partial_placement_are_refused(verl_run, mode, message):
    with pytest.raises(ReasonlensError, match=r"model_world_size_2_rank_0\.pt: .*" + message + r".*'hf_model'"):
        discover_checkpoints(verl_run[mode])


def test_truncated_shard_is_named(verl_run, tmp_path):
    run = _copy_run(verl_run["series"], tmp_path)
    shard = run / "global_step_1" / "actor" / "model_world_size_2_rank_1.pt"
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    with pytest.raises(ReasonlensError, match=r"global_step_1: .*model_world_size_2_rank_1\.pt is truncated"):
        discover_checkpoints(run)


def test_missing_rank_and_other_world_size_are_named(verl_run, tmp_path):
    actor = _copy_run(verl_run["series"], tmp_path) / "global_step_1" / "actor"
    shutil.copy(actor / "model_world_size_2_rank_0.pt", actor / "model_world_size_4_rank_0.pt")
    with pytest.raises(ReasonlensError, match=r"model_world_size_4_rank_0\.pt do not belong to a run of world_size=2"):
        discover_checkpoints(actor.parent.parent)
    (actor / "model_world_size_4_rank_0.pt").unlink()
    (actor / "model_world_size_2_rank_1.pt").unlink()
    with pytest.raises(ReasonlensError, match=r"shard\(s\) model_world_size_2_rank_1\.pt missing \(1 of 2 present\)"):
        discover_checkpoints(actor.parent.parent)


def test_shard_saved_on_another_mesh_is_named(verl_run, tmp_path):
    """A real rank-0 shard of the 2-rank run presented as a 1-rank checkpoint: its DTensors say otherwise."""
    actor = _copy_run(verl_run["series"], tmp_path) / "global_step_1" / "actor"
    (actor / "model_world_size_2_rank_1.pt").unlink()
    (actor / "model_world_size_2_rank_0.pt").rename(actor / "model_world_size_1_rank_0.pt")
    (actor / "fsdp_config.json").write_text(json.dumps({"FSDP_version": 2, "world_size": 1}))
    with pytest.raises(ReasonlensError, match=r"model_world_size_1_rank_0\.pt: .* saved on a mesh of 2 ranks, but "
                                              r"fsdp_config\.json says world_size=1"):
        discover_checkpoints(actor.parent.parent)


def test_shard_swapped_in_from_another_checkpoint_is_named(verl_run, tmp_path):
    actor = _copy_run(verl_run["series"], tmp_path) / "global_step_1" / "actor"
    shutil.copy(verl_run["lora"] / "global_step_1" / "actor" / "model_world_size_2_rank_1.pt",
                actor / "model_world_size_2_rank_1.pt")
    with pytest.raises(ReasonlensError, match=r"model_world_size_2_rank_1\.pt holds other weights than "
                                              r"model_world_size_2_rank_0\.pt"):
        discover_checkpoints(actor.parent.parent)


class _RunsCode:
    """Unpickling this would create a file: the test that weights_only never lets it run."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_pickle_that_would_run_code_is_refused_and_never_run(verl_run, tmp_path):
    import torch

    actor = _copy_run(verl_run["series"], tmp_path) / "global_step_1" / "actor"
    marker = tmp_path / "pwned"
    torch.save({"model.embed_tokens.weight": _RunsCode(marker)}, actor / "model_world_size_2_rank_1.pt")
    with pytest.raises(ReasonlensError, match=r"model_world_size_2_rank_1\.pt holds objects other than tensors.*"
                                              r"weights_only=True"):
        discover_checkpoints(actor.parent.parent)
    from reasonlens.models.loading import load_model

    with pytest.raises(ReasonlensError, match="holds objects other than tensors"):
        load_model(actor, device="cpu", dtype="fp32")
    assert not marker.exists()


class _ShardedTensorRef:
    """Pickles as a reference to FSDP1's ShardedTensor (what an FSDP1 model without a device mesh saves)."""

    def __reduce__(self):
        from torch.distributed._shard.sharded_tensor.api import ShardedTensor

        return (ShardedTensor, ())


def test_fsdp1_sharded_tensors_get_their_own_message(verl_run, tmp_path):
    import torch

    actor = _copy_run(verl_run["series"], tmp_path) / "global_step_1" / "actor"
    torch.save({"model.embed_tokens.weight": _ShardedTensorRef()}, actor / "model_world_size_2_rank_0.pt")
    with pytest.raises(ReasonlensError, match=r"model_world_size_2_rank_0\.pt holds FSDP1 ShardedTensors.*"
                                              r"python -m verl\.model_merger merge --backend fsdp"):
        discover_checkpoints(actor.parent.parent)


def test_missing_fsdp_config_and_huggingface_are_named(verl_run, tmp_path):
    actor = _copy_run(verl_run["series"], tmp_path) / "global_step_1" / "actor"
    shutil.rmtree(actor / "huggingface")
    with pytest.raises(ReasonlensError, match=r"actor/huggingface/config\.json is missing"):
        discover_checkpoints(actor.parent.parent)
    (actor / "fsdp_config.json").unlink()
    shutil.copytree(verl_run["series"] / "global_step_1" / "actor" / "huggingface", actor / "huggingface")
    with pytest.raises(ReasonlensError, match=r"actor/fsdp_config\.json is missing"):
        discover_checkpoints(actor.parent.parent)


def test_fingerprint_follows_the_shards(verl_run, tmp_path):
    """The rollout cache key changes when a shard changes, so a re-saved checkpoint is analysed again."""
    from reasonlens.analysis.generate import weights_fingerprint

    actor = _copy_run(verl_run["series"], tmp_path) / "global_step_1" / "actor"
    before = weights_fingerprint(actor)
    assert {"model_world_size_2_rank_0.pt", "fsdp_config.json", "config.json"} <= {f[0] for f in before[1:]}
    shard = actor / "model_world_size_2_rank_1.pt"
    shard.write_bytes(shard.read_bytes() + b"\0")
    assert weights_fingerprint(actor) != before


def test_cli_analyze_on_the_unmodified_verl_series(verl_run, tmp_path):
    """`reasonlens analyze checkpoints/proj/exp` on a verl run as saved with verl's defaults, end to end."""
    import pandas as pd
    from typer.testing import CliRunner

    from reasonlens import columns as C
    from reasonlens.cli import app

    out = tmp_path / "analysis"
    result = CliRunner().invoke(app, ["analyze", str(verl_run["series"]), "--out", str(out), "--no-report",
                                      "--task", "basic_arithmetic", "--num-prompts", "2", "--samples", "2",
                                      "--max-new-tokens", "6", "--device", "cpu", "--dtype", "fp32"])
    assert result.exit_code == 0, result.output
    rollouts = pd.read_parquet(out / "rollouts.parquet")
    assert sorted(rollouts[C.STEP].unique()) == [1, 2, 3]
    assert sorted(rollouts[C.CHECKPOINT].unique()) == ["global_step_1", "global_step_2", "global_step_3"]
    assert all(len(e) == n for e, n in zip(rollouts[C.ENTROPIES], rollouts[C.N_TOKENS]))
    assert not any(p.name.startswith(("model.", "adapter")) for p in verl_run["series"].rglob("*"))


def test_vllm_gets_the_merged_checkpoint_as_a_cached_folder(verl_run, tmp_path, monkeypatch):
    """vLLM reads folders only: the merged shards are written once into the cache, not into the run."""
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    from reasonlens.models.verl import verl_model_folder

    monkeypatch.setenv("REASONLENS_CACHE", str(tmp_path / "cache"))
    actor = verl_run["series"] / "global_step_2" / "actor"
    folder = verl_model_folder(actor)
    assert folder.is_relative_to(tmp_path / "cache" / "verl-merged")
    assert {"config.json", "tokenizer.json", "model.safetensors"} <= {p.name for p in folder.iterdir()}
    written, original = load_file(folder / "model.safetensors"), load_file(verl_run["sources"][2] / "model.safetensors")
    assert all(torch.equal(written[k], original[k]) for k in original)
    AutoModelForCausalLM.from_pretrained(folder)  # an ordinary HF folder
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    assert verl_model_folder(actor) == folder and (folder / "model.safetensors").stat().st_mtime_ns == stamp


def test_lora_shards_without_their_metadata_are_refused(verl_run, tmp_path, monkeypatch):
    """Without lora_train_meta.json the adapter's scale (lora_alpha / r) is unknown: refused, nothing cached."""
    from reasonlens.models.loading import load_model

    monkeypatch.setenv("REASONLENS_CACHE", str(tmp_path / "cache"))
    actor = _copy_run(verl_run["lora"], tmp_path) / "global_step_1" / "actor"
    (actor / "lora_train_meta.json").unlink()
    with pytest.raises(ReasonlensError, match=r"lora_train_meta\.json is missing or unreadable.*lora_alpha"):
        load_model(actor, device="cpu", dtype="fp32", adapter_base=str(verl_run["sources"][1]))
    assert not [p for p in (tmp_path / "cache" / "verl-lora").iterdir() if p.is_dir()]


VLLM_CLI = Path(__file__).resolve().parents[1] / ".venv-vllm" / "bin" / "vllm"


@pytest.mark.slow
@pytest.mark.skipif(not VLLM_CLI.exists(), reason="needs .venv-vllm (make install-vllm)")
def test_vllm_server_analyses_an_unmodified_verl_checkpoint(tiny_tokenizer_dir, tmp_path, monkeypatch):
    """vLLM samples from the merged folder in the cache; our scorer re-merges the shards in memory."""
    import pandas as pd
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM
    from typer.testing import CliRunner

    from reasonlens import columns as C
    from reasonlens.cli import app

    monkeypatch.setenv("REASONLENS_CACHE", str(tmp_path / "cache"))
    tokenizer = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    torch.manual_seed(1)  # head_dim 64: vLLM's CPU attention rejects the suite's 16
    LlamaForCausalLM(LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=128, intermediate_size=256, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=512, tie_word_embeddings=True,
        initializer_range=0.1, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )).save_pretrained(tmp_path / "source")
    tokenizer.save_pretrained(tmp_path / "source")
    write_verl_fsdp([(tmp_path / "source", tmp_path / "run" / "global_step_5" / "actor", "fsdp2")])
    result = CliRunner().invoke(app, [
        "analyze", str(tmp_path / "run"), "--out", str(tmp_path / "out"), "--task", "basic_arithmetic",
        "--num-prompts", "2", "--samples", "2", "--max-new-tokens", "10", "--temperature", "1.0", "--device", "cpu",
        "--dtype", "fp32", "--vllm-eager", "--no-report", "--backend", "vllm-server", "--vllm-command", str(VLLM_CLI)])
    assert result.exit_code == 0, result.output
    rollouts = pd.read_parquet(tmp_path / "out" / "rollouts.parquet")
    assert len(rollouts) == 4 and (rollouts[C.CHECKPOINT] == "global_step_5").all()
    assert all(len(e) == n > 0 for e, n in zip(rollouts[C.ENTROPIES], rollouts[C.N_TOKENS]))
    assert [p.name for p in (tmp_path / "cache" / "verl-merged").iterdir() if p.is_dir()]
