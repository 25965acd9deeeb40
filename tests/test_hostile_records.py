"""Series entries and records (issue 16, classes 4 and 8): every checkpoint-N accounted for, malformed
analysis folders and text cells refused with the file, the field (or row and column) and the fix."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
from hostile import SMALL, refused, runner, write_jsonl

from reasonlens.cli import app
from reasonlens.errors import AnalysisFolderError


@pytest.fixture
def broken_series(tmp_path, tiny_model_dir):
    """checkpoint-1 a model; 2 a dangling symlink, 3 a symlink loop, 4 a plain file."""
    series = tmp_path / "series"
    series.mkdir()
    shutil.copytree(tiny_model_dir, series / "checkpoint-1")
    (series / "checkpoint-2").symlink_to(tmp_path / "gone")
    (series / "checkpoint-3").symlink_to(series / "checkpoint-3")
    (series / "checkpoint-4").write_text("not a model")
    return series


# --- 4. every entry of a series accounted for -------------------------------------------------------


def test_unreadable_checkpoint_entries_are_each_named(tmp_path, broken_series):
    refused(["analyze", broken_series, "--out", tmp_path / "out", *SMALL],
            names=["3 unusable checkpoint(s)", "checkpoint-2: a dangling symlink (to", "checkpoint-3: a symlink loop",
                   "checkpoint-4: a file, not a checkpoint folder", "--skip-bad"])


def test_skip_bad_records_every_unreadable_entry(tmp_path, broken_series):
    out = tmp_path / "out"
    result = runner.invoke(app, ["analyze", str(broken_series), "--out", str(out), *SMALL, "--skip-bad"])
    assert result.exit_code == 0, result.output
    skipped = json.loads((out / "summary.json").read_text())["skipped"]
    assert {s["path"].rsplit("/", 1)[1]: s["reason"].split(" (")[0] for s in skipped} == {
        "checkpoint-2": "a dangling symlink", "checkpoint-3": "a symlink loop",
        "checkpoint-4": "a file, not a checkpoint folder"}


# --- 8. malformed analysis folders and text cells -----------------------------------------------------


def _analysis(tmp_path):
    from report_fixtures import make_analysis_dir

    return make_analysis_dir(tmp_path / "analysis")


@pytest.mark.parametrize("field, value, said", [
    ("lexicon", ["paper"], "field 'lexicon' is a JSON list, expected an object"),
    ("phases", {"consolidation": "step 3"}, "field 'phases' is an object holding a non-object"),
    ("n_responses", "many", "field 'n_responses' is a JSON string, expected a number"),
], ids=["lexicon-list", "phase-string", "count-string"])
def test_load_analysis_names_the_file_and_field_of_a_wrong_type(tmp_path, field, value, said):
    from reasonlens import load_analysis

    folder = _analysis(tmp_path)
    summary = json.loads((folder / "summary.json").read_text())
    (folder / "summary.json").write_text(json.dumps(summary | {field: value}))
    with pytest.raises(AnalysisFolderError, match=said) as caught:
        load_analysis(folder)
    assert caught.value.file == folder / "summary.json" and caught.value.field == field


def test_compare_of_a_folder_with_a_wrong_type_is_one_line(tmp_path):
    folder = _analysis(tmp_path)
    summary = json.loads((folder / "summary.json").read_text())
    (folder / "summary.json").write_text(json.dumps(summary | {"lexicon": "paper"}))
    refused(["compare", folder, folder, "--out", tmp_path / "cmp"],
            names=[folder / "summary.json", "field 'lexicon' is a JSON string"], inputs=[folder])


@pytest.mark.parametrize("response, said", [
    (["so", "4"], "response = ['so', '4'] is a list that is not a conversation, not text"),
    ({"text": "so 4"}, "response = {'text': 'so 4'} is an object (dict), not text"),
    (42, "response = 42 is of type int, not text"),
], ids=["list", "dict", "number"])
def test_a_response_that_is_not_text_is_refused_with_row_and_column(tmp_path, response, said):
    log = write_jsonl(tmp_path / "log.jsonl", [{"step": 0, "prompt": "q", "response": "so 4", "correct": True},
                                               {"step": 1, "prompt": "q", "response": response, "correct": True}])
    refused(["analyze", "--rollouts", log, "--out", tmp_path / "out"], names=[log, "line 2", said], inputs=[log])


def test_a_parquet_list_response_is_refused_not_graded(tmp_path):
    log = tmp_path / "log.parquet"
    pd.DataFrame({"step": [0], "prompt": ["q"], "response": [["\\boxed{4}"]], "answer": ["4"]}).to_parquet(log)
    refused(["analyze", "--rollouts", log, "--out", tmp_path / "out"],
            names=[log, "row 0: response", "is a list that is not a conversation"], inputs=[log])


def test_compare_of_a_dynamics_table_without_integer_steps_names_file_and_column(tmp_path):
    folder = _analysis(tmp_path)
    (folder / "dynamics.parquet").unlink(missing_ok=True)
    (folder / "dynamics.csv").write_text("step,accuracy\nfirst,0.5\n")
    refused(["compare", folder, folder, "--out", tmp_path / "cmp"],
            names=[folder / "dynamics.csv", "has no integer 'step' column"], inputs=[folder])


# --- 9. user errors that ended in the catch-all "unexpected ..." message -------------------------------


def test_an_empty_log_is_named(tmp_path):
    log = tmp_path / "empty.parquet"
    pd.DataFrame({"step": pd.Series([], dtype=int), "prompt": pd.Series([], dtype=str),
                  "response": pd.Series([], dtype=str)}).to_parquet(log)
    text = refused(["analyze", "--rollouts", log, "--out", tmp_path / "out"], names=[log, "holds no response"],
                   inputs=[log])
    assert "unexpected" not in text


def test_a_prompt_id_that_is_an_object_is_named_with_row_and_column(tmp_path):
    log = tmp_path / "pid.parquet"
    pd.DataFrame({"step": [0, 1], "prompt": ["q", "q"], "response": ["a", "b"],
                  "prompt_id": [{"a": 1}, {"b": 2}]}).to_parquet(log)
    refused(["analyze", "--rollouts", log, "--out", tmp_path / "out"],
            names=[log, "row 0: prompt_id", "of type dict, not an id"], inputs=[log])


def test_a_checkpoint_whose_config_is_not_an_object_is_named_at_discovery(tmp_path, tiny_model_dir):
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    (model / "config.json").write_text("[]")
    text = refused(["analyze", model, "--out", tmp_path / "out", *SMALL],
                   names=["model: config.json is a JSON list, not an object"], inputs=[model])
    assert "unexpected" not in text
