"""Planning vs execution: strategic-gram lexicons, the matcher, token masks and gram mining."""

from reasonlens.hierarchy.lexicon import Lexicon, load_lexicon
from reasonlens.hierarchy.tagger import Match, PlanningTagger

__all__ = ["Lexicon", "Match", "PlanningTagger", "load_lexicon"]
