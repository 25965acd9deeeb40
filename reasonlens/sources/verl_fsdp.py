"""verl FSDP checkpoints as verl writes them by default: per-rank DTensor shards, merged here in memory.

verl's ``FSDPCheckpointManager.save_checkpoint`` (verl/utils/checkpoint/fsdp_checkpoint_manager.py) has every
rank ``torch.save(model.state_dict())`` to ``actor/model_world_size_{W}_rank_{R}.pt``: FSDP1 (verl's default
``strategy: fsdp``, built with a device mesh in verl/workers/engine/fsdp/transformer_impl.py) under
SHARDED_STATE_DICT and FSDP2 alike give DTensors. Rank 0 writes ``fsdp_config.json`` (``FSDP_version``,
``world_size``) and ``actor/huggingface/`` (config and tokenizer; weights only when ``save_contents`` holds
``hf_model``). With ``checkpoint.save_lora_only`` the shards keep only ``lora_`` / ``.adapter_`` keys and
``lora_train_meta.json`` records r, lora_alpha and task_type.

The merge follows verl's own merger (verl/model_merger/fsdp_model_merger.py): each ``Shard(dim)`` DTensor's
local tensors joined along ``dim`` in rank order, ``Replicate`` taken once, meshes ``("fsdp",)`` and
``("ddp", "fsdp")`` (whose replicated first dimension is dropped); FSDP+TP and ``Partial`` refused, as there.
Departures: shards are opened with ``torch.load(weights_only=True)`` (the merger uses ``weights_only=False``,
which runs any code in the pickle); the only classes allowed besides tensors are DTensor's own
(``dtensor_classes``: DTensor, DeviceMesh and its layout, the spec, the placements). Shards are read one at a time, memory-mapped, into tensors allocated at their full size, so
the peak is one merged model plus one shard (the merger holds every shard at once); the stored dtype is
kept (the merger casts to bf16) unless the caller asks for another; plain tensors identical on every rank
are taken once (the merger concatenates them along dim 0, which it still does when they differ).
"""

from __future__ import annotations

import json
import logging
import re
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from reasonlens.errors import ReasonlensError

FSDP_CONFIG = "fsdp_config.json"
LORA_META = "lora_train_meta.json"
HF_SUBDIR = "huggingface"
SHARD_NAME = re.compile(r"^model_world_size_(\d+)_rank_(\d+)\.pt$")
_DATA_PARALLEL = ("ddp", "dp")  # a replicated first mesh dimension (HSDP), as verl's merger drops it


@dataclass(frozen=True)
class KeyPlan:
    """How one state-dict entry is rebuilt: "shard" along ``dim`` to ``shape``, "replicate" or "plain"."""

    how: str
    shape: tuple[int, ...]
    dim: int = 0


@dataclass(frozen=True)
class ShardLayout:
    """A verl actor folder's shards, checked: the files to read in order and the plan for every key."""

    actor: Path
    world_size: int
    files: tuple[Path, ...]  # the ranks that together hold every value once, in mesh order
    plans: dict

    @property
    def lora_only(self) -> bool:
        """True for a ``save_lora_only`` checkpoint: only LoRA/adapter keys were saved."""
        return all("lora_" in key or ".adapter_" in key for key in self.plans)


def is_fsdp_actor(actor: Path) -> bool:
    """Whether ``actor`` holds verl FSDP shards (or their fsdp_config.json)."""
    return (actor / FSDP_CONFIG).is_file() or any(SHARD_NAME.match(p.name) for p in actor.glob("model_*.pt"))


def fsdp_files(actor: Path) -> list[Path]:
    """The files that define the merged weights: shards, fsdp_config.json, LoRA metadata."""
    shards = [p for p in actor.glob("model_world_size_*_rank_*.pt") if SHARD_NAME.match(p.name)]
    return sorted(p for p in [actor / FSDP_CONFIG, actor / LORA_META] + shards if p.is_file())


def _read_config(actor: Path) -> int:
    """The world size from fsdp_config.json (which verl's merger also needs), after checking FSDP_version:
    FSDP1 on a device mesh (as verl builds it) and FSDP2 both save DTensors."""
    path = actor / FSDP_CONFIG
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
        world_size = int(config["world_size"])
    except FileNotFoundError:
        raise ReasonlensError(f"{path} is missing: verl writes it next to the model_world_size_W_rank_R.pt shards "
                              "and the world size comes from it; copy it from the run (rank 0 writes it).") from None
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ReasonlensError(f"{path} is not verl's fsdp_config.json ({type(err).__name__}: {err}); it must be "
                              'JSON like {"FSDP_version": 2, "world_size": 8}.') from None
    if world_size < 1:
        raise ReasonlensError(f"{path}: world_size={world_size} must be >= 1.")
    if config.get("FSDP_version", 2) not in (1, 2):
        raise ReasonlensError(f"{path}: FSDP_version={config.get('FSDP_version')!r}; reasonlens reads the shards "
                              "of FSDP 1 and 2, as verl's merger does.")
    return world_size


