"""`PlanningTagger`: the strategic-gram matcher of `hierarchy.matcher` as a scikit-learn estimator (get_params,
clone, repr), for notebooks and pipelines; the tag stage uses the matcher's functions directly.
"""

from __future__ import annotations

from typing import Iterable, Optional, Sequence

from sklearn.base import BaseEstimator

from reasonlens.hierarchy.lexicon import Lexicon, LexiconSpec, load_lexicon
from reasonlens.hierarchy.matcher import (GramAutomaton, Match, build_automaton, find_automaton, find_regex, gram_counts,
                                          overlap_mask, span_union)


class PlanningTagger(BaseEstimator):
    """Strategic-gram matcher over a lexicon (preset name, file path, list of phrases or Lexicon).

    A scikit-learn estimator (get_params, clone and repr from `BaseEstimator`): ``__init__`` stores the
    argument; ``fit`` loads the lexicon and builds its automaton (``lexicon_``, ``automaton_``; None if
    a phrase is not canonical, and ``find`` then uses ``find_regex``), and runs on first use if not
    called. Pickles without the automaton, which ``__setstate__`` rebuilds from ``lexicon_`` (about a
    millisecond), so it can go to other processes.

    Examples
    --------
    >>> tagger = PlanningTagger(["but", "but wait", "so"])
    >>> [(m.start, m.end, m.gram) for m in tagger.find("But wait, also so.")]
    [(0, 3, 'but'), (0, 8, 'but wait'), (15, 17, 'so')]
    >>> tagger.count("But wait, also so.")
    {'but wait': 1, 'so': 1}
    """

    def __init__(self, lexicon: LexiconSpec = "paper"):
        self.lexicon = lexicon

    def fit(self, texts=None, y=None) -> "PlanningTagger":
        """Load the lexicon and build its automaton; ``texts`` is ignored (kept for the estimator API)."""
        self.lexicon_: Lexicon = load_lexicon(self.lexicon)
        self.automaton_: Optional[GramAutomaton] = build_automaton(self.lexicon_.phrases)
        return self

    def find(self, text: str) -> list[Match]:
        """Every occurrence of every gram, overlaps included, sorted by (start, end)."""
        try:
            automaton = self.automaton_
        except AttributeError:
            automaton = self.fit().automaton_
        if automaton is None:
            return find_regex(self.lexicon_.phrases, text)
        return find_automaton(automaton, text)

    def count(self, text: str) -> dict[str, int]:
        """Gram -> occurrences taken left to right, longest first, without overlap."""
        return gram_counts(self.find(text))

    def spans(self, text: str) -> list[tuple[int, int]]:
        """Disjoint sorted character spans covered by any occurrence (the planning characters)."""
        return span_union(self.find(text))

    def token_mask(self, text: str, offsets: Iterable[Sequence[int]]) -> list[bool]:
        """One bool per token: True (planning) where its [start, end) char span overlaps a gram."""
        return overlap_mask(self.spans(text), offsets)

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        state.pop("automaton_", None)  # rebuilt on load: cheap, and no C pickle format to trust
        return state

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        if "lexicon_" in state:
            self.automaton_ = build_automaton(self.lexicon_.phrases)
