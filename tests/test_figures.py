"""Figures: each plot draws its curves, NaN metrics become an 'unavailable' panel, phases are marked."""

from __future__ import annotations

import pandas as pd
import pytest
from report_fixtures import PHASES, analysis_top_grams, dynamics_frame, top_grams_frame

from reasonlens.report import figures


def _texts(ax) -> list[str]:
    return [t.get_text() for t in ax.texts]


@pytest.mark.parametrize("plot, n_lines", [
    (figures.plot_rel_ppl, 2), (figures.plot_entropy, 3), (figures.plot_sg_entropy_change, 1),
    (figures.plot_accuracy_length, 1), (figures.plot_overlap, 3),
], ids=["rel_ppl", "entropy", "sg_change", "accuracy_length", "overlap"])
def test_plot_draws_one_line_per_series(plot, n_lines):
    dynamics = dynamics_frame()
    ax = plot(dynamics)
    # reference lines (axhline at 1.0) have 2 points; curves have one point per step (8)
    curves = [line for line in ax.lines if len(line.get_xdata()) == 8]
    assert len(curves) == n_lines
    assert ax.get_title()
    # each curve is a column of the table, drawn against the steps
    columns = [c for c in dynamics.columns if c != "step"]
    for line in curves:
        assert list(line.get_xdata()) == list(dynamics["step"])
        assert any(list(line.get_ydata()) == list(dynamics[c]) for c in columns), line.get_label()


def test_rel_ppl_lines_are_the_right_columns():
    dynamics = dynamics_frame()
    lines = {line.get_label(): list(line.get_ydata()) for line in figures.plot_rel_ppl(dynamics).lines}
    assert lines["planning"] == list(dynamics["rel_ppl_planning"])
    assert lines["execution"] == list(dynamics["rel_ppl_execution"])


def test_accuracy_length_uses_a_twin_axis_for_length():
    ax = figures.plot_accuracy_length(dynamics_frame())
    twins = [other for other in ax.figure.axes if other is not ax]
    assert len(twins) == 1 and list(twins[0].lines[0].get_ydata()) == list(dynamics_frame()["mean_length"])
    assert "tokens" in twins[0].get_ylabel()


@pytest.mark.parametrize("plot", [figures.plot_rel_ppl, figures.plot_entropy, figures.plot_overlap],
                         ids=["rel_ppl", "entropy", "overlap"])
def test_text_only_panels_say_unavailable(plot):
    ax = plot(dynamics_frame(text_only=True))
    assert not ax.lines
    assert figures.NO_TOKEN_PROBS in _texts(ax)


def test_plot_on_given_axes_returns_it():
    from matplotlib.figure import Figure

    ax = Figure().add_subplot()
    assert figures.plot_entropy(dynamics_frame(), ax=ax) is ax


def test_runs_get_one_line_style_each_and_empty_runs_are_named():
    both = pd.concat([dynamics_frame().assign(run="grpo"), dynamics_frame(text_only=True).assign(run="hicra")])
    ax = figures.plot_rel_ppl(both)
    labels = [line.get_label() for line in ax.lines if len(line.get_xdata()) == 8]
    assert labels == ["planning · grpo", "execution · grpo"]
    assert "unavailable for hicra" in _texts(ax)


def test_dynamics_figure_has_four_panels_with_phase_lines_on_each_curve_panel():
    fig = figures.dynamics_figure(dynamics_frame(), PHASES)
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == [
        "Relative perplexity by token class", "Token entropy by class",
        "Strategic-gram semantic entropy change", "Accuracy and response length"]
    for ax in panels:  # consolidation detected at 30; exploration not detected: no line for it
        assert any(list(line.get_xdata()) == [30, 30] for line in ax.lines)
        assert " consolidation ends (step 30)" in _texts(ax)
        assert not any("exploration" in t for t in _texts(ax))


def test_dynamics_figure_text_only_draws_the_panels_text_supports():
    fig = figures.dynamics_figure(dynamics_frame(text_only=True), PHASES)
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == [
        "Planning share of the response", "Reflection markers per response", "Strategic-gram entropies",
        "Strategic-gram semantic entropy change", "Accuracy and pass@k", "Response length"]
    assert all(ax.lines for ax in panels)
    assert not any(figures.NO_TOKEN_PROBS in _texts(ax) for ax in fig.axes)
    accuracy = panels[4]
    assert [line.get_label() for line in accuracy.lines][:2] == ["accuracy", "pass@4"]


def _with_intervals(dynamics: pd.DataFrame) -> pd.DataFrame:
    """Interval columns as `analyze --bootstrap` writes them: here value -/+ 10%."""
    from reasonlens.metrics import columns as dc

    metrics = [c for c in dynamics.columns if c not in ("step", "n_responses", "length_unit", "pass_k", "run")]
    return dynamics.assign(**{dc.ci_low(c): dynamics[c] * 0.9 for c in metrics},
                           **{dc.ci_high(c): dynamics[c] * 1.1 for c in metrics})


def _bands(ax):
    from matplotlib.collections import PolyCollection

    return [c for c in ax.collections if isinstance(c, PolyCollection)]


