"""Output folders (issue 16, classes 1, 7 and 9): reasonlens writes only into folders it owns, outside its
inputs, one writer at a time; a folder an earlier version wrote is adopted, never refused or wiped."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys

import pandas as pd
import pytest
from hostile import SMALL, TRAIN, refused, runner, small_log

from reasonlens.cli import app
from reasonlens.folders import LOCK, MARKER, folder_lock, read_marker, writing
from reasonlens.train.resume import RUN_FILES


@pytest.fixture
def model(tmp_path, tiny_model_dir):
    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    return folder


@pytest.fixture
def no_model_loads(monkeypatch):
    from reasonlens.models import loading

    def forbidden(*args, **kwargs):
        raise AssertionError("a model was loaded before the bad output folder was reported")
    monkeypatch.setattr(loading, "load_model", forbidden)


def _fake_run(tmp_path, model) -> "os.PathLike":
    """A train-hicra run folder as reasonlens writes it: marker, config.json, one logged step, one checkpoint."""
    run = tmp_path / "run"
    (run / "rollouts").mkdir(parents=True)
    with writing(run, kind="run", covers=RUN_FILES):
        pass
    config = {"model": str(model), "task": "basic_arithmetic", "seed": 0, "num_prompts": 2, "fewshot": "none"}
    (run / "config.json").write_text(json.dumps({"config": config}))
    pd.DataFrame({"step": [1], "prompt": ["q"], "response": ["r"]}).to_parquet(run / "rollouts" / "step_000001.parquet")
    shutil.copytree(model, run / "checkpoints" / "step_1")
    return run


# --- 1. never delete or overwrite what reasonlens does not own --------------------------------------


def test_train_out_on_the_model_folder_is_refused_and_the_model_kept(model):
    refused(["train-hicra", "--model", model, "--out", model, *TRAIN],
            names=[f"--out {model} would overwrite the input", "it is that input"], inputs=[model])
    assert not (model / MARKER).exists()


def test_train_out_on_a_foreign_folder_is_refused_naming_what_is_there(tmp_path, model):
    foreign = tmp_path / "mine"
    (foreign / "checkpoints").mkdir(parents=True)
    (foreign / "trl").mkdir()
    (foreign / "config.json").write_text('{"mine": true}')
    (foreign / "metrics.csv").write_text("a,b\n")
    refused(["train-hicra", "--model", model, "--out", foreign, *TRAIN],
            names=["not empty and was not written by reasonlens", "checkpoints/, config.json, metrics.csv, trl/",
                   "choose another --out"], inputs=[foreign])
    assert sorted(p.name for p in foreign.iterdir()) == ["checkpoints", "config.json", "metrics.csv", "trl"]


def test_analyze_eval_task_out_on_the_run_is_refused(tmp_path, model, no_model_loads):
    run = _fake_run(tmp_path, model)
    refused(["analyze", run, "--eval-task", "basic_arithmetic", "--out", run, *SMALL],
            names=[f"--out {run} would overwrite the input", "it is that input"], inputs=[run])


def test_analyze_out_inside_a_model_folder_is_refused_unless_it_is_the_default(tmp_path, model, no_model_loads):
    refused(["analyze", model, "--out", model / "analysis", *SMALL],
            names=["would overwrite the input", "it is inside that input folder"], inputs=[model])
    assert not (model / "analysis").exists()


def test_analyze_out_holding_the_input_is_refused(tmp_path, model, no_model_loads):
    refused(["analyze", model, "--out", tmp_path, *SMALL], names=["the input is inside it"], inputs=[model])


def test_analyze_out_through_a_symlink_to_the_input_is_refused(tmp_path, model, no_model_loads):
    link = tmp_path / "link"
    link.symlink_to(model)
    refused(["analyze", model, "--out", link, *SMALL], names=[f"--out {link}", "it is that input"], inputs=[model])


def test_analyze_out_on_a_foreign_folder_is_refused(tmp_path):
    foreign = tmp_path / "notes"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("mine")
    log = small_log(tmp_path)
    refused(["analyze", "--rollouts", log, "--out", foreign], names=["holds thesis.tex", "choose another --out"],
            inputs=[foreign, log])


def test_analyze_out_on_a_run_folder_is_refused_by_kind(tmp_path, model):
    run = _fake_run(tmp_path, model)
    log = small_log(tmp_path)
    refused(["analyze", "--rollouts", log, "--out", run], names=["is a run folder (train-hicra --out), not an analysis folder"],
            inputs=[run, log])


def test_an_analysis_folder_gets_a_marker_and_is_reused(tmp_path):
    log, out = small_log(tmp_path), tmp_path / "out"
    for _ in range(2):
        result = runner.invoke(app, ["analyze", "--rollouts", str(log), "--out", str(out), "--no-report"])
        assert result.exit_code == 0, result.output
    marker = read_marker(out)
    assert marker["kind"] == "analysis" and "summary.json" in marker["covers"] and len(marker["run_id"]) == 32
    assert not (out / LOCK).exists()  # released


def test_an_analysis_written_by_an_earlier_version_is_adopted(tmp_path):
    log, out = small_log(tmp_path), tmp_path / "out"
    assert runner.invoke(app, ["analyze", "--rollouts", str(log), "--out", str(out), "--no-report"]).exit_code == 0
    (out / MARKER).unlink()  # as 0.2 left it: summary.json in analyze's schema, no marker
    result = runner.invoke(app, ["analyze", "--rollouts", str(log), "--out", str(out), "--no-report"])
    assert result.exit_code == 0, result.output
    assert read_marker(out)["kind"] == "analysis"


def test_a_run_written_by_an_earlier_version_resumes(tmp_path, tiny_model_dir):
    run = tmp_path / "run"
    args = ["train-hicra", "--model", str(tiny_model_dir), "--task", "basic_arithmetic", "--out", str(run), *TRAIN,
            "--save-every", "1"]
    assert runner.invoke(app, args).exit_code == 0
    (run / MARKER).unlink()  # as 0.2 left it: config.json in train-hicra's schema, trl/, metrics.csv
    result = runner.invoke(app, [*args, "--steps", "2", "--resume"])
    assert result.exit_code == 0, result.output
    assert list(pd.read_csv(run / "metrics.csv")["step"]) == [1, 2]
    assert read_marker(run)["kind"] == "run"


def test_a_model_folder_an_analysis_was_written_into_is_still_a_model(tmp_path, model):
    """Issue 16 dead end 9: an earlier version's `--out MODEL` left rollouts/step_*.parquet beside the model's
    config.json; `analyze MODEL` must still see a model, not a training run."""
    (model / "rollouts").mkdir()
    pd.DataFrame({"step": [0], "prompt": ["q"], "response": ["r"]}).to_parquet(model / "rollouts" / "step_000000.parquet")
    result = runner.invoke(app, ["analyze", str(model), *SMALL])
    assert result.exit_code == 0, result.output
    summary = json.loads((model / "reasonlens" / "summary.json").read_text())
    assert summary["mode"] == "checkpoints"


# --- 7. one writer per folder ---------------------------------------------------------------------


@pytest.fixture
def other_writer():
    """A live process on this host, standing for a second reasonlens writing the same folder."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    yield proc.pid
    proc.kill()
    proc.wait()