def _shard_paths(actor: Path, world_size: int) -> list[Path]:
    """Rank files 0..W-1; files of another world size, or missing ranks, are named in the error."""
    found = {}
    for path in actor.glob("model_world_size_*_rank_*.pt"):
        if m := SHARD_NAME.match(path.name):
            found[(int(m.group(1)), int(m.group(2)))] = path
    stray = sorted(p.name for (w, r), p in found.items() if w != world_size or r >= world_size)
    if stray:
        raise ReasonlensError(f"{actor}: {', '.join(stray)} do not belong to a run of world_size={world_size} "
                              f"({FSDP_CONFIG}); a checkpoint saved again with another number of GPUs into the "
                              "same folder? Remove the stale shards (or restore the matching fsdp_config.json).")
    missing = [f"model_world_size_{world_size}_rank_{r}.pt" for r in range(world_size) if (world_size, r) not in found]
    if missing:
        raise ReasonlensError(f"{actor}: shard(s) {', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''} "
                              f"missing ({world_size - len(missing)} of {world_size} present); copy every rank's "
                              "file of this checkpoint.")
    return [found[(world_size, r)] for r in range(world_size)]


@contextmanager
def _quiet_mesh_warning():
    """Unpickling a DeviceMesh outside its process group logs a torch.compile warning that does not apply."""
    mesh_logger = logging.getLogger("torch.distributed.device_mesh")
    level = mesh_logger.level
    mesh_logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        mesh_logger.setLevel(level)


def dtensor_classes() -> list:
    """The classes a pickled DTensor names, and nothing else: DTensor, its DeviceMesh (and the mesh layout
    classes of recent torch), its spec and the placements. torch.distributed.tensor registers the same set
    for weights_only loads when imported; listing them keeps older torch releases working too."""
    import torch.distributed.device_mesh as device_mesh
    from torch.distributed.tensor import DTensor, Partial, Replicate, Shard, _dtensor_spec

    optional = [getattr(module, name) for module, name in (
        (_dtensor_spec, "DTensorSpec"), (_dtensor_spec, "TensorMeta"), (_dtensor_spec, "ShardOrderEntry"),
        (device_mesh, "_MeshLayout"), (device_mesh, "_FlatLayout")) if hasattr(module, name)]
    return [DTensor, device_mesh.DeviceMesh, Shard, Replicate, Partial] + optional


def load_shard(path: Path) -> dict:
    """One rank's state dict, memory-mapped, with ``weights_only=True``: tensors and DTensors only."""
    import pickle
    import zipfile

    import torch

    if not zipfile.is_zipfile(path):
        raise ReasonlensError(f"{path} is truncated or not a torch.save file (no zip directory at its end); "
                              "copy this shard again from the run.")
    try:
        with _quiet_mesh_warning(), torch.serialization.safe_globals(dtensor_classes()):
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0][:200]
        if "sharded_tensor" in str(err):  # FSDP1 without a device mesh (older verl): ShardedTensor, not DTensor
            raise ReasonlensError(f"{path} holds FSDP1 ShardedTensors (a model wrapped without a device mesh, as "
                                  "older verl releases did), which torch.load(weights_only=True) cannot open; "
                                  "merge it with python -m verl.model_merger merge --backend fsdp --local_dir "
                                  f"{path.parent} --target_dir OUT and analyse OUT.") from None
        raise ReasonlensError(f"{path} holds objects other than tensors and DTensors ({first}); reasonlens opens "
                              "checkpoints with torch.load(weights_only=True) only and never runs code from one. "
                              "Re-save it from a trusted copy, or merge it yourself with python -m verl.model_merger."
                              ) from None
    except (RuntimeError, OSError, EOFError, ValueError) as err:
        first = str(err).strip().splitlines()[0][:200]
        raise ReasonlensError(f"{path} is unreadable ({type(err).__name__}: {first}); it is probably truncated: "
                              "copy this shard again from the run.") from None
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise ReasonlensError(f"{path} is not a state dict (name -> tensor) as verl saves model shards.")
    return state


