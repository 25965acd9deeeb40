"""Sample K responses per prompt with vLLM: the fast backend for `analyze` (`generate` is the default).

What: the same job as :func:`reasonlens.models.generation.generate` -- K responses per prompt from one
checkpoint, returned as ``list[Generation]`` ordered by prompt_index then sample_id -- done by vLLM's
paged-attention engine, which batches all K x N sequences continuously instead of padding fixed
batches. Tokenization and scoring stay ours: prompts go in as token ids, the sampled token ids come
back as vLLM drew them, and ``text``/``offsets`` come from our tokenizer via
:func:`reasonlens.models.offsets.token_offsets`, exactly as in ``generate``. No logprobs are requested,
so ``Generation.logprobs``/``entropies`` stay None: :mod:`reasonlens.models.scoring` scores every token
afterwards with the checkpoint itself.

Two modes share the request helpers here: :func:`generate_vllm` (in-process) imports vLLM and starts
one ``vllm.LLM`` per call, i.e. per checkpoint, and shuts its engine down before returning, so the next
checkpoint starts cleanly in the same process (``make install-vllm`` builds ``.venv-vllm`` with vLLM's
CPU build, reasonlens and the bundled models: ``.venv-vllm/bin/reasonlens analyze ... --backend vllm``).
The server mode, a ``vllm serve`` from another environment, lives in :mod:`reasonlens.models.vllm_server`.

Both modes send the same requests: one per prompt, ``n=samples`` with a per-prompt seed
``row_seed(seed, prompt_index, 0)`` (vLLM gives sample k the seed + k), so a rerun with the same seed
and settings gives the same responses, and a prompt's responses do not depend on the other prompts'.
vLLM's draws are not transformers' draws: the two backends agree in distribution (and exactly for greedy
decoding, ``temperature=0``, in fp32), not token for token. vLLM rejects ``n > 1`` for greedy decoding,
so for ``temperature=0`` one response is generated and repeated K times (all K are identical, as in
``generate``). The model's ``generation_config.json`` sampling defaults (temperature, top-k, repetition
penalty) are ignored (``generation_config="vllm"``), as in ``generate``; its EOS ids still stop
generation, as they do in :func:`reasonlens.models.generation.stop_token_ids`.

On vLLM's CPU build ``gpu_memory_utilization`` reserves that fraction of *system* memory and vLLM's
default (0.92) fails at start-up on a shared machine, so with ``memory_fraction=None`` the KV cache is
given a fixed size instead (:data:`CPU_KV_CACHE_GIB`, or ``VLLM_CPU_KVCACHE_SPACE`` in GiB when set).
On a GPU ``memory_fraction=None`` keeps vLLM's default; lower it when another model shares the GPU.
vLLM's CPU build binds its OpenMP threads itself (``VLLM_CPU_OMP_THREADS_BIND``: ``auto``, or core ids
such as ``0-3``). ``model_path`` must be a full HF model folder (merge a LoRA adapter first). vLLM's CPU
attention needs a supported head_dim (32, 64, 80, ..., 512; not 16 or 24). Each start costs tens of
seconds (loading, torch.compile; ``enforce_eager=True`` skips the compile), so vLLM pays off for many or
long responses, not for a handful of short ones. Same seed and settings give the same responses in both
modes (tested); the compiled and eager paths also agreed on a tiny fp32 model.
"""

from __future__ import annotations

import gc
import json
import numbers
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from reasonlens.errors import ReasonlensError
from reasonlens.models.generation import Generation, row_seed, split_response
from reasonlens.models.hardware import cpu_model
from reasonlens.models.offsets import token_offsets
from reasonlens.options import FRACTION, SAMPLES, TEMPERATURE, TOKENS, check_value

CPU_KV_CACHE_GIB = 2  # KV cache on vLLM's CPU build when memory_fraction is None (SmolLM2 fp32: ~45k tokens)
INSTALL_HINT = ("run `make install-vllm` (it builds .venv-vllm with vLLM's CPU build and reasonlens) and use "
                "`.venv-vllm/bin/reasonlens analyze ... --backend vllm`, or keep this environment and use "
                "`--backend vllm-server --vllm-command .venv-vllm/bin/vllm`")


