"""The `analyze` command, one module per stage in pipeline order (mirrors `reasonlens.train`).

config (AnalyzeConfig) -> plan (the frozen Plan: every check before a model loads) -> generate /
rescore / distributed (rollouts per checkpoint, cached; each returns a `record.Record` of what ran) ->
run (read, tag, aggregate, detect, render) -> result (Analysis, load_analysis), and compare (several
analyses side by side). Names load on first use; `compare` is the module here (the function is
`reasonlens.compare`).
"""

from __future__ import annotations

from reasonlens.exports import lazy_exports

_EXPORTS = {
    "AnalyzeConfig": "reasonlens.analysis.config",
    "analyze": "reasonlens.analysis.run",
    "Analysis": "reasonlens.analysis.result",
    "load_analysis": "reasonlens.analysis.result",
}
__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