def _refuse(path: Path, key: str, what: str) -> ReasonlensError:
    return ReasonlensError(f"{path}: {key} is {what}, which reasonlens does not merge (nor does verl's "
                           "model_merger: FSDP only, or HSDP with a ('ddp', 'fsdp') mesh). Save this run's "
                           "weights with actor_rollout_ref.actor.checkpoint.save_contents including 'hf_model', "
                           "which writes them to actor/huggingface/.")


def _plan(key: str, value, path: Path, world_size: int) -> tuple[KeyPlan, object]:
    """How ``key`` merges, and its DTensor's mesh (None for plain tensors)."""
    from torch.distributed.tensor import DTensor, Replicate, Shard

    if not isinstance(value, DTensor):
        return KeyPlan("plain", tuple(value.shape)), None
    mesh, placements = value.device_mesh, tuple(value.placements)
    names = tuple(mesh.mesh_dim_names or ())
    if mesh.size() != world_size:
        raise ReasonlensError(f"{path}: {key} was saved on a mesh of {mesh.size()} ranks, but {FSDP_CONFIG} says "
                              f"world_size={world_size}: this shard is from another run or world size; restore "
                              "the file that belongs to this checkpoint.")
    if mesh.ndim == 2 and names[:1] in ((n,) for n in _DATA_PARALLEL) and type(placements[0]) is Replicate:
        placements = placements[1:]  # HSDP: one replica (its FSDP group) holds it all
    elif mesh.ndim != 1:
        raise _refuse(path, key, f"sharded on a {mesh.ndim}-D mesh {names or mesh.mesh.shape} (FSDP + tensor "
                                 "parallel)")
    placement = placements[0]
    if placement.is_partial():
        raise _refuse(path, key, f"a Partial placement ({placement}: a sum still to be reduced)")
    if type(placement) is Shard:
        return KeyPlan("shard", tuple(value.shape), placement.dim), mesh
    if type(placement) is Replicate:
        return KeyPlan("replicate", tuple(value.shape)), mesh
    raise _refuse(path, key, f"placed as {placement!r}")


def read_layout(actor: Path, *, check_all: bool = True) -> ShardLayout:
    """The merge plan from rank 0's shard; ``check_all`` also checks every other shard (files, pickles, meshes,
    shapes) without copying weights, as discovery does. ``merge_shards`` makes the same checks as it copies."""
    world_size = _read_config(actor)
    paths = _shard_paths(actor, world_size)
    first = load_shard(paths[0])
    if not first:
        raise ReasonlensError(f"{paths[0]} holds an empty state dict: no weights to merge.")
    plans, mesh = {}, None
    for key, value in first.items():
        plans[key], key_mesh = _plan(key, value, paths[0], world_size)
        if key_mesh is not None and mesh is not None and key_mesh is not mesh and key_mesh != mesh:
            raise _refuse(paths[0], key, f"on another device mesh than the other weights ({key_mesh} vs {mesh})")
        mesh = mesh or key_mesh
    del first
    ranks = None if mesh is None else (mesh.mesh.tolist() if mesh.ndim == 1 else mesh.mesh[0].tolist())
    files = tuple(paths[r] for r in (ranks if ranks is not None else range(world_size)))
    layout = ShardLayout(actor, world_size, files, plans)
    if check_all:
        _merge(layout, None, copy=False)
    return layout


def merge_shards(layout: ShardLayout, dtype=None) -> dict:
    """The full state dict (name -> tensor), in ``dtype`` (default: as stored); one shard in memory at a time."""
    return _merge(layout, dtype, copy=True)


def _merge(layout: ShardLayout, dtype, *, copy: bool) -> dict:
    """Walk the shards in rank order, checking each value against its plan; with ``copy``, build the tensors."""
    import torch

    merged, offsets, plain = {}, dict.fromkeys(layout.plans, 0), {}
    for index, path in enumerate(layout.files):
        state = load_shard(path)
        if set(state) != set(layout.plans):
            odd = sorted(set(state) ^ set(layout.plans))
            raise ReasonlensError(f"{path} holds other weights than {layout.files[0].name} (e.g. {odd[:3]}): "
                                  "the shards are from different checkpoints; restore the matching files.")
        for key, value in state.items():
            plan = layout.plans[key]
            local = _checked_local(key, value, plan, path, layout, offsets[key])
            if plan.how == "shard":
                if copy:
                    if key not in merged:
                        merged[key] = torch.empty(plan.shape, dtype=dtype or local.dtype)
                    merged[key].narrow(plan.dim, offsets[key], local.shape[plan.dim]).copy_(local)
                offsets[key] += local.shape[plan.dim]
            elif copy and index == 0:
                merged[key] = local.to(dtype=dtype or local.dtype, copy=True)
            elif copy and plan.how == "plain":
                plain.setdefault(key, [merged[key]]).append(local.to(dtype=dtype or local.dtype, copy=True))
        del state
    for key, plan in layout.plans.items():
        if plan.how == "shard" and offsets[key] != plan.shape[plan.dim]:
            raise ReasonlensError(f"{layout.actor}: the shards of {key} add up to {offsets[key]} along dim "
                                  f"{plan.dim}, not {plan.shape[plan.dim]}: a shard is from another checkpoint.")
    for key, parts in plain.items():  # identical on every rank: once; else concatenated as verl's merger does
        if not all(torch.equal(parts[0], part) for part in parts[1:]):
            merged[key] = torch.cat(parts, dim=0)
    return merged


