"""`analyze --ray` on a local Ray cluster: identical rollouts to the single-process run, failures named."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from reasonlens import columns as C
from reasonlens.cli import app

pytestmark = pytest.mark.slow  # starts a Ray cluster

ray = pytest.importorskip("ray")
runner = CliRunner()
SMALL = ["--task", "basic_arithmetic", "--num-prompts", "2", "--samples", "2", "--max-new-tokens", "16",
         "--device", "cpu", "--dtype", "fp32", "--threads", "1", "--no-report"]


@pytest.fixture(scope="module", autouse=True)
def local_cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_ray_run_equals_the_single_process_run(tiny_series, tmp_path):
    for name, extra in (("single", []), ("ray", ["--ray"])):
        result = runner.invoke(app, ["analyze", str(tiny_series), "--out", str(tmp_path / name), *SMALL, *extra])
        assert result.exit_code == 0, result.output
    single, on_ray = (pd.read_parquet(tmp_path / n / "rollouts.parquet") for n in ("single", "ray"))
    assert on_ray[C.TOKEN_IDS].map(list).tolist() == single[C.TOKEN_IDS].map(list).tolist()
    np.testing.assert_array_equal(np.concatenate(on_ray[C.LOGPROBS].tolist()), np.concatenate(single[C.LOGPROBS].tolist()))
    summary = json.loads((tmp_path / "ray" / "summary.json").read_text())
    assert summary["runtime"]["ray"] is True and summary["runtime"]["ray_nodes"] == 1
    assert summary["stage_seconds"]["generate"] > 0  # the workers' timings reach the driver
    # a rerun finds every step cached and starts no task
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "ray" / "rollouts").glob("*.json")}
    assert runner.invoke(app, ["analyze", str(tiny_series), "--out", str(tmp_path / "ray"), *SMALL, "--ray"]).exit_code == 0
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "ray" / "rollouts").glob("*.json")} == before


def test_a_failed_task_names_its_checkpoint_and_the_others_are_kept(tiny_series, tmp_path):
    series = tmp_path / "series"
    shutil.copytree(tiny_series, series)
    config = json.loads((series / "checkpoint-2" / "config.json").read_text())
    config["intermediate_size"] = 96  # opens at discovery, fails to load in the task
    (series / "checkpoint-2" / "config.json").write_text(json.dumps(config))
    out = tmp_path / "out"
    result = runner.invoke(app, ["analyze", str(series), "--out", str(out), *SMALL, "--ray"])
    text = " ".join(result.output.split())
    assert result.exit_code == 1 and "checkpoint-2" in text and "failed on Ray" in text and "Traceback" not in text
    assert sorted(p.name for p in (out / "rollouts").glob("*.parquet")) == ["step_000001.parquet", "step_000003.parquet"]
    result = runner.invoke(app, ["analyze", str(series), "--out", str(out), *SMALL, "--ray", "--skip-bad"])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert [c["step"] for c in summary["checkpoints"]] == [1, 3]
    assert "checkpoint-2" in summary["skipped"][0]["path"]
