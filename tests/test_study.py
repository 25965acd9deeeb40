"""The study's machinery on a tiny model: a seeded 2-step study gives well-formed tables (never the long runs)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.slow  # the study's smoke mode: 6 training runs in a subprocess

STUDY = Path(__file__).resolve().parents[1] / "experiments" / "hicra_smollm2" / "study.py"


def test_smoke_study_writes_results_and_summary(tmp_path, tiny_model_dir):
    done = subprocess.run([sys.executable, str(STUDY), "--smoke", str(tiny_model_dir), "--root", str(tmp_path / "runs"),
                           "--results", str(tmp_path / "results")], capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1])["runs"] == 6
    results = pd.read_csv(tmp_path / "results" / "results.csv")
    assert {"method", "seed", "step", "reward", "accuracy", "planning_ratio", "sg_semantic_entropy",
            "rel_ppl_execution", "rel_ppl_planning", "entropy_planning", "entropy_execution"} <= set(results)
    # 3 methods x 2 seeds x (base + 2 checkpoints), the base shared within a seed
    assert len(results) == 3 * 2 * 3 and sorted(results["step"].unique()) == [0, 1, 2]
    base = results[results["step"] == 0].groupby("seed")["accuracy"].nunique()
    assert (base == 1).all()
    training = pd.read_csv(tmp_path / "results" / "training.csv")
    assert len(training) == 3 * 2 * 2 and set(training["step"]) == {1, 2}
    summary = pd.read_csv(tmp_path / "results" / "summary.csv")
    assert list(summary.columns) == ["method", "metric", "mean", "ci95_low", "ci95_high", "n_seeds"]
    assert set(summary["method"]) == {"grpo", "hicra (alpha 0.2)", "entropy-topk"}
    row = summary[(summary["method"] == "grpo") & (summary["metric"] == "final_accuracy")].iloc[0]
    assert row["n_seeds"] == 2 and row["ci95_low"] <= row["mean"] <= row["ci95_high"]
    text = (tmp_path / "results" / "RESULTS.md").read_text()
    assert "HICRA minus GRPO" in text and (tmp_path / "results" / "figures" / "curves.png").is_file()
    assert (tmp_path / "results" / "figures" / "compare_dynamics.png").is_file()
    compared = pd.read_csv(tmp_path / "runs" / "compare" / "comparison.csv")
    assert sorted(compared["run"].unique()) == sorted(f"{m}-s0" for m in ("grpo", "hicra-a0.2", "entropy-topk"))
    # the compute line sums each run's logged step times: never zero for runs that trained
    train_hours = float(text.split("Compute: ")[1].split(" h of training")[0])
    logged = sum(pd.read_csv(p)["step_time"].sum() for p in (tmp_path / "runs").glob("*/metrics.csv")) / 3600
    assert train_hours == round(logged, 2)
