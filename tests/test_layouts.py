"""Other frameworks' checkpoint layouts: verl Megatron (schema v2 and the older flat one), OpenRLHF
``global_step{N}_hf`` series, NeMo-RL and prime-rl torch DCP checkpoints, and the short-series warning."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import pytest

from reasonlens.errors import ReasonlensError
from reasonlens.sources.checkpoints import discover_checkpoints


def _link_model(src: Path, dst: Path, skip=()) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for item in src.iterdir():
        if item.name not in skip:
            os.symlink(item, dst / item.name)
    return dst


def _manifest(actor: Path, contents: dict) -> None:
    """ckpt_contents.json as verl's MegatronCheckpointManager._build_checkpoint_manifest writes it."""
    actor.mkdir(parents=True, exist_ok=True)
    (actor / "ckpt_contents.json").write_text(json.dumps({
        "schema_version": 2, "framework": "megatron", "role": "actor", "arch": "LlamaForCausalLM",
        "global_step": 10, "world_size": 8, "save_contents": ["model", "optimizer", "extra"],
        "backend": {"has_bridge": True, "use_dist_checkpointing": False, "peft": False}, "contents": contents,
        "directories": {}, "saved_any_dist_ckpt": True}))


def _dcp_save(folder: Path, state: dict) -> None:
    """A real torch distributed checkpoint (.metadata + __0_0.distcp), single process."""
    import torch.distributed.checkpoint as dcp

    dcp.save(state, checkpoint_id=str(folder))


def test_verl_megatron_v2_found_through_the_manifest(tiny_model_dir, tmp_path):
    for step in range(1, 6):
        actor = tmp_path / f"global_step_{step}" / "actor"
        _link_model(tiny_model_dir, actor / "model" / "huggingface")
        (actor / "model" / "dist_ckpt").mkdir()
        _manifest(actor, {"model": {"path": "model/huggingface", "format": "huggingface", "backend": "mbridge"},
                          "optimizer": {"path": "optimizer/dist_ckpt", "format": "megatron_dist_checkpoint"}})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 5 checkpoints: no short-series warning
        series = discover_checkpoints(tmp_path)
    assert [(c.step, c.kind) for c in series.checkpoints] == [(s, "verl") for s in range(1, 6)]
    assert series.checkpoints[0].path == tmp_path / "global_step_1" / "actor" / "model" / "huggingface"


def test_verl_megatron_hybrid_uses_hf_model_entry(tiny_model_dir, tmp_path):
    actor = tmp_path / "global_step_3" / "actor"
    _link_model(tiny_model_dir, actor / "model" / "huggingface")
    _manifest(actor, {"model": {"path": "model/dist_ckpt", "format": "megatron_dist_checkpoint"},
                      "hf_model": {"path": "model/huggingface", "format": "huggingface"}})
    with pytest.warns(UserWarning, match="trainer.save_freq"):
        [ckpt] = discover_checkpoints(tmp_path).checkpoints
    assert ckpt.path == actor / "model" / "huggingface"


def test_verl_megatron_dist_ckpt_only_names_the_merger(tmp_path):
    actor = tmp_path / "global_step_3" / "actor"
    _manifest(actor, {"model": {"path": "model/dist_ckpt", "format": "megatron_dist_checkpoint"}})
    with pytest.raises(ReasonlensError, match=r"Megatron dist_checkpointing shards only.*use_mbridge=True.*"
                                              r"python -m verl\.model_merger merge --backend megatron"):
        discover_checkpoints(tmp_path)


def test_verl_megatron_flat_layout_names_the_migration_script(tiny_model_dir, tmp_path):
    actor = tmp_path / "global_step_7" / "actor"
    _link_model(tiny_model_dir, actor / "huggingface", skip={"model.safetensors"})  # config + tokenizer only
    (actor / "dist_ckpt").mkdir()
    with pytest.raises(ReasonlensError, match=r"global_step_7: an older verl Megatron layout.*"
                                              r"scripts/migrate_megatron_checkpoint_layout\.py --checkpoint .*actor"):
        discover_checkpoints(tmp_path)


def test_verl_flat_megatron_with_hf_weights_still_loads(tiny_model_dir, tmp_path):
    actor = tmp_path / "global_step_7" / "actor"
    _link_model(tiny_model_dir, actor / "huggingface")
    (actor / "dist_ckpt").mkdir()
    with pytest.warns(UserWarning):
        assert discover_checkpoints(tmp_path).checkpoints[0].path == actor / "huggingface"


