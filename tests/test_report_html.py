"""report.html: self-contained, escaped, says the phases in words, and renders in headless Chromium."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest
from report_fixtures import LEXICON, PHASES, dynamics_frame, rollouts_frame, summary_dict, top_grams_frame

from reasonlens.report import highlight, narrative
from reasonlens.report.figures import save_figures
from reasonlens.report.html import write_report
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def pngs(tmp_path_factory):
    """The figures, drawn once for the module (the report only inlines them)."""
    return save_figures(tmp_path_factory.mktemp("figs"), dynamics_frame(), top_grams_frame(), PHASES)


@pytest.fixture
def make_report(tmp_path, pngs):
    def make(text_only=False, rollouts=None, out=tmp_path):
        rollouts = rollouts_frame(text_only) if rollouts is None else rollouts
        return write_report(out, summary=summary_dict(text_only), dynamics=dynamics_frame(text_only),
                            rollouts=rollouts, figures=pngs)
    return make


@pytest.mark.parametrize("before, after, said", [
    (1.0, 0.62, "fell 38% (1.00 → 0.62)"),   # |0.62 - 1| / 1 = 0.38
    (2.0, 3.0, "rose 50% (2.00 → 3.00)"),    # |3 - 2| / 2 = 0.5
    (0.5, 0.5, "stayed at 0.50"),
], ids=["fell", "rose", "flat"])
def test_change_in_words(before, after, said):
    assert narrative.change(before, after) == said


@pytest.mark.parametrize("before, after, interval, said", [
    # near zero: no percentage ("rose 27%" of 0.0041 says nothing), values to 2 significant digits
    (0.0041, 0.0052, None, "rose by 0.0011 (0.0041 → 0.0052)"),
    # the interval of the change covers 0: no change beyond noise
    (0.30, 0.34, (-0.05, 0.13), "showed no change beyond noise (0.30 → 0.34; change +0.04, 95% interval -0.05 to +0.13)"),
    (0.30, 0.42, (0.05, 0.19), "rose by 0.12 (0.30 → 0.42; 95% interval +0.05 to +0.19)"),
    (1.06, 0.70, (-0.45, -0.27), "fell by 0.36 (1.06 → 0.70; 95% interval -0.45 to -0.27)"),
], ids=["near-zero", "noise", "rose", "fell"])
def test_change_with_intervals_and_near_zero(before, after, interval, said):
    assert narrative.change(before, after, interval=interval) == said


def test_sentences_use_the_bootstrap_intervals():
    # accuracy 0.20 -> 0.76 over the 8 fixture steps; se 0.05 at each step (interval half-width 1.96 * 0.05)
    dynamics = dynamics_frame().assign(accuracy_ci_low=lambda d: d["accuracy"] - 0.098,
                                       accuracy_ci_high=lambda d: d["accuracy"] + 0.098)
    lines = narrative.overview({}, dynamics, [], False)
    # change 0.56, se of the difference sqrt(2) * 0.05 = 0.0707 -> 0.56 -/+ 0.139 = 0.42 to 0.70
    assert "accuracy rose by 0.56 (0.20 → 0.76; 95% interval +0.42 to +0.7)" in lines[1]
    flat = dynamics.assign(accuracy=0.5, accuracy_ci_low=0.3, accuracy_ci_high=0.7)
    assert "accuracy showed no change beyond noise (0.50 → 0.50; change +0" in narrative.overview({}, flat, [], False)[1]


def test_phase_sentences_use_the_curves_and_the_reason():
    (cons, evidence), (expl, _) = narrative.phase_sentences(PHASES, dynamics_frame())
    # rel_ppl_execution 1.00 -> 0.62 (fall 0.38 of 1.00); entropy_execution 0.80 -> 0.45 (0.35/0.80 = 44%)
    assert cons.startswith("Procedural consolidation ends at step 30: from step 0 to 30, "
                           "execution RelPPL fell 38% (1.00 → 0.62), execution-token entropy fell 44%")
    # the evidence detect_phases really records: the hinge, the fall before the knee, the noise
    assert "hinge step = 30" in evidence and "fall before knee = 0.38" in evidence
    assert "noise sigma = 0.001" in evidence
    assert expl.startswith("Strategic exploration: not detected: no sustained rise of at least 3 noise sigmas")
    assert narrative.phase_sentences(None, dynamics_frame()) == [
        ("Phase detection was not run for this analysis.", "")]


def test_tokens_html_shades_by_entropy_relative_to_the_maximum():
    out = highlight.tokens_html(["a", " b"], [False, True], [0.5, 2.0])
    # 0.5 / 2.0 = 0.25 and 2.0 / 2.0 = 1.00
    assert out == ('<span style="border-bottom:2px solid rgba(31,119,180,0.25)" title="entropy 0.500 nats">a</span>'
                   '<span class="plan" style="border-bottom:2px solid rgba(31,119,180,1.00)" '
                   'title="entropy 2.000 nats · planning"> b</span>')


def test_spans_html_marks_the_spans_and_escapes():
    text = "we can use the fact that <x> & y"
    out = highlight.spans_html(text, [[0, 24]])  # the union of "we can use" and "use the fact that"
    assert re.sub(r"<[^>]+>", "", out) == "we can use the fact that &lt;x&gt; &amp; y"
    marked = "".join(re.findall(r"<mark[^>]*>(.*?)</mark>", out))
    assert marked == "we can use the fact that"


def test_example_steps_keep_first_last_and_phase_boundaries():
    steps = list(range(0, 100, 10))
    assert highlight.example_steps(steps, [30], n=4) == [0, 30, 60, 90]
    assert highlight.example_steps([0, 10], [], n=4) == [0, 10]


def test_pick_examples_takes_best_then_worst():
    picked = highlight.pick_examples(rollouts_frame(), [0, 70], per_step=2)
    assert list(picked["step"]) == [0, 0, 70, 70]
    assert list(picked["reward"]) == [1.0, 0.0, 1.0, 0.0]


def test_report_is_self_contained_and_complete(make_report):
    page = make_report().read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "<script" not in page and "<link" not in page
    assert page.count('src="data:image/png;base64,') == 3
    for heading in ("Summary", "Figures", "Dynamics table", "Example responses", "Configuration"):
        assert f"<h2>{heading}</h2>" in page
    assert "Procedural consolidation ends at step 30" in page
    assert "gsm_symbolic" in page and LEXICON.hash in page  # task and lexicon hash
    assert re.search(r'<span class="plan" style="[^"]+" title="entropy \d\.\d{3} nats · planning">But</span>', page)


def test_report_escapes_response_text(make_report):
    rollouts = rollouts_frame()
    rollouts["reward"] = [float(s == 1) for s in rollouts["sample_id"]]  # make the <b> response the best
    page = make_report(rollouts=rollouts).read_text(encoding="utf-8")
    assert "&lt;b&gt;bold&lt;/b&gt;" in page and "<b>bold</b>" not in page


def test_text_only_report_marks_token_metrics_unavailable(make_report):
    page = make_report(text_only=True).read_text(encoding="utf-8")
    assert 'class="na">unavailable</td>' in page
    assert "entropy_execution" in page and "are unavailable, not estimated" in page
    # the planning spans of the tag stage, in the plain text: "First", "But wait", "let's try a different approach"
    assert '<mark class="plan" title="strategic gram">First</mark>' in page
    assert ('<mark class="plan" title="strategic gram">But wait</mark>, <mark class="plan" title="strategic gram">'
            'let&#x27;s try a different approach</mark>') in page


def test_token_offsets_give_token_spans(make_report):
    rollouts = rollouts_frame().drop(columns=["entropies"])
    page = make_report(rollouts=rollouts).read_text(encoding="utf-8")
    first = page.split('<div class="resp">')[1].split("</div>")[0]
    planning = re.findall(r'<span class="plan" title="planning">([^<]*)</span>', first)
    # tokens overlapping a span ("wait," and "approach:" overlap theirs); the space after "wait," does not
    assert "".join(planning) == "FirstBut wait,let&#x27;s try a different approach:"


def _chromium() -> str | None:
    found = next((shutil.which(n) for n in ("chromium", "chromium-browser") if shutil.which(n)), None)
    if found is None and os.environ.get("CI"):
        pytest.fail("chromium is not installed but CI is set: install Debian's `chromium` package")
    if found is None:
        pytest.skip("chromium not installed (apt-get install chromium); required when CI is set")
    return found


@pytest.mark.slow
def test_report_renders_in_headless_chromium(tmp_path, make_report):
    from PIL import Image

    browser = _chromium()
    report = make_report(out=tmp_path / "analysis")
    flags = CHROMIUM_FLAGS + [f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([browser, *flags, "--dump-dom", report.as_uri()], capture_output=True,
                         text=True, timeout=120, check=True).stdout
    for needle in ("<h1>reasonlens analysis</h1>", "<h2>Dynamics table</h2>", "<table>",
                   '<img src="data:image/png;base64,', "Procedural consolidation ends at step 30"):
        assert needle in dom
    shot = tmp_path / "report.png"
    subprocess.run([browser, *flags, f"--screenshot={shot}", "--window-size=1280,2000", report.as_uri()],
                   capture_output=True, timeout=120, check=True)
    with Image.open(shot) as image:
        assert image.size == (1280, 2000)
        colors = image.convert("RGB").resize((320, 500)).getcolors(maxcolors=1_000_000)
        assert len(colors) > 200  # a blank page has one colour; the report has text and plots


def test_overview_says_why_token_metrics_are_missing():
    dynamics = dynamics_frame()
    text_only = narrative.overview({}, dynamics, ["entropy_all"], text_only=True)[-1]
    no_planning = narrative.overview({}, dynamics, ["entropy_planning"], text_only=False)[-1]
    assert text_only.startswith("This analysis has no token probabilities (text-only): entropy_all")
    assert no_planning.startswith("entropy_planning are unavailable at every step: no response token")


def test_token_texts_show_a_multibyte_character_once(tiny_tokenizer_dir):
    import pandas as pd
    from transformers import AutoTokenizer

    from reasonlens import columns as C
    from reasonlens.models.offsets import token_offsets

    tokenizer = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    ids = tokenizer.encode("so café → 7", add_special_tokens=False)  # é and → are split into byte tokens
    assert len(ids) > len("so café → 7".split())
    text, offsets = token_offsets(tokenizer, ids)
    pieces = highlight.token_texts(pd.Series({C.RESPONSE: text, C.TOKEN_OFFSETS: offsets}))
    assert len(pieces) == len(ids) and "".join(pieces) == "so café → 7"


def test_quarter_trend_averages_first_and_last_quarter():
    import pandas as pd

    # 8 steps: first quarter (2 steps) reward 0.2, 0.4 -> 0.3; last quarter 0.5, 0.7 -> 0.6: rose 100%
    dynamics = pd.DataFrame({"step": range(8), "mean_reward": [0.2, 0.4, 0.1, 0.9, 0.3, 0.3, 0.5, 0.7]})
    assert narrative.quarter_trend(dynamics, [("mean_reward", "mean reward")]) == (
        "Averaged over the first and the last quarter of the steps (2 each), mean reward rose 100% (0.30 → 0.60).")
    assert narrative.quarter_trend(dynamics.head(7), [("mean_reward", "mean reward")]) == ""


def test_phase_sentence_gives_the_step_interval():
    phase = {"detected": True, "step": 40, "step_interval": [30, 60], "reason": "a reason", "evidence": {}}
    sentence = narrative.phase_sentence("consolidation", phase, dynamics_frame())
    assert sentence.startswith("Procedural consolidation ends at step 40 (step interval 30–60): from step 0 to 40")


def test_dynamics_table_writes_intervals_next_to_values():
    from reasonlens.report.html import table_html

    dynamics = dynamics_frame().head(2).assign(accuracy_ci_low=[0.1, 0.2], accuracy_ci_high=[0.3, 0.4])
    page = table_html(dynamics)
    assert "<td>0.2 [0.1, 0.3]</td>" in page and "<td>0.28 [0.2, 0.4]</td>" in page  # accuracy 0.2, 0.28
    assert "accuracy_ci_low" not in page
