"""`reasonlens analyze --bootstrap N` through the CLI on a text-only log: interval columns, their cost in
summary.json, 0 turns them off, a negative count is one clear error."""

from __future__ import annotations

import json

import pandas as pd
from typer.testing import CliRunner

from reasonlens.cli import app

runner = CliRunner()


def _log(tmp_path):
    log = tmp_path / "log.jsonl"
    rows = [{"step": s, "prompt": f"q{p}", "response": r, "correct": c}
            for s in (0, 10) for p in range(4)
            for r, c in (("But wait, let's try a different approach. \\boxed{4}", p % 2 == 0), ("It is 5.", False))]
    log.write_text("\n".join(json.dumps(r) for r in rows))
    return log


def test_bootstrap_columns_and_cost(tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(app, ["analyze", "--rollouts", str(_log(tmp_path)), "--out", str(out), "--bootstrap", "50",
                                 "--no-report"])
    assert result.exit_code == 0, result.output
    dynamics = pd.read_parquet(out / "dynamics.parquet")
    # accuracy 2/8 at each step; prompts q0, q2 have 1/2 correct, q1, q3 0/2: replicates range over 0..0.5
    assert dynamics["accuracy"].tolist() == [0.25, 0.25]
    assert (dynamics["accuracy_ci_low"] < 0.25).all() and (dynamics["accuracy_ci_high"] > 0.25).all()
    assert dynamics["accuracy_ci_high"].le(0.5).all() and dynamics["accuracy_ci_low"].ge(0.0).all()
    assert {"planning_ratio_ci_low", "sg_semantic_entropy_change_ci_high", "reflection_rate_ci_low"} <= set(dynamics)
    assert dynamics["entropy_all_ci_low"].isna().all()  # text only: no token probabilities, no interval
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config"]["bootstrap"] == 50
    assert 0 < summary["stage_seconds"]["bootstrap"] <= summary["stage_seconds"]["metrics"]

    import reasonlens  # the notebook API: the table has the columns, the figure draws their bands
    from matplotlib.collections import PolyCollection

    analysis = reasonlens.load_analysis(out)
    assert "accuracy_ci_high" in analysis.dynamics
    panels = [ax for ax in analysis.dynamics_figure().axes if ax.get_title()]
    assert all(any(isinstance(c, PolyCollection) for c in ax.collections) for ax in panels)


def test_bootstrap_zero_is_off_and_negative_is_an_error(tmp_path):
    log = _log(tmp_path)
    result = runner.invoke(app, ["analyze", "--rollouts", str(log), "--out", str(tmp_path / "a"), "--bootstrap", "0",
                                 "--no-report"])
    assert result.exit_code == 0, result.output
    assert not any(c.endswith("_ci_low") for c in pd.read_csv(tmp_path / "a" / "dynamics.csv").columns)
    result = runner.invoke(app, ["analyze", "--rollouts", str(log), "--out", str(tmp_path / "b"), "--bootstrap", "-1"])
    assert result.exit_code == 1 and "bootstrap=-1 (--bootstrap) is invalid; expected an integer in [0, 100000]" in " ".join(result.output.split())