def test_openrlhf_hf_folders_are_a_series(tiny_model_dir, tmp_path):
    """OpenRLHF's ppo_actor.save_checkpoint: {ckpt.path}/global_step{N}_hf beside the DeepSpeed _actor/."""
    for step in (20, 10, 30):
        _link_model(tiny_model_dir, tmp_path / f"global_step{step}_hf")
        (tmp_path / "_actor" / f"global_step{step}").mkdir(parents=True)
    with pytest.warns(UserWarning, match=r"only 3 checkpoint\(s\).*--ckpt\.save_steps \(default -1: never.*"
                                         r"--ckpt\.max_num \(default 3; --max_ckpt_num"):
        series = discover_checkpoints(tmp_path)
    assert [(c.step, c.name, c.kind) for c in series.checkpoints] == [
        (10, "global_step10_hf", "hf"), (20, "global_step20_hf", "hf"), (30, "global_step30_hf", "hf")]


def test_openrlhf_deepspeed_folder_points_to_the_hf_ones(tmp_path):
    folder = tmp_path / "global_step10"
    folder.mkdir()
    (folder / "mp_rank_00_model_states.pt").write_bytes(b"")
    with pytest.raises(ReasonlensError, match=r"global_step10: a DeepSpeed checkpoint.*global_step\{N\}_hf.*"
                                              r"--ckpt\.save_hf"):
        discover_checkpoints(tmp_path)


def test_nemo_rl_dcp_names_its_converter(tmp_path):
    import torch

    for step in (10, 20):
        folder = tmp_path / f"step_{step}"
        _dcp_save(folder / "policy" / "weights", {"model": {"w": torch.ones(2, 2)}})
        (folder / "policy" / "tokenizer").mkdir()
        (folder / "config.yaml").write_text("policy:\n  model_name: Qwen/Qwen2.5-1.5B\n")
        (folder / "training_info.json").write_text(json.dumps({"step": step}))
    assert (tmp_path / "step_10" / "policy" / "weights" / ".metadata").is_file()
    with pytest.raises(ReasonlensError, match=r"step_10: a NeMo-RL checkpoint in torch distributed \(DCP\) format: "
                                              r"convert it with NeMo-RL's uv run examples/converters/"
                                              r"convert_dcp_to_hf\.py --config=.*step_10/config\.yaml "
                                              r"--dcp-ckpt-path=.*step_10/policy/weights --hf-ckpt-path=OUT"):
        discover_checkpoints(tmp_path)


def test_nemo_rl_megatron_names_its_converter(tmp_path):
    (tmp_path / "step_5" / "policy" / "weights" / "iter_0000000").mkdir(parents=True)
    with pytest.raises(ReasonlensError, match=r"convert_megatron_to_hf\.py .*--megatron-ckpt-path=.*iter_0000000"):
        discover_checkpoints(tmp_path)


def test_nemo_rl_series_converted_in_place_warns_about_keep_top_k(tiny_model_dir, tmp_path):
    for step in (10, 20):
        _link_model(tiny_model_dir, tmp_path / f"step_{step}")
        (tmp_path / f"step_{step}" / "training_info.json").write_text("{}")  # written by NeMo-RL's checkpointer
    with pytest.warns(UserWarning, match=r"only 2 checkpoint\(s\).*keep_top_k best checkpoints.*\(3 in examples/"):
        assert len(discover_checkpoints(tmp_path).checkpoints) == 2


def test_prime_rl_dcp_names_the_broadcasts(tmp_path):
    import torch

    step = tmp_path / "run" / "checkpoints" / "step_50"
    _dcp_save(step / "trainer", {"model": {"w": torch.ones(2)}, "progress": {"step": 50}})
    (step / "orchestrator").mkdir()
    with pytest.raises(ReasonlensError, match=r"step_50: a prime-rl trainer checkpoint \(torch DCP.*no converter.*"
                                              r"RUN/broadcasts/step_N/"):
        discover_checkpoints(tmp_path / "run")


def test_prime_rl_broadcasts_need_the_base_config(tiny_model_dir, tmp_path):
    """Broadcast folders hold HF-named weights and a STABLE marker; with the base's config added they load."""
    for step in (5, 10):
        _link_model(tiny_model_dir, tmp_path / "broadcasts" / f"step_{step}", skip={"config.json"})
        (tmp_path / "broadcasts" / f"step_{step}" / "STABLE").touch()
    with pytest.raises(ReasonlensError, match=r"step_5: a prime-rl weight broadcast .*without config\.json: copy "
                                              r"the base model's config\.json"):
        discover_checkpoints(tmp_path / "broadcasts")
    for step in (5, 10):
        os.symlink(tiny_model_dir / "config.json", tmp_path / "broadcasts" / f"step_{step}" / "config.json")
    assert [c.step for c in discover_checkpoints(tmp_path / "broadcasts").checkpoints] == [5, 10]


def test_trl_series_gets_no_retention_warning(tiny_series):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(discover_checkpoints(tiny_series).checkpoints) == 3