def _checked_local(key: str, value, plan: KeyPlan, path: Path, layout: ShardLayout, offset: int):
    """``value``'s local tensor, after checking it fits ``plan`` (a renamed shard of another run does not)."""
    if plan.how == "plain":
        return value
    found, _ = _plan(key, value, path, layout.world_size)
    if (found.how, found.dim, found.shape) != (plan.how, plan.dim, plan.shape):
        raise ReasonlensError(f"{path}: {key} is {found.how} {found.shape} here but {plan.how} {plan.shape} in "
                              f"{layout.files[0].name}: the shards are from different checkpoints.")
    local = value.to_local()
    rest = [s for d, s in enumerate(local.shape) if d != plan.dim]
    expected = [s for d, s in enumerate(plan.shape) if d != plan.dim]
    fits = local.shape == plan.shape if plan.how == "replicate" else (
        rest == expected and offset + local.shape[plan.dim] <= plan.shape[plan.dim])
    if not fits:
        raise ReasonlensError(f"{path}: the local piece of {key} has shape {tuple(local.shape)}, which does not fit "
                              f"{plan.how} {plan.shape} at offset {offset}: this shard is from another world size or "
                              "checkpoint; restore the matching file.")
    return local


def lora_meta(actor: Path) -> dict:
    """r, lora_alpha and task_type from lora_train_meta.json: without alpha the adapter's scale is unknown."""
    path = actor / LORA_META
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
        return {"r": int(meta["r"]), "lora_alpha": int(meta["lora_alpha"]),
                "task_type": str(meta.get("task_type") or "CAUSAL_LM")}
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ReasonlensError(f"{path} is missing or unreadable ({type(err).__name__}: {err}); verl writes it with "
                              "LoRA-only checkpoints and the adapter's scale lora_alpha / r comes from it. Write it "
                              'by hand from the run\'s config: {"r": 32, "lora_alpha": 64}.') from None


def write_lora_adapter(layout: ShardLayout, folder: Path) -> None:
    """A PEFT adapter folder from LoRA-only shards: keys without ``.default``, as verl's merger names them."""
    from safetensors.torch import save_file

    meta = lora_meta(layout.actor)
    weights = {key.replace(".default.weight", ".weight"): value.contiguous()
               for key, value in merge_shards(layout).items()}
    targets = sorted({key.split(".")[-3] for key in weights if "lora_" in key})
    config = {"peft_type": "LORA", "task_type": meta["task_type"], "r": meta["r"], "lora_alpha": meta["lora_alpha"],
              "target_modules": targets, "lora_dropout": 0.0, "bias": "none", "base_model_name_or_path": None}
    save_file(weights, str(folder / "adapter_model.safetensors"))
    (folder / "adapter_config.json").write_text(json.dumps(config, indent=2))


def fold_lora(state: dict, *, r: int, lora_alpha: int) -> dict:
    """A PEFT model's full state dict as the plain model's: each LoRA pair folded into its base weight,
    W + (lora_alpha / r) B A (plain LoRA, as verl's transformer_impl.py configures it), and the
    ``base_model.model.`` / ``.base_layer`` names dropped as verl's merger renames them."""
    folded = {}
    for key in [k for k in state if "lora_" not in k]:
        value = state.pop(key)
        if ".base_layer." in key:
            module = key.split(".base_layer.")[0]
            if key.endswith(".base_layer.weight"):
                pair = [f"{module}.lora_{half}.default.weight" for half in "AB"]
                if not all(name in state for name in pair):
                    raise ReasonlensError(f"{module} has a base layer but not the LoRA pair {pair}: reasonlens folds "
                                          "plain LoRA adapters named 'default', as verl trains them.")
                lora_a, lora_b = state[pair[0]], state[pair[1]]
                value = value + (lora_alpha / r) * (lora_b @ lora_a)  # (out, r) @ (r, in) -> (out, in)
            key = key.replace(".base_layer.", ".")
        folded[key.removeprefix("base_model.model.")] = value
    return folded