# --- shared ----------------------------------------------------------------------------------


def _check_args(prompt_token_ids, samples, max_new_tokens, temperature, top_p, stop_token_ids) -> list[list[int]]:
    def token_list(p) -> bool:
        return isinstance(p, (list, tuple)) and all(isinstance(t, numbers.Integral) and t >= 0 for t in p)

    if isinstance(prompt_token_ids, (str, bytes)) or not all(token_list(p) for p in prompt_token_ids):
        raise ReasonlensError("prompt_token_ids must be a list of token-id lists (tokenize the chat-templated "
                              "prompts with add_special_tokens=False first).")
    for name, value, allowed in (("samples", samples, SAMPLES), ("max_new_tokens", max_new_tokens, TOKENS),
                                 ("temperature", temperature, TEMPERATURE), ("top_p", top_p, FRACTION)):
        check_value(name, value, allowed)
    for index, ids in enumerate(prompt_token_ids):
        if not ids:
            raise ReasonlensError(f"Prompt {index} is empty; every prompt needs at least one token.")
    if not stop_token_ids:
        raise ReasonlensError("stop_token_ids is empty; pass the EOS ids "
                              "(reasonlens.models.generation.stop_token_ids(model.generation_config, tokenizer)).")
    return [list(map(int, p)) for p in prompt_token_ids]


def _request_plan(n_prompts: int, samples: int, temperature: float, top_p: float, seed: int) -> list[dict]:
    """Per prompt: n, temperature, top_p and seed as vLLM gets them (greedy: n=1, no seed)."""
    if temperature == 0:
        return [{"n": 1, "temperature": 0.0, "top_p": 1.0, "seed": None} for _ in range(n_prompts)]
    return [{"n": samples, "temperature": float(temperature), "top_p": float(top_p),
             "seed": row_seed(seed, p, 0)} for p in range(n_prompts)]


def _to_generations(prompt_index: int, prompt_ids: list[int], outputs: list[tuple[list[int], str | None]], *,
                    samples: int, max_new_tokens: int, stop_ids: set[int], tokenizer) -> list[Generation]:
    """One prompt's vLLM outputs (token ids, finish reason) in sample order -> ``samples`` Generations."""
    if len(outputs) == 1 and samples > 1:  # greedy: one response stands for all K
        outputs = outputs * samples
    if len(outputs) != samples:
        raise ReasonlensError(f"vLLM returned {len(outputs)} responses for prompt {prompt_index}, "
                              f"expected {samples}.")
    results = []
    for sample_id, (ids, finish_reason) in enumerate(outputs):
        token_ids, truncated = split_response(list(ids)[:max_new_tokens], stop_ids)
        if truncated and finish_reason == "stop" and len(token_ids) < max_new_tokens:
            truncated = False  # vLLM stopped on a stop token it did not report
        text, offsets = token_offsets(tokenizer, token_ids)  # text = decode(token_ids, **DECODE_KWARGS)
        results.append(Generation(prompt_index=prompt_index, sample_id=sample_id, prompt_token_ids=list(prompt_ids),
                                  token_ids=token_ids, text=text, offsets=offsets, truncated=truncated))
    return results


def _fill_timings(timings: dict | None, clock: dict) -> None:
    if timings is None or "done" not in clock:
        return
    timings.update(startup_s=clock["ready"] - clock["start"], generate_s=clock["done"] - clock["ready"],
                   shutdown_s=time.perf_counter() - clock["done"])


def _max_model_len(prompt_ids: list[list[int]], max_new_tokens: int) -> int:
    return max(len(p) for p in prompt_ids) + max_new_tokens


# --- provenance ------------------------------------------------------------------------------


def _distribution_version() -> tuple[str | None, str | None]:
    from importlib import metadata

    for dist in ("vllm-cpu", "vllm"):  # vllm-cpu first: `make install-vllm` adds a "vllm" alias of it
        try:
            return dist, metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return None, None


