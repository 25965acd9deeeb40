"""Write a verl FSDP checkpoint as verl does: a real gloo process group, one ``torch.save`` per rank.

Each rank runs this file (``python verl_writer.py RANK WORLD STORE JOBS_JSON``), one process group for
all jobs (each a source HF folder, a target actor folder and a mode), as importing torch costs more than
sharding a tiny model. Like
verl's ``FSDPCheckpointManager.save_checkpoint`` (verl/utils/checkpoint/fsdp_checkpoint_manager.py) every
rank saves ``model.state_dict()`` of its sharded model to ``model_world_size_{W}_rank_{R}.pt`` and rank 0
writes ``fsdp_config.json`` and ``huggingface/`` (config, tokenizer; no weights). FSDP2 ``fully_shard``
runs on CPU; FSDP1 (verl's default) needs an accelerator, and gives the same DTensor layout through its
device mesh. Modes: ``fsdp2`` (1-D mesh), ``hsdp`` (a ("ddp", "fsdp") mesh of 2 x 1), ``lora`` (a PEFT
model saved LoRA-only, with lora_train_meta.json), ``lora-full`` (the PEFT model saved in full, verl's
default when ``lora_rank > 0``), and two layouts verl's merger refuses: ``tp`` (a 2-D
("fsdp", "tp") mesh) and ``partial`` (a Partial placement).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

LORA = {"r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"]}


def write_verl_fsdp(jobs: list[tuple[Path, Path, str]], *, world_size: int = 2, threads: int = 1) -> None:
    """Run ``world_size`` writer processes over ``jobs``: (source HF folder, actor folder to write, mode)."""
    for _, actor, _ in jobs:
        actor.mkdir(parents=True, exist_ok=True)
    store = jobs[0][1].parent / f".store-{os.getpid()}"
    spec = json.dumps([[str(source), str(actor), mode] for source, actor, mode in jobs])
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), TOKENIZERS_PARALLELISM="false")
    procs = [subprocess.Popen([sys.executable, __file__, str(rank), str(world_size), str(store), spec], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for rank in range(world_size)]
    outputs = [proc.communicate(timeout=600)[0].decode(errors="replace") for proc in procs]
    store.unlink(missing_ok=True)
    if any(proc.returncode for proc in procs):
        raise RuntimeError("verl writer failed:\n" + "\n".join(o[-3000:] for o in outputs))


def _sharded_state(model, mode: str, world_size: int) -> dict:
    """The per-rank state dict of ``model`` laid out as ``mode`` says."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard
    from torch.distributed.tensor import DTensor, Partial, Shard, distribute_tensor

    if mode in ("fsdp2", "lora", "lora-full", "hsdp"):
        shape, names = ((world_size, 1), ("ddp", "fsdp")) if mode == "hsdp" else ((world_size,), ("fsdp",))
        mesh = init_device_mesh("cpu", shape, mesh_dim_names=names)
        for layer in model.get_decoder().layers:  # verl wraps each decoder layer, then the whole model
            fully_shard(layer, mesh=mesh)
        fully_shard(model, mesh=mesh)
        state = model.state_dict()
        if mode == "lora":  # checkpoint.save_lora_only: the filter of FSDPCheckpointManager.save_checkpoint
            state = {k: v for k, v in state.items() if "lora_" in k or ".adapter_" in k}
        return state
    if mode == "tp":
        mesh = init_device_mesh("cpu", (1, world_size), mesh_dim_names=("fsdp", "tp"))
        return {k: distribute_tensor(v, mesh, [Shard(0), Shard(v.dim() - 1)]) for k, v in model.state_dict().items()}
    if mode == "partial":
        mesh = init_device_mesh("cpu", (world_size,), mesh_dim_names=("fsdp",))
        return {k: DTensor.from_local(v / world_size, mesh, [Partial()]) for k, v in model.state_dict().items()}
    raise ValueError(mode)


def _rank_main(rank: int, world_size: int, store: str, jobs: list) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world_size)
    for source, actor, mode in jobs:
        _save(rank, world_size, source, Path(actor), mode)
        dist.barrier()
    dist.destroy_process_group()


def _save(rank: int, world_size: int, source: str, actor: Path, mode: str) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
    if mode.startswith("lora"):
        from peft import LoraConfig, get_peft_model

        torch.manual_seed(1)
        model = get_peft_model(model, LoraConfig(**LORA, init_lora_weights=False))
    torch.save(_sharded_state(model, mode, world_size), actor / f"model_world_size_{world_size}_rank_{rank}.pt")
    if rank == 0:
        hf = actor / "huggingface"
        (model.get_base_model() if mode.startswith("lora") else model).config.save_pretrained(hf)
        AutoTokenizer.from_pretrained(source).save_pretrained(hf)
        (actor / "fsdp_config.json").write_text(json.dumps({"FSDP_version": 2, "world_size": world_size}, indent=4))
        if mode.startswith("lora"):
            (actor / "lora_train_meta.json").write_text(json.dumps(
                {"r": LORA["r"], "lora_alpha": LORA["lora_alpha"], "task_type": "CAUSAL_LM"}))


if __name__ == "__main__":
    _rank_main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], json.loads(sys.argv[4]))
