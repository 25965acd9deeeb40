"""reasonlens: see how reinforcement learning changes an LLM's reasoning, and train with HICRA.

Heavy submodules load on first use, so `import reasonlens` (and the CLI) start fast.
"""

from __future__ import annotations

from reasonlens.exports import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "AnalyzeConfig": "reasonlens.analysis.config",
    "analyze": "reasonlens.analysis.run",
    "Analysis": "reasonlens.analysis.result",
    "load_analysis": "reasonlens.analysis.result",
    "compare": "reasonlens.analysis.compare",
    "TrainConfig": "reasonlens.train.config",
    "train_hicra": "reasonlens.train.run",
    "tag_rollouts": "reasonlens.hierarchy.tag",
    "PlanningTagger": "reasonlens.hierarchy.tagger",
    "StrategicGramMiner": "reasonlens.hierarchy.mining",
    "load_lexicon": "reasonlens.hierarchy.lexicon",
    "hicra_advantages": "reasonlens.train.advantages",
    "grpo_advantages": "reasonlens.train.advantages",
    "dynamics_table": "reasonlens.metrics.dynamics",
    "detect_phases": "reasonlens.metrics.phases",
    "ReasonlensError": "reasonlens.errors",
}
__all__ = sorted(_EXPORTS) + ["__version__"]

__getattr__ = lazy_exports(__name__, _EXPORTS)


def __dir__():
    return __all__