def vllm_info(vllm_command: str | Sequence[str] | None = None) -> dict:
    """Provenance of the vLLM that generates: version, distribution and device.

    Without ``vllm_command``: the vLLM importable here (a :class:`ReasonlensError` naming the fix if there
    is none). With it (server mode): the vLLM behind that command, asked through the Python interpreter of
    its script (``.venv-vllm/bin/vllm`` -> ``.venv-vllm/bin/python``).
    """
    if vllm_command is not None:
        return _remote_info(_command(vllm_command))
    vllm = _import_vllm()
    from vllm.platforms import current_platform

    dist, version = _distribution_version()
    device = current_platform.device_type
    if device == "cpu":
        device_name = cpu_model()
    else:
        try:
            device_name = current_platform.get_device_name()
        except Exception:  # noqa: BLE001 - a name is nice to have, not needed
            device_name = device
    return {"vllm": getattr(vllm, "__version__", version), "distribution": dist, "device": device,
            "device_name": device_name, "python": sys.executable}


def _remote_info(vllm_command: list[str]) -> dict:
    """vllm_info() of the environment behind ``vllm_command``, asked through the ``python`` beside its
    script (with reasonlens there, else vLLM alone), or ``vllm --version`` as a last resort."""
    script = Path(shutil.which(vllm_command[0]) or vllm_command[0])
    python = script.with_name("python")
    ours = "import json; from reasonlens.models.vllm_generation import vllm_info; print(json.dumps(vllm_info()))"
    bare = ("import json, sys, vllm; from vllm.platforms import current_platform as p; "
            "print(json.dumps({'vllm': vllm.__version__, 'device': p.device_type, 'python': sys.executable}))")
    try:
        for snippet in (ours, bare) if python.is_file() else ():
            done = subprocess.run([str(python), "-c", snippet], capture_output=True, text=True, timeout=300)
            lines = done.stdout.strip().splitlines()
            if done.returncode == 0 and lines:
                return json.loads(lines[-1])
        done = subprocess.run([*vllm_command, "--version"], capture_output=True, text=True, timeout=300)
    except FileNotFoundError as err:
        raise ReasonlensError(f"Cannot run the vLLM command {vllm_command[0]!r}: {INSTALL_HINT}.") from err
    lines = done.stdout.strip().splitlines()
    return {"vllm": lines[-1] if done.returncode == 0 and lines else None, "device": None, "command": vllm_command}


def _import_vllm():
    try:
        import vllm
    except ImportError as err:
        raise ReasonlensError(f"vLLM is not installed in this Python environment ({sys.executable}): "
                              f"{INSTALL_HINT}. ({err})") from err
    return vllm


# --- in-process ------------------------------------------------------------------------------


