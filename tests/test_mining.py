"""StrategicGramMiner: pure pieces on hand-computed values, planted families on a synthetic corpus."""

import zlib

import numpy as np
import pytest

from reasonlens.errors import ReasonlensError
from reasonlens.hierarchy.mining import (StrategicGramMiner, cluster_document_frequency, extract_ngrams,
                                         select_top_clusters)

PLANTED = {  # phrase families that steer reasoning; each response holds one phrase of each family
    "verify": ["let me double check the result", "let me check the result again", "double check the result again"],
    "branch": ["let us try another approach", "try another approach instead now", "let us try another way"],
}
DISTRACTORS = ["red apple trees", "blue ocean waves", "green frogs jump", "seven cats sleep",
               "warm bread smells", "tall towers stand", "quiet rivers flow", "bright stars shine"]
FILLER = ("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma tau "
          "upsilon phi chi psi omega").split()


def synthetic_corpus(n=60, seed=0):
    """Every response: one phrase per planted family; each distractor (a single 3-gram) in 3 responses;
    filler: 2-word sentences (no n-grams). 2 planted + 8 distractor clusters: the top 20% is the 2 planted."""
    rng = np.random.default_rng(seed)
    docs = []
    for i in range(n):
        parts = [rng.choice(PLANTED["verify"]), rng.choice(PLANTED["branch"])]
        parts += [d for j, d in enumerate(DISTRACTORS) if i % 20 == j]
        parts += [" ".join(rng.choice(FILLER, size=2)) for _ in range(3)]
        rng.shuffle(parts)
        docs.append(". ".join(parts) + ".")
    return docs


class FamilyEmbedder:
    """Deterministic fake: an n-gram's vector is the mean of per-word vectors; all words of a planted
    family share one vector, so a family's n-grams coincide and everything else is far apart."""

    def __init__(self):
        self.calls = []
        self.family = {w: name for name, phrases in PLANTED.items() for p in phrases for w in p.split()}

    def _word(self, word):
        rng = np.random.default_rng(zlib.crc32(self.family.get(word, word).encode()))
        return rng.normal(size=64)

    def encode(self, texts):
        self.calls.append(len(texts))
        return np.stack([np.mean([self._word(w) for w in t.split()], axis=0) for t in texts])


def test_extract_ngrams_hand_labelled():
    # segments: "wait, no" | "let's try x" -> words (wait,) (no) | (let's) (try); "x" is a letter run too
    assert extract_ngrams("Wait, no. Let\u2019s try x = 2", (2, 3)) == ["wait, no", "let's try", "try x", "let's try x"]
    assert extract_ngrams("We add 3 and 4 to get", (3, 3)) == []  # numbers break phrases: no 3 words in a row


def test_cluster_document_frequency_and_selection_by_hand():
    # doc0 has clusters {0, 1}, doc1 {1}, doc2 {2}, doc3 {1, 2}: CDF = [1, 3, 2, 0]
    docs = [np.array([0, 1, 1]), np.array([1, -1]), np.array([2]), np.array([2, 1])]
    cdf = cluster_document_frequency(docs, 4)
    assert cdf.tolist() == [1, 3, 2, 0]
    # top 0.2 of 4 clusters -> round(0.8) = 1 cluster: the one with CDF 3
    assert select_top_clusters(cdf, np.ones(4), 0.2).tolist() == [False, True, False, False]
    # top 0.5 -> 2 clusters: CDF 3 and 2
    assert select_top_clusters(cdf, np.ones(4), 0.5).tolist() == [False, True, True, False]


@pytest.mark.parametrize("clustering, options", [
    ("agglomerative", {"distance_threshold": 0.2}),
    ("kmeans", {"n_clusters": 10}),
], ids=["agglomerative", "kmeans"])
def test_planted_families_are_selected_and_distractors_are_not(clustering, options):
    embedder = FamilyEmbedder()
    miner = StrategicGramMiner(embedder=embedder, clustering=clustering, batch_size=16, **options)
    assert miner.fit(synthetic_corpus()) is miner
    planted_words = {w for phrases in PLANTED.values() for p in phrases for w in p.split()}
    selected = miner.clusters_[miner.clusters_["selected"]]
    assert len(selected) == 2
    for members in selected["members"]:
        assert all(set(m.split()) <= planted_words for m in members)
    assert "let me double check" in miner.lexicon_.phrases and "let us try another" in miner.lexicon_.phrases
    distractor_words = {w for d in DISTRACTORS for w in d.split()} | set(FILLER)
    assert not any(set(p.split()) & distractor_words for p in miner.lexicon_.phrases)
    assert miner.lexicon_.name == f"mined-{miner.lexicon_.hash}"
    # unique n-grams embedded once, in batches of at most 16
    assert sum(embedder.calls) == miner.config_["n_ngrams_embedded"] == len(miner.ngrams_)
    assert max(embedder.calls) <= 16
    assert list(miner.clusters_.columns) == ["cluster", "members", "size", "cdf", "selected"]
    assert miner.clusters_["cdf"].is_monotonic_decreasing