def _locked_by(folder, pid) -> None:
    folder.mkdir(exist_ok=True)
    (folder / LOCK).write_text(json.dumps({"pid": pid, "host": socket.gethostname(), "since": "now"}))


def test_a_second_analyze_into_a_locked_folder_is_refused(tmp_path, other_writer):
    log, out = small_log(tmp_path), tmp_path / "out"
    _locked_by(out, other_writer)
    refused(["analyze", "--rollouts", log, "--out", out],
            names=[f"{out} is being written by process {other_writer} on {socket.gethostname()}", "wait for it"],
            inputs=[log], out=out)
    assert json.loads((out / LOCK).read_text())["pid"] == other_writer  # still the holder's


def test_a_second_train_into_a_locked_run_is_refused(tmp_path, tiny_model_dir, other_writer):
    run = tmp_path / "run"
    _locked_by(run, other_writer)
    refused(["train-hicra", "--model", tiny_model_dir, "--task", "basic_arithmetic", "--out", run, *TRAIN],
            names=[f"{run} is being written by process {other_writer}", "choose another --out"])
    assert not (run / "metrics.csv").exists()


def test_the_holder_may_take_its_own_lock_again(tmp_path):
    """`analyze --watch` holds the lock around each analysis it runs in the same process."""
    log, out = small_log(tmp_path), tmp_path / "out"
    out.mkdir()
    with folder_lock(out):
        result = runner.invoke(app, ["analyze", "--rollouts", str(log), "--out", str(out), "--no-report"])
        assert result.exit_code == 0, result.output
        assert json.loads((out / LOCK).read_text())["pid"] == os.getpid()  # the inner one left it in place
    assert not (out / LOCK).exists()


def test_a_stale_lock_of_a_dead_process_is_taken_over_with_a_warning(tmp_path):
    log, out = small_log(tmp_path), tmp_path / "out"
    out.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # its pid is now free (reuse within this test is vanishingly unlikely)
    (out / LOCK).write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(), "since": "earlier"}))
    result = runner.invoke(app, ["analyze", "--rollouts", str(log), "--out", str(out), "--no-report"])
    assert result.exit_code == 0, result.output
    assert f"locked by process {dead.pid}" in result.output and "which is gone" in result.output
    assert (out / "summary.json").exists() and not (out / LOCK).exists()


def test_a_lock_held_on_another_host_is_not_taken_over(tmp_path):
    log, out = small_log(tmp_path), tmp_path / "out"
    out.mkdir()
    (out / LOCK).write_text(json.dumps({"pid": 1, "host": "elsewhere", "since": "earlier"}))
    refused(["analyze", "--rollouts", log, "--out", out], names=["by process 1 on elsewhere", f"delete {out / LOCK}"],
            inputs=[log])