def generate_vllm(model_path, prompt_token_ids: list[list[int]], *, samples: int, max_new_tokens: int,
                  temperature: float, top_p: float, seed: int, dtype: str = "float32",
                  stop_token_ids: Iterable[int], tokenizer, memory_fraction: float | None = None,
                  enforce_eager: bool = False, progress: Callable[[int], None] | None = None,
                  llm_kwargs: dict | None = None, timings: dict | None = None) -> list[Generation]:
    """Sample ``samples`` responses per prompt with an in-process ``vllm.LLM``, freed before returning.

    Parameters
    ----------
    model_path : a full HF model folder (one checkpoint).
    prompt_token_ids : the chat-templated prompts, tokenized by ``tokenizer`` without added special tokens.
    stop_token_ids : where a response ends (``stop_token_ids(model.generation_config, tokenizer)``); cut from ``token_ids``.
    tokenizer : ours: decodes ``text`` and ``offsets`` (``models.offsets.token_offsets``). vLLM loads the
        folder's tokenizer too, but only for its EOS id (``detokenize=False``: it decodes nothing).
    dtype : ``"float32"`` on CPU (vLLM's CPU kernels); ``"bfloat16"`` is the usual choice on a GPU.
    memory_fraction : vLLM's ``gpu_memory_utilization`` (on its CPU build: a fraction of system memory);
        None = a fixed KV cache of :data:`CPU_KV_CACHE_GIB` GiB on CPU, vLLM's default on a GPU.
    enforce_eager : skip torch.compile (faster start-up, slower steps).
    progress : called once with the number of responses when they are all done.
    llm_kwargs : extra ``vllm.LLM`` arguments (override ours).
    timings : if given, filled with ``startup_s`` (engine start: load, compile, KV cache),
        ``generate_s`` and ``shutdown_s`` (wall seconds).

    Returns
    -------
    list[Generation], ordered by prompt_index then sample_id.

    Examples
    --------
    >>> gens = generate_vllm("ckpt/", ids, samples=4, max_new_tokens=256, temperature=0.6, top_p=1.0,
    ...                      seed=0, stop_token_ids={2}, tokenizer=tok)  # doctest: +SKIP
    """
    stop_ids = {int(t) for t in stop_token_ids}
    prompt_ids = _check_args(prompt_token_ids, samples, max_new_tokens, temperature, top_p, stop_ids)
    _import_vllm()
    from vllm import LLM, SamplingParams
    from vllm.platforms import current_platform

    kwargs = {"model": str(model_path), "dtype": dtype, "seed": int(seed), "generation_config": "vllm",
              "max_model_len": _max_model_len(prompt_ids, max_new_tokens), "enforce_eager": enforce_eager}
    if memory_fraction is not None:
        kwargs["gpu_memory_utilization"] = float(memory_fraction)
    elif current_platform.is_cpu() and not os.environ.get("VLLM_CPU_KVCACHE_SPACE"):
        kwargs["kv_cache_memory_bytes"] = CPU_KV_CACHE_GIB * 2**30
    kwargs.update(llm_kwargs or {})
    plan = _request_plan(len(prompt_ids), samples, temperature, top_p, seed)
    params = [SamplingParams(n=r["n"], temperature=r["temperature"], top_p=r["top_p"], seed=r["seed"],
                             max_tokens=max_new_tokens, stop_token_ids=sorted(stop_ids), detokenize=False)
              for r in plan]
    clock = {"start": time.perf_counter()}
    llm = LLM(**kwargs)
    clock["ready"] = time.perf_counter()
    try:
        outputs = llm.generate([{"prompt_token_ids": ids} for ids in prompt_ids], params, use_tqdm=False)
        clock["done"] = time.perf_counter()
    finally:
        _shutdown(llm)
        del llm
        gc.collect()
    _fill_timings(timings, clock)
    results: list[Generation] = []
    for index, (ids, out) in enumerate(zip(prompt_ids, outputs)):
        done = sorted(out.outputs, key=lambda o: o.index)
        results += _to_generations(index, ids, [(list(o.token_ids), o.finish_reason) for o in done],
                                   samples=samples, max_new_tokens=max_new_tokens, stop_ids=stop_ids,
                                   tokenizer=tokenizer)
    if progress is not None:
        progress(len(results))
    return results


def _shutdown(llm) -> None:
    """Stop the engine core (its process, on the default multiprocessing path) and release memory, so
    the next ``vllm.LLM`` starts in this process as if it were the first."""
    core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
    if core is not None:
        core.shutdown()
    try:  # the in-process path (VLLM_ENABLE_V1_MULTIPROCESSING=0) initialises torch.distributed here
        from vllm.distributed.parallel_state import destroy_distributed_environment, destroy_model_parallel

        destroy_model_parallel()
        destroy_distributed_environment()
    except Exception:  # noqa: BLE001 - nothing was initialised
        pass
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:
        pass


def _command(vllm_command: str | Sequence[str]) -> list[str]:
    """``".venv-vllm/bin/vllm"`` or ``"python -m ..."`` (split like a shell) or a sequence of arguments."""
    return shlex.split(vllm_command) if isinstance(vllm_command, str) else [str(a) for a in vllm_command]
