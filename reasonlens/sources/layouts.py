"""Where each RL framework keeps a checkpoint's weights, read from the framework's own source.

- verl (verl-project/verl): ``global_step_N/actor/``. FSDP: per-rank shards + fsdp_config.json +
  huggingface/ (verl/utils/checkpoint/fsdp_checkpoint_manager.py; merged by sources/verl_fsdp.py).
  Megatron, layout schema v2: ``actor/ckpt_contents.json`` maps "model" / "hf_model" to
  ``model/huggingface`` (verl/utils/checkpoint/megatron_checkpoint_manager.py,
  ``_build_checkpoint_manifest``); the older flat layout (root ``huggingface/`` + ``dist_ckpt/``)
  is migrated by verl's scripts/migrate_megatron_checkpoint_layout.py (docs/advance/checkpoint.rst).
- OpenRLHF: ``{ckpt.path}/global_step{N}_hf/`` HF folders, written with ``--ckpt.save_hf``
  (openrlhf/trainer/ray/ppo_actor.py ``save_checkpoint``); DeepSpeed states in ``_actor/global_step{N}/``.
- NeMo-RL: ``step_N/policy/weights`` in torch DCP (or Megatron ``iter_*``) by default
  (nemo_rl/algorithms/grpo.py; docs/design-docs/checkpointing.md): refused with its converter.
- prime-rl: ``checkpoints/step_N/trainer/`` torch DCP (src/prime_rl/trainer/ckpt.py): refused.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

from reasonlens.errors import ReasonlensError
from reasonlens.sources.integrity import MODEL_CONFIG, weight_files, weight_problem
from reasonlens.sources.verl_fsdp import HF_SUBDIR, is_fsdp_actor, read_layout

MANIFEST = "ckpt_contents.json"
SHORT_SERIES = 5  # fewer checkpoints than this make a thin dynamics curve: say why it may be short

# Why a framework's series is often short, each default checked in its source.
RETENTION = {
    "verl": "verl saves a checkpoint only every trainer.save_freq steps (default -1: never; "
            "verl/trainer/config/ppo_trainer.yaml) and keeps trainer.max_actor_ckpt_to_keep of them (default "
            "null: all); set trainer.save_freq to a few dozen steps to get a curve",
    "openrlhf": "OpenRLHF writes global_step{N}_hf only with --ckpt.save_hf, every --ckpt.save_steps (default -1: "
                "never; openrlhf/cli/train_ppo_ray.py), and rotates its DeepSpeed checkpoints to --ckpt.max_num "
                "(default 3; --max_ckpt_num before OpenRLHF's dotted options)",
    "nemo-rl": "NeMo-RL keeps only the checkpointing.keep_top_k best checkpoints by checkpointing.metric_name "
               "(3 in examples/configs/grpo_math_1B.yaml; nemo_rl/utils/checkpoint.py); set keep_top_k: null to "
               "keep every checkpoint",
}


def verl_checkpoint(folder: Path, base: str | None) -> tuple[Path, str, str | None]:
    """(path to load, kind, adapter base) for a verl ``global_step_N`` folder; ReasonlensError when unusable."""
    if (folder / MODEL_CONFIG).is_file():  # already merged into an HF folder
        return _hf_weights(folder, folder.name), "verl", None
    actor = folder / "actor"
    if not actor.is_dir():
        raise ReasonlensError("verl checkpoint without an actor/ folder")
    if (actor / MANIFEST).is_file():
        return _megatron_v2(actor), "verl", None
    hf = actor / HF_SUBDIR
    if (hf / MODEL_CONFIG).is_file() and weight_files(hf):  # save_contents with hf_model, or flat Megatron
        return _hf_weights(hf, "actor/huggingface"), "verl", None
    if is_fsdp_actor(actor):
        return _fsdp(actor, base)
    if (actor / "dist_ckpt").is_dir():
        raise ReasonlensError(f"an older verl Megatron layout (root dist_ckpt/ and huggingface/ without weights): "
                              f"migrate it with verl's python scripts/migrate_megatron_checkpoint_layout.py "
                              f"--checkpoint {actor} and save with use_mbridge=True (the default), whose "
                              "model/huggingface/ reasonlens reads")
    raise ReasonlensError("actor/ holds neither FSDP shards (model_world_size_W_rank_R.pt + fsdp_config.json), "
                          f"nor a Megatron {MANIFEST}, nor weights in actor/huggingface/")


def _hf_weights(folder: Path, label: str) -> Path:
    problem = weight_problem(folder)
    if problem:
        raise ReasonlensError(f"{label}: {problem}")
    return folder


def _fsdp(actor: Path, base: str | None) -> tuple[Path, str, str | None]:
    """FSDP shards: checked now, merged when loaded; LoRA-only shards are an adapter over ``base`` (built
    into the cache when loaded: models/verl.py)."""
    if not (actor / HF_SUBDIR / MODEL_CONFIG).is_file():
        raise ReasonlensError(f"{actor / HF_SUBDIR / MODEL_CONFIG} is missing: verl writes the model config "
                              "there with every checkpoint and the shards alone do not say the architecture")
    if not read_layout(actor).lora_only:
        return actor, "verl-fsdp", None
    if base is None:
        raise ReasonlensError("LoRA-only verl checkpoint (save_lora_only): pass the model it was trained on "
                              "with --base MODEL")
    return actor, "peft", base


def _megatron_v2(actor: Path) -> Path:
    """The HF tree a schema-v2 manifest names for "model" or "hf_model"."""
    path = actor / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        contents = manifest["contents"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ReasonlensError(f"{path} is not a verl checkpoint manifest ({type(err).__name__}: {err})") from None
    if manifest.get("schema_version") != 2:
        raise ReasonlensError(f"{path}: schema_version {manifest.get('schema_version')!r}, reasonlens reads "
                              "verl's layout schema 2")
    for name in ("model", "hf_model"):
        entry = contents.get(name) or {}
        if entry.get("format") == "huggingface" and entry.get("path"):
            return _hf_weights(actor / entry["path"], f"actor/{entry['path']}")
    raise ReasonlensError(f"{path}: the model is saved as Megatron dist_checkpointing shards only (no "
                          "'huggingface' entry): save with use_mbridge=True and 'model' or 'hf_model' in "
                          "checkpoint.save_contents, or merge it with python -m verl.model_merger merge --backend "
                          f"megatron --local_dir {actor} --target_dir OUT (needs megatron-core and GPUs)")


def foreign_problem(folder: Path) -> str | None:
    """Why ``folder`` is a checkpoint of another framework that reasonlens can't read, with the fix; else None."""
    weights = folder / "policy" / "weights"
    if weights.is_dir():  # NeMo-RL: step_N/policy/weights
        if any(weights.glob("iter_*")):
            return ("a NeMo-RL Megatron checkpoint: convert it with NeMo-RL's uv run --extra mcore "
                    f"examples/converters/convert_megatron_to_hf.py --config={folder / 'config.yaml'} "
                    f"--megatron-ckpt-path={next(iter(sorted(weights.glob('iter_*'))))} --hf-ckpt-path=OUT")
        return ("a NeMo-RL checkpoint in torch distributed (DCP) format: convert it with NeMo-RL's uv run "
                f"examples/converters/convert_dcp_to_hf.py --config={folder / 'config.yaml'} "
                f"--dcp-ckpt-path={weights} --hf-ckpt-path=OUT, and copy {folder / 'policy' / 'tokenizer'} into OUT")
    if (folder / "trainer").is_dir() and (folder / "orchestrator").is_dir():  # prime-rl
        return ("a prime-rl trainer checkpoint (torch DCP: model, optimizer, scheduler; src/prime_rl/trainer/ckpt.py); "
                "prime-rl ships no converter to Hugging Face format. Its HF-format weights are the weight broadcasts "
                "in RUN/broadcasts/step_N/ (src/prime_rl/transports/weights/filesystem.py), kept every --ckpt.interval "
                "steps: add the base model's config.json and tokenizer to them and analyse that folder")
    if (folder / "STABLE").is_file():  # prime-rl's weight broadcast: HF-named safetensors, no config
        return ("a prime-rl weight broadcast (src/prime_rl/transports/weights/filesystem.py) without config.json: "
                "copy the base model's config.json and tokenizer files into it")
    if any(folder.glob("mp_rank_*_model_states.pt")) or any(folder.glob("zero_pp_rank_*")):
        return ("a DeepSpeed checkpoint (OpenRLHF's _actor/global_step{N}): reasonlens reads the global_step{N}_hf "
                "folders OpenRLHF writes beside _actor/ with --ckpt.save_hf; or convert this one with DeepSpeed's "
                "zero_to_fp32.py")
    return None


def framework_of(names: list[str], root: Path) -> str | None:
    """Which framework wrote a series, from its folder names (and NeMo-RL's training_info.json)."""
    if any(n.startswith("global_step") and n.endswith("_hf") for n in names):
        return "openrlhf"
    if any(n.startswith("global_step") for n in names):
        return "verl"
    if any((root / n / "training_info.json").is_file() for n in names):
        return "nemo-rl"
    return None


def warn_short_series(n_checkpoints: int, framework: str | None, root: Path) -> None:
    """A series of fewer than SHORT_SERIES checkpoints gets a warning naming the retention default behind it."""
    if framework in RETENTION and 0 < n_checkpoints < SHORT_SERIES:
        warnings.warn(f"{root}: only {n_checkpoints} checkpoint(s), a thin curve; {RETENTION[framework]}.",
                      stacklevel=3)