def test_drop_fraction_removes_a_seeded_random_share():
    corpus = synthetic_corpus()
    full = StrategicGramMiner(embedder=FamilyEmbedder(), distance_threshold=0.2).fit(corpus).lexicon_
    a = StrategicGramMiner(embedder=FamilyEmbedder(), distance_threshold=0.2, drop_fraction=0.3, seed=1).fit(corpus)
    b = StrategicGramMiner(embedder=FamilyEmbedder(), distance_threshold=0.2, drop_fraction=0.3, seed=1).fit(corpus)
    assert a.lexicon_ == b.lexicon_
    assert set(a.lexicon_.phrases) < set(full.phrases)
    assert len(a.lexicon_) == len(full) - round(0.3 * len(full))


@pytest.mark.parametrize("options, message", [
    ({"clustering": "dbscan"}, r"clustering='dbscan' is invalid: expected one of \['agglomerative', 'kmeans'\]"),
    ({"top_fraction": 0}, r"top_fraction=0 is invalid"),
    ({"ngram_range": (5, 3)}, r"ngram_range=\(5, 3\) is invalid"),
    ({"drop_fraction": 1.0}, r"drop_fraction=1.0 is invalid"),
], ids=["clustering", "top-fraction", "ngram-range", "drop-fraction"])
def test_bad_settings_fail_in_fit(options, message):
    miner = StrategicGramMiner(embedder=FamilyEmbedder(), **options)   # __init__ accepts anything
    with pytest.raises(ReasonlensError, match=message):
        miner.fit(synthetic_corpus(10))


def test_too_few_repeated_ngrams():
    with pytest.raises(ReasonlensError, match=r"only 0 n-gram\(s\) occur in >= min_df=2 of the 2 responses"):
        StrategicGramMiner(embedder=FamilyEmbedder()).fit(["one two three four", "five six seven eight"])


def test_real_minilm_selects_the_planted_families():
    """The bundled all-MiniLM-L6-v2 (default embedder, threshold 0.5): the two planted families win."""
    miner = StrategicGramMiner(batch_size=64).fit(synthetic_corpus(40))
    selected = miner.clusters_[miner.clusters_["selected"]]
    assert selected["cdf"].tolist() == [40, 40]
    joined = [" ".join(members) for members in selected["members"]]
    assert sorted("check" in j for j in joined) == [False, True]
    assert sorted("try another" in j for j in joined) == [False, True]
    distractor_words = {w for d in DISTRACTORS for w in d.split()}
    assert not any(set(p.split()) & distractor_words for p in miner.lexicon_.phrases)
    assert miner.config_["embedder"] == "minilm"


def test_miner_is_a_sklearn_estimator_whose_defaults_are_mine_grams_defaults():
    from sklearn.base import clone

    from reasonlens.hierarchy.mine_config import MineConfig

    miner = StrategicGramMiner(min_df=3, embedder=FamilyEmbedder())
    assert repr(StrategicGramMiner(min_df=3)) == "StrategicGramMiner(min_df=3)"  # only what differs
    copy = clone(miner)
    assert copy is not miner and copy.get_params()["min_df"] == 3 and not hasattr(copy, "lexicon_")
    # one set of defaults: the CLI's (MineConfig) are the estimator's
    assert MineConfig(rollouts="r.jsonl", out="m.txt").miner_params() == StrategicGramMiner().get_params()
    fitted = miner.fit(synthetic_corpus(10))
    learned = set(vars(fitted)) - set(fitted.get_params())
    assert learned == {"lexicon_", "clusters_", "ngrams_", "config_"}  # learned state ends in _
    assert fitted.config_["min_df"] == 3 and fitted.config_["embedder"] == "FamilyEmbedder"


@pytest.mark.parametrize("value, expected", [("3,5", (3, 5)), ("2, 4", (2, 4)), ((1, 2), (1, 2))],
                         ids=["string", "spaces", "pair"])
def test_ngram_range_parses(value, expected):
    from reasonlens.hierarchy.mine_config import parse_ngram_range

    assert parse_ngram_range(value) == expected


def test_ngram_range_that_is_not_two_integers_is_refused():
    from reasonlens.hierarchy.mine_config import MineConfig

    with pytest.raises(ReasonlensError, match=r"ngram_range='3-5' is not two integers: expected LOW,HIGH"):
        MineConfig(rollouts="r.jsonl", out="m.txt", ngram_range="3-5")
