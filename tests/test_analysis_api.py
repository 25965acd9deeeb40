"""load_analysis: reads an analysis folder back, plots it, shows one response highlighted."""

from __future__ import annotations

import re

import pytest
from report_fixtures import LEXICON, PHASES, STEPS, make_analysis_dir

from reasonlens.analysis.result import load_analysis
from reasonlens.errors import ReasonlensError


@pytest.fixture
def analysis_dir(tmp_path):
    return make_analysis_dir(tmp_path / "analysis")


@pytest.mark.parametrize("csv", [False, True], ids=["parquet", "csv"])
def test_load_analysis_reads_tables_and_summary(tmp_path, csv):
    a = load_analysis(make_analysis_dir(tmp_path / "a", csv=csv))
    assert list(a.dynamics["step"]) == STEPS
    assert len(a.rollouts) == 3 * len(STEPS)
    assert a.phases == PHASES
    assert a.config["samples"] == 3 and a.lexicon["hash"] == LEXICON.hash
    assert a.phrases == LEXICON.phrases
    assert "steps=8" in repr(a)


def test_an_edited_lexicon_is_refused(analysis_dir):
    with (analysis_dir / "lexicon.txt").open("a") as f:
        f.write("a new phrase\n")
    with pytest.raises(ReasonlensError, match=r"lexicon.txt has hash \w+ but summary.json records"):
        load_analysis(analysis_dir)


def test_not_an_analysis_folder_names_what_is_missing(tmp_path):
    with pytest.raises(ReasonlensError, match=r"not a finished analysis folder \(missing summary.json, dynamics"):
        load_analysis(tmp_path)
    with pytest.raises(ReasonlensError, match=r"not a finished analysis folder \(it does not exist\).*--out"):
        load_analysis(tmp_path / "nope")


def test_broken_summary_is_a_clear_error(analysis_dir):
    (analysis_dir / "summary.json").write_text("{oops")
    with pytest.raises(ReasonlensError, match=r"summary.json is not valid JSON"):
        load_analysis(analysis_dir)


def test_figure_methods_return_figures(analysis_dir):
    from matplotlib.figure import Figure

    a = load_analysis(analysis_dir)
    for fig in (a.dynamics_figure(), a.entropy_figure(), a.overlap_figure(), a.top_grams_figure()):
        assert isinstance(fig, Figure) and fig.axes
    assert len(a.dynamics_figure().axes) >= 4


def test_phase_sentences_in_words(analysis_dir):
    sentences = load_analysis(analysis_dir).phase_sentences()
    assert sentences[0].startswith("Procedural consolidation ends at step 30")
    assert "Evidence: curve = rel_ppl_execution" in sentences[0] and "hinge step = 30" in sentences[0]


def test_show_response_highlights_planning_tokens(analysis_dir):
    shown = load_analysis(analysis_dir).show_response(0)
    markup = shown._repr_html_() if hasattr(shown, "_repr_html_") else shown.data
    assert re.search(r'<span class="plan" style="[^"]+" title="entropy [\d.]+ nats · planning">But</span>', markup)
    assert "step 0 · prompt p0" in markup and "max-width" not in markup  # response styles only, not the page's


def test_show_response_text_only_uses_the_tagged_spans(tmp_path):
    path = make_analysis_dir(tmp_path / "t", text_only=True)
    markup = load_analysis(path).show_response(0).data
    assert '<mark class="plan" title="strategic gram">But wait</mark>' in markup


def test_show_response_index_out_of_range(analysis_dir):
    with pytest.raises(ReasonlensError, match=r"i=99 is out of range; this analysis has 24 responses"):
        load_analysis(analysis_dir).show_response(99)
