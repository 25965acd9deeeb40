"""Planning vs execution: strategic-gram lexicons, the matcher, token masks and gram mining.

Names load on first use, so importing `hierarchy.mine_config` (the CLI does) pulls in no estimator.
"""

from __future__ import annotations

from reasonlens.exports import lazy_exports

_EXPORTS = {
    "Lexicon": "reasonlens.hierarchy.lexicon",
    "load_lexicon": "reasonlens.hierarchy.lexicon",
    "Match": "reasonlens.hierarchy.matcher",
    "PlanningTagger": "reasonlens.hierarchy.tagger",
}
__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
