"""Lexicons: the paper preset, user files, phrase lists, normalisation and hashes."""

from pathlib import Path

import pytest

from reasonlens.errors import ReasonlensError
from reasonlens.hierarchy.lexicon import Lexicon, load_lexicon, normalize_phrase

SPEC = Path("/work/shared/spec/strategic_grams_paper.txt")


def test_paper_preset_has_the_249_listing_phrases_in_order():
    lexicon = load_lexicon("paper")
    assert lexicon.name == "paper"
    assert len(lexicon) == 249
    assert lexicon.phrases[0] == "## step"  # a '#'-led phrase, not a comment
    assert {"so", "but", "wait", "hmm,", "wait, no", "does this make sense?"} <= set(lexicon.phrases)
    if SPEC.is_file():  # the shared spec copy, when this checkout has it
        assert lexicon.phrases == tuple(SPEC.read_text().split("\n")[:-1])


def test_paper_preset_file_cites_its_source():
    from importlib import resources

    text = resources.files("reasonlens.hierarchy").joinpath("lexicons/paper.txt").read_text()
    assert "2509.03646" in text.splitlines()[0] or "2509.03646" in text.splitlines()[1]
    assert "Listing 1" in text


@pytest.mark.parametrize("raw, expected", [
    ("  But   Wait ", "but wait"),
    ("that\u2019s\tright", "that's right"),
    ("Hmm,", "hmm,"),
], ids=["spaces-case", "apostrophe-tab", "punctuation-kept"])
def test_normalize_phrase(raw, expected):
    assert normalize_phrase(raw) == expected


def test_user_file_with_comments_blank_lines_and_duplicates(tmp_path):
    path = tmp_path / "mine.txt"
    path.write_text("# my lexicon\n\nLet me check\n## step\nlet me  check\n#\nwait\n", encoding="utf-8")
    lexicon = load_lexicon(path)
    assert lexicon.name == "mine"
    assert lexicon.phrases == ("let me check", "## step", "wait")
    assert load_lexicon(str(path)) == lexicon


def test_list_and_lexicon_specs():
    lexicon = load_lexicon(["So", "so", "Alternatively"])
    assert lexicon == Lexicon("custom", ("so", "alternatively"))
    assert load_lexicon(lexicon) is lexicon


def test_hash_depends_on_phrases_only():
    a, b = Lexicon("a", ("x", "y")), Lexicon("b", ("x", "y"))
    assert a.hash == b.hash and len(a.hash) == 12
    assert Lexicon("a", ("x", "z")).hash != a.hash
    assert load_lexicon("paper").hash == load_lexicon("paper").hash


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ReasonlensError, match=r"lexicon file .*nope\.txt.* does not exist.*preset name"):
        load_lexicon(tmp_path / "nope.txt")


def test_empty_file_is_a_clear_error(tmp_path):
    path = tmp_path / "empty.txt"
    path.write_text("# only a comment\n\n", encoding="utf-8")
    with pytest.raises(ReasonlensError, match=r"has no phrases.*one per line"):
        load_lexicon(path)


def test_bad_spec_types():
    with pytest.raises(ReasonlensError, match=r"lexicon 3 is a int: expected a preset name"):
        load_lexicon(3)
    with pytest.raises(ReasonlensError, match=r"phrase 5 is a int, expected a string"):
        load_lexicon(["ok", 5])
    with pytest.raises(ReasonlensError, match=r"has no phrases"):
        load_lexicon([])
