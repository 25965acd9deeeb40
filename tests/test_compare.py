"""compare: several analyses overlaid in one table, figures and a self-contained page (API and CLI)."""

from __future__ import annotations

import pandas as pd
import pytest
from report_fixtures import STEPS, make_analysis_dir
from typer.testing import CliRunner

from reasonlens.cli import app
from reasonlens.errors import ReasonlensError
from reasonlens.analysis.compare import compare


@pytest.fixture
def two_runs(tmp_path):
    return [make_analysis_dir(tmp_path / "grpo" / "reasonlens"),
            make_analysis_dir(tmp_path / "hicra" / "reasonlens", text_only=True, csv=True)]


def test_compare_writes_table_figures_and_page(two_runs, tmp_path):
    out = compare(two_runs, tmp_path / "cmp", labels=["GRPO", "HICRA"])
    table = pd.read_csv(out / "comparison.csv")
    assert table.columns[0] == "run" and list(table["run"].unique()) == ["GRPO", "HICRA"]
    assert len(table) == 2 * len(STEPS)
    assert sorted(p.name for p in (out / "figures").iterdir()) == ["compare_dynamics.png", "compare_overlap.png"]
    page = (out / "comparison.html").read_text(encoding="utf-8")
    assert page.count('src="data:image/png;base64,') == 2 and "http" not in page
    assert "<h3>GRPO</h3>" in page and "Procedural consolidation ends at step 30" in page


def test_default_labels_disambiguate_same_folder_names(two_runs, tmp_path):
    out = compare(two_runs, tmp_path / "cmp")
    # both folders are named "reasonlens": the parent name tells them apart
    assert list(pd.read_csv(out / "comparison.csv")["run"].unique()) == ["grpo/reasonlens", "hicra/reasonlens"]


def test_compare_needs_two_analyses_and_matching_labels(two_runs, tmp_path):
    with pytest.raises(ReasonlensError, match=r"got 1 analysis folder\(s\); give at least two"):
        compare(two_runs[:1], tmp_path / "cmp")
    with pytest.raises(ReasonlensError, match=r"got 1 labels for 2 analyses"):
        compare(two_runs, tmp_path / "cmp", labels=["only"])


def test_cli_compare(two_runs, tmp_path):
    result = CliRunner().invoke(app, ["compare", *map(str, two_runs), "--out", str(tmp_path / "cmp"),
                                      "--label", "GRPO", "--label", "HICRA"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().endswith("comparison.html")
    assert (tmp_path / "cmp" / "comparison.csv").exists()


def test_cli_compare_error_is_one_red_line(two_runs, tmp_path):
    result = CliRunner().invoke(app, ["compare", str(two_runs[0]), str(tmp_path / "missing"),
                                      "--out", str(tmp_path / "cmp")])
    assert result.exit_code == 1
    assert "is not a finished analysis folder" in result.output and "Traceback" not in result.output
