"""Planning vs execution: strategic-gram lexicons, the matcher, token masks and gram mining.

Names load on first use, so importing `hierarchy.mine_config` (the CLI does) pulls in no estimator.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "Lexicon": "reasonlens.hierarchy.lexicon",
    "load_lexicon": "reasonlens.hierarchy.lexicon",
    "Match": "reasonlens.hierarchy.tagger",
    "PlanningTagger": "reasonlens.hierarchy.tagger",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'reasonlens.hierarchy' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
