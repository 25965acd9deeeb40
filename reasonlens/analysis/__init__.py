"""The `analyze` command, one module per stage in pipeline order (mirrors `reasonlens.train`).

config (AnalyzeConfig) -> plan (every check before a model loads) -> generate / rescore / distributed
(rollouts per checkpoint, cached) -> run (read, tag, aggregate, detect, render) -> result (Analysis,
load_analysis), and compare (several analyses side by side). Names load on first use; `compare`
is the module here (the function is `reasonlens.compare`).
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "AnalyzeConfig": "reasonlens.analysis.config",
    "analyze": "reasonlens.analysis.run",
    "Analysis": "reasonlens.analysis.result",
    "load_analysis": "reasonlens.analysis.result",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'reasonlens.analysis' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