@pytest.mark.parametrize("plot, n_bands", [
    (figures.plot_rel_ppl, 2), (figures.plot_entropy, 3), (figures.plot_sg_entropy_change, 1),
    (figures.plot_accuracy_length, 1), (figures.plot_overlap, 3),
], ids=["rel_ppl", "entropy", "sg_change", "accuracy_length", "overlap"])
def test_every_curve_has_its_band(plot, n_bands):
    dynamics = _with_intervals(dynamics_frame())
    ax = plot(dynamics)
    bands = _bands(ax)
    assert len(bands) == n_bands
    # each band spans one metric's interval columns: its lowest point is that metric's min(ci_low)
    lows = [dynamics[c].min() for c in dynamics.columns if c.endswith("_ci_low")]
    for band in bands:
        assert any(band.get_paths()[0].vertices[:, 1].min() == pytest.approx(low) for low in lows)
    assert not _bands(plot(dynamics_frame()))  # no interval columns: no band


def test_band_follows_the_interval_columns():
    dynamics = _with_intervals(dynamics_frame())
    ax = figures.plot_accuracy_length(dynamics)
    band = _bands(ax)[0].get_paths()[0].vertices
    assert band[:, 1].min() == pytest.approx(dynamics["accuracy_ci_low"].min())
    assert band[:, 1].max() == pytest.approx(dynamics["accuracy_ci_high"].max())
    length_axis = [other for other in ax.figure.axes if other is not ax][0]
    assert _bands(length_axis)[0].get_paths()[0].vertices[:, 1].max() == pytest.approx(
        dynamics["mean_length_ci_high"].max())


def test_text_and_compare_figures_have_bands():
    text = figures.dynamics_figure(_with_intervals(dynamics_frame(text_only=True)))
    assert all(_bands(ax) for ax in text.axes if ax.get_title())
    both = pd.concat([_with_intervals(dynamics_frame()).assign(run="grpo"),
                      _with_intervals(dynamics_frame()).assign(run="hicra")])
    assert len(_bands(figures.plot_rel_ppl(both))) == 4  # two classes x two runs: one band per run
    overlap = figures.overlap_figure(_with_intervals(dynamics_frame()))
    assert len(_bands(overlap.axes[0])) == 3


def test_top_grams_heatmap_orders_grams_by_total_count():
    ax = figures.plot_top_grams(top_grams_frame(), n=2)
    # totals over 8 steps: "so" = 3*36 = 108, "let's try..." = 2*36 = 72 (36 = 1+2+...+8)
    assert [t.get_text() for t in ax.get_yticklabels()] == ['"so"', '"let\'s try a different approach"']
    assert ax.images[0].get_array().shape == (2, 8)


def test_top_grams_empty_is_unavailable():
    ax = figures.plot_top_grams(pd.DataFrame(columns=["step", "gram", "count"]))
    assert "unavailable: no strategic grams matched" in _texts(ax)


def test_save_figures_writes_readable_pngs(tmp_path):
    from PIL import Image

    paths = figures.save_figures(tmp_path, dynamics_frame(), top_grams_frame(), PHASES)
    assert [p.name for p in paths] == ["dynamics.png", "overlap.png", "top_grams.png"]
    text_only = figures.save_figures(tmp_path / "text", dynamics_frame(text_only=True), None, PHASES)
    assert [p.name for p in text_only] == ["dynamics.png"]  # no token probabilities: no overlap panel
    for path in paths:
        with Image.open(path) as image:
            assert image.format == "PNG" and image.width >= 900
    assert not list((tmp_path / "figures").glob("*.tmp-*"))


def test_top_grams_of_the_tagged_rollouts():
    top = analysis_top_grams()
    # per step: "first", "but wait", "let's try a different approach" (response 1) and "so" (response 2), once each
    assert set(top[top["step"] == 0]["gram"]) == {"first", "but wait", "let's try a different approach", "so"}
    assert top["count"].eq(1).all()
    ax = figures.plot_top_grams(top, n=4)
    assert ax.images[0].get_array().sum() == 4 * 8


def test_a_table_without_steps_is_a_clear_error():
    from reasonlens.errors import ReasonlensError

    with pytest.raises(ReasonlensError, match=r"lacks column\(s\) \['step'.*OUT/dynamics.parquet"):
        figures.plot_entropy(pd.DataFrame({"entropy_all": [1.0]}))
    with pytest.raises(ReasonlensError, match=r"lacks column\(s\) \['entropy_planning'"):
        figures.plot_entropy(pd.DataFrame({"step": [0], "entropy_all": [1.0]}))
    with pytest.raises(ReasonlensError, match=r"Top strategic grams per step: the table lacks column\(s\) \['gram'"):
        figures.plot_top_grams(pd.DataFrame({"step": [0], "count": [1]}))


def test_training_runs_get_an_advantage_figure(tmp_path):
    dynamics = dynamics_frame().assign(advantage_planning=0.3, advantage_execution=0.1)
    paths = figures.save_figures(tmp_path, dynamics, None, PHASES)
    assert [p.name for p in paths] == ["dynamics.png", "overlap.png", "advantages.png"]
    ax = figures.plot_advantages(dynamics)
    assert [line.get_label() for line in ax.lines][:2] == ["planning tokens", "execution tokens"]
