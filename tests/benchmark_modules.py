"""A script of benchmarks/ as a module, for the tests that hold our code to the baselines and corpora kept there
(benchmarks/ is not a package: its scripts import each other as top-level modules, so it goes on sys.path)."""

import importlib.util
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def benchmark_module(name: str):
    """``benchmarks/{name}.py``, loaded by path."""
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location(f"_bench_{name.strip('_')}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
