"""Which device, dtype and thread count a run uses, chosen from the hardware it finds, and recorded.

bf16 is fast only where the hardware computes it natively: on CUDA when the GPU supports it, on a
CPU only with AVX512_BF16/AMX (x86) or the bf16 extension (Arm). Elsewhere torch emulates it: on
an AVX2 EPYC a 64x576 by 576x1536 bf16 matmul took 78 ms against 2.1 ms in fp32, one thread.
Capability strings do not always say which case holds, so ``dtype="auto"`` on a CPU times that
matmul once per process in both dtypes and takes bf16 only when it is clearly faster.
"""

from __future__ import annotations

import functools
import os
import platform
import time

from reasonlens.errors import ReasonlensError

DTYPES = ("auto", "bf16", "fp32", "fp16")
TORCH_NAMES = {"bf16": "bfloat16", "fp32": "float32", "fp16": "float16"}
_SHAPE = (64, 576, 1536)  # one SmolLM2 MLP projection of a 64-token chunk
_BF16_MARGIN = 0.8  # bf16 must take at most 80% of fp32's time to be chosen


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask), the default thread count."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def set_threads(threads: int | None = None) -> int:
    """Give torch ``threads`` intra-op threads (None = every available core) and return the number."""
    import torch

    n = available_cores() if threads is None else int(threads)
    if n < 1:
        raise ReasonlensError(f"threads={threads} must be >= 1 (or unset: every core this process may use).")
    torch.set_num_threads(n)
    return n


def resolve_device(device: str = "auto") -> str:
    """``"auto"`` -> ``"cuda"`` when a GPU is visible, else ``"cpu"``; checks an explicit choice."""
    import torch

    device = str(device).lower()
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        return device
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ReasonlensError(f"device={device!r} was requested but torch sees no CUDA GPU; "
                                  "use --device cpu or --device auto.")
        return device
    raise ReasonlensError(f"device={device!r} is not supported; expected 'cpu', 'cuda' or 'auto'.")


def check_dtype(dtype: str) -> str:
    """The dtype name, lower-cased, or an error listing the choices."""
    key = str(dtype).lower()
    if key not in DTYPES:
        raise ReasonlensError(f"dtype={dtype!r} is not supported; expected one of {', '.join(DTYPES)}.")
    return key


def resolve_dtype_name(dtype: str = "auto", device: str = "cpu") -> str:
    """``"auto"`` -> "bf16" where the device computes it natively (see module docstring), else "fp32"."""
    key = check_dtype(dtype)
    if key != "auto":
        return key
    if device.startswith("cuda"):
        import torch

        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if cpu_bf16_timing()["bf16_is_faster"] else "fp32"


def resolve_dtype(dtype: str = "auto", device: str = "cpu"):
    """The torch dtype for ``dtype`` on ``device`` (see `resolve_dtype_name`)."""
    import torch

    return getattr(torch, TORCH_NAMES[resolve_dtype_name(dtype, device)])


@functools.lru_cache(maxsize=1)
def cpu_bf16_timing() -> dict:
    """Median seconds of one calibration matmul in fp32 and bf16 on the current threads (measured once)."""
    import torch

    m, k, n = _SHAPE
    medians = {}
    for name in ("fp32", "bf16"):
        dtype = getattr(torch, TORCH_NAMES[name])
        a, b = torch.randn(m, k).to(dtype), torch.randn(k, n).to(dtype)
        a @ b  # warm-up (kernel selection, first-touch pages)
        times = []
        for _ in range(5):
            start = time.perf_counter()
            a @ b
            times.append(time.perf_counter() - start)
        medians[name] = sorted(times)[len(times) // 2]
    return {"fp32_s": medians["fp32"], "bf16_s": medians["bf16"],
            "bf16_is_faster": medians["bf16"] <= _BF16_MARGIN * medians["fp32"]}


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def runtime(device: str, dtype: str, threads: int) -> dict:
    """What actually ran, for every output: device, dtype, threads, and the CPU's bf16 evidence."""
    import torch

    info = {"device": device, "dtype": dtype, "threads": threads, "torch": torch.__version__,
            "cpu": cpu_model(), "cpu_capability": torch.backends.cpu.get_cpu_capability()}
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    elif cpu_bf16_timing.cache_info().currsize:  # only when auto measured it: never time just to record
        info["bf16_calibration"] = cpu_bf16_timing()
    return info
