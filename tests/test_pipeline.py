"""analyze() end to end on a tiny 3-checkpoint series: tables, per-step cache, resume, invalidation."""

from __future__ import annotations

import dataclasses
import json

import pandas as pd
import pytest

from reasonlens import columns as C
from reasonlens.analysis import generate, run as pipeline
from reasonlens.analysis.config import AnalyzeConfig
from reasonlens.errors import ReasonlensError

SMALL = dict(task="basic_arithmetic", num_prompts=2, samples=2, max_new_tokens=8, batch_size=4,
             device="cpu", dtype="fp32", report=False)


def _config(path, out, **changes):
    return AnalyzeConfig(path=path, out=out, **{**SMALL, **changes})


@pytest.fixture(scope="module")
def analyzed(tiny_series, tmp_path_factory):
    out = tmp_path_factory.mktemp("analysis")
    pipeline.analyze(_config(tiny_series, out), progress=False)
    return out


def test_rollout_table_has_every_column_aligned(analyzed):
    rollouts = pd.read_parquet(analyzed / "rollouts.parquet")
    assert set(C.ROLLOUT_COLUMNS + [C.PLANNING_MASK]) <= set(rollouts.columns)
    assert sorted(rollouts[C.STEP].unique()) == [1, 2, 3]
    assert len(rollouts) == 3 * 2 * 2  # steps x prompts x samples
    for _, row in rollouts.iterrows():
        n = len(row[C.TOKEN_IDS])
        assert n == row[C.N_TOKENS] == len(row[C.LOGPROBS]) == len(row[C.ENTROPIES]) == len(row[C.PLANNING_MASK])
        assert all(lp <= 0 for lp in row[C.LOGPROBS])
        assert row[C.TRUNCATED] == (n == 8)


def test_summary_records_configuration_and_origin(analyzed):
    summary = json.loads((analyzed / "summary.json").read_text())
    assert summary["mode"] == "checkpoints"
    assert summary["config"]["samples"] == 2
    assert summary["lexicon"]["name"] == "paper" and len(summary["lexicon"]["hash"]) >= 8
    assert [c["step"] for c in summary["checkpoints"]] == [1, 2, 3]
    assert summary["tokens_scored"] == int(pd.read_parquet(analyzed / "rollouts.parquet")[C.N_TOKENS].sum())
    assert {"consolidation", "exploration"} <= set(summary["phases"])
    dynamics = pd.read_csv(analyzed / "dynamics.csv")
    assert list(dynamics["step"]) == [1, 2, 3]


def test_killed_run_resumes_without_redoing_finished_steps(tiny_series, tmp_path, monkeypatch):
    real = generate.rollout_checkpoint
    calls = []

    def dies_on_second(ckpt, *args, **kwargs):
        calls.append(ckpt.step)
        if len(calls) == 2:
            raise KeyboardInterrupt  # the user pressed Ctrl-C during checkpoint 2
        return real(ckpt, *args, **kwargs)

    monkeypatch.setattr(generate, "rollout_checkpoint", dies_on_second)
    with pytest.raises(KeyboardInterrupt):
        pipeline.analyze(_config(tiny_series, tmp_path), progress=False)
    done = sorted(p.name for p in (tmp_path / "rollouts").iterdir())
    assert done == ["step_000001.json", "step_000001.parquet"]  # nothing half-written
    first = pd.read_parquet(tmp_path / "rollouts" / "step_000001.parquet")

    calls.clear()
    monkeypatch.setattr(generate, "rollout_checkpoint", lambda ckpt, *a, **k: calls.append(ckpt.step) or real(ckpt, *a, **k))
    keyed, real_keys = [], generate.checkpoint_keys
    monkeypatch.setattr(generate, "checkpoint_keys", lambda *a, **k: keyed.append(1) or real_keys(*a, **k))
    pipeline.analyze(_config(tiny_series, tmp_path), progress=False)
    assert calls == [2, 3]
    assert keyed == [1]  # the keys (and the runtime) are computed once per run
    table = pd.read_parquet(tmp_path / "rollouts.parquet")
    pd.testing.assert_frame_equal(table[table[C.STEP] == 1][first.columns].reset_index(drop=True), first)

    calls.clear()  # a changed setting recomputes every step instead of mixing results
    pipeline.analyze(_config(tiny_series, tmp_path, max_new_tokens=6), progress=False)
    assert calls == [1, 2, 3]


@pytest.mark.slow  # a second full analyze re-proving what faster tests prove (review 12-06, 4.2)
def test_same_seed_gives_the_same_rollouts(tiny_series, analyzed, tmp_path):
    pipeline.analyze(_config(tiny_series, tmp_path), progress=False)
    a = pd.read_parquet(analyzed / "rollouts.parquet")
    b = pd.read_parquet(tmp_path / "rollouts.parquet")
    assert a[C.TOKEN_IDS].map(list).tolist() == b[C.TOKEN_IDS].map(list).tolist()


def test_config_rejects_bad_values(tmp_path):
    with pytest.raises(ReasonlensError, match="analyze needs an input"):
        AnalyzeConfig()
    with pytest.raises(ReasonlensError, match=r"samples=0 \(--samples\) is invalid; expected an integer in \[1, 1024\]"):
        AnalyzeConfig(path=tmp_path, samples=0)


def test_the_plan_is_frozen_and_the_record_sums_what_ran(tmp_path):
    from reasonlens.analysis.plan import make_plan
    from reasonlens.analysis.record import Record

    (tmp_path / "log.jsonl").write_text(json.dumps({"step": 0, "response": "x", "correct": True}) + "\n")
    plan = make_plan(AnalyzeConfig(rollouts=tmp_path / "log.jsonl", report=False))
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.mode = "eval"
    # by hand: 1.0 + 0.5 load, 2.0 score only in the second, skips concatenated, the set runtime wins
    first = Record(seconds={"load": 1.0}, skipped=[{"path": "a"}], graded="by hand")
    merged = first.merge(Record(runtime={"device": "cpu"}, seconds={"load": 0.5, "score": 2.0},
                                skipped=[{"path": "b"}]))
    assert merged.seconds == {"load": 1.5, "score": 2.0} and first.seconds == {"load": 1.0}
    assert merged.skipped == [{"path": "a"}, {"path": "b"}] and merged.runtime == {"device": "cpu"}
    assert merged.graded == "by hand" and merged.step_checkpoints is None
