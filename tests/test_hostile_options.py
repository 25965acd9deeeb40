"""Options and limits (issue 16, classes 2, 3, 5 and 6): every number finite and in range before anything
loads, cache keys that tell every value apart, nothing that waits or grows without a bound."""

from __future__ import annotations

import dataclasses
import json
import shutil
import socket
import time
import typing

import pytest
from hostile import SMALL, TRAIN, refused, runner, small_log

from reasonlens.analysis.config import AnalyzeConfig
from reasonlens.cli import app
from reasonlens.options import THREADS, Range, cpu_count
from reasonlens.records import cache_key
from reasonlens.train.config import TrainConfig


@pytest.fixture
def no_model_loads(monkeypatch):
    from reasonlens.models import loading

    def forbidden(*args, **kwargs):
        raise AssertionError("a model was loaded before the bad input was reported")
    monkeypatch.setattr(loading, "load_model", forbidden)


# --- 2. every numeric option finite and in range, by one validator -----------------------------------


@pytest.mark.parametrize("config", [AnalyzeConfig, TrainConfig], ids=["analyze", "train-hicra"])
def test_every_numeric_option_has_a_range(config):
    hints = typing.get_type_hints(config)
    numeric = [f.name for f in dataclasses.fields(config) if hints[f.name] in (int, float, typing.Optional[int], typing.Optional[float])]
    assert numeric and all(f.metadata["range"] is not None for f in dataclasses.fields(config) if f.name in numeric)


def test_range_holds_and_describes_by_hand():
    fraction = Range(0, 1, low_open=True)
    # (0, 1]: 0 out, 1 in, nan/inf out, a bool is not a number
    assert [fraction.holds(v) for v in (0, 1, 0.5, float("nan"), float("inf"), True)] == \
        [False, True, True, False, False, False]
    assert fraction.describe() == "a finite number in (0, 1]"
    assert Range(1, integer=True).describe() == "an integer >= 1" and not Range(1, integer=True).holds(2.0)
    assert THREADS.top() == 4 * cpu_count()  # tied to this machine


@pytest.mark.parametrize("extra, said", [
    (["--alpha", "nan"], "alpha=nan (--alpha) is invalid; expected a finite number in [0, 100]"),
    (["--lr", "inf"], "lr=inf (--lr) is invalid; expected a finite number in (0, 1]"),
    (["--entropy-coef", "nan"], "entropy_coef=nan (--entropy-coef) is invalid"),
    (["--format-reward", "nan"], "format_reward=nan (--format-reward) is invalid"),
    (["--temperature", "-inf"], "temperature=-inf (--temperature) is invalid"),
    (["--epsilon-high", "nan"], "epsilon_high=nan (--epsilon-high) is invalid"),
    (["--beta", "inf"], "beta=inf (--beta) is invalid"),
    (["--threads", "1000000"], f"threads=1000000 (--threads) is invalid; expected an integer in [1, {4 * cpu_count()}]"),
    (["--num-prompts", "10000000"], "num_prompts=10000000 (--num-prompts) is invalid; expected an integer in "
                                    "[1, 10000]"),
    (["--seed", "-1"], "seed=-1 (--seed) is invalid; expected an integer in [0, 4294967295]"),
], ids=["alpha-nan", "lr-inf", "entropy-coef-nan", "format-reward-nan", "temperature-inf", "epsilon-high-nan",
        "beta-inf", "threads", "num-prompts", "seed"])
def test_train_non_finite_or_absurd_numbers_fail_before_the_run_folder(tmp_path, tiny_model_dir, extra, said):
    refused(["train-hicra", "--model", tiny_model_dir, "--out", tmp_path / "run", *TRAIN, *extra], names=[said])
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("extra, said", [
    (["--temperature", "nan"], "temperature=nan (--temperature) is invalid; expected a finite number in [0, 100]"),
    (["--top-p", "inf"], "top_p=inf (--top-p) is invalid"),
    (["--high-entropy-quantile", "nan"], "high_entropy_quantile=nan (--high-entropy-quantile) is invalid"),
    (["--threads", "1000000"], "threads=1000000 (--threads) is invalid"),
    (["--samples", "100000"], "samples=100000 (--samples) is invalid; expected an integer in [1, 1024]"),
    (["--max-new-tokens", "10000000"], "max_new_tokens=10000000 (--max-new-tokens) is invalid"),
    (["--batch-size", "0"], "batch_size=0 (--batch-size) is invalid"),
], ids=["temperature-nan", "top-p-inf", "quantile-nan", "threads", "samples", "tokens", "batch"])
def test_analyze_non_finite_or_absurd_numbers_fail_before_any_model(tmp_path, tiny_series, no_model_loads, extra,
                                                                   said):
    pairs = dict(zip(SMALL[::2], SMALL[1::2]))
    small = [a for option, value in pairs.items() if option not in extra for a in (option, value)] + ["--no-report"]
    refused(["analyze", tiny_series, "--out", tmp_path / "out", *small, *extra], names=[said], inputs=[tiny_series])
    assert not (tmp_path / "out").exists()


# --- 3. cache keys tell every value apart and carry the stage version --------------------------------


def test_cache_keys_tell_nan_inf_and_null_apart():
    keys = [cache_key("rollouts", 2, {"temperature": v}) for v in (float("nan"), float("inf"), float("-inf"), None)]
    assert len(set(keys)) == 4
    assert cache_key("rollouts", 2, {"t": 1.0}) != cache_key("rollouts", 3, {"t": 1.0})  # the stage version counts


def test_a_new_tag_version_retires_the_tag_cache(tmp_path, monkeypatch):
    from reasonlens.hierarchy import tag

    calls = []
    real = tag.tag_rollouts
    monkeypatch.setattr(tag, "tag_rollouts", lambda *a, **k: calls.append(1) or real(*a, **k))
    log, out = small_log(tmp_path), tmp_path / "out"
    args = ["analyze", "--rollouts", str(log), "--out", str(out), "--no-report"]
    for version in (tag.TAG_VERSION, tag.TAG_VERSION, tag.TAG_VERSION + 1):
        monkeypatch.setattr(tag, "TAG_VERSION", version)
        assert runner.invoke(app, args).exit_code == 0
    assert len(calls) == 2 * 2  # two steps tagged on the first run, reused on the second, retagged on the third


# --- 5. nothing waits or grows without a bound --------------------------------------------------------


def test_a_ray_address_that_does_not_answer_fails_in_seconds(tmp_path, tiny_series, no_model_loads):
    pytest.importorskip("ray")
    with socket.socket() as free:  # a port nothing listens on once this socket is closed
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    started = time.time()
    refused(["analyze", tiny_series, "--out", tmp_path / "out", "--ray-address", f"127.0.0.1:{port}", *SMALL],
            names=[f"--ray-address 127.0.0.1:{port}", "no Ray cluster answers", "within 10 s"])
    assert time.time() - started < 30


def test_an_absurd_problem_count_is_refused_before_building_any(tmp_path, tiny_series, no_model_loads):
    started = time.time()
    refused(["analyze", tiny_series, "--out", tmp_path / "out", *SMALL, "--num-prompts", "1000000000"],
            names=["num_prompts=1000000000 (--num-prompts) is invalid", "split a larger evaluation"])
    assert time.time() - started < 30


def test_a_chat_template_that_never_ends_is_stopped(tmp_path, tiny_model_dir, monkeypatch):
    from reasonlens.sources import tasks

    model = tmp_path / "looping-template"
    shutil.copytree(tiny_model_dir, model)
    (model / "chat_template.jinja").write_text("{% for a in range(100000) %}{% for b in range(100000) %}"
                                              "x{% endfor %}{% endfor %}")  # 10^10 iterations
    monkeypatch.setattr(tasks, "TEMPLATE_SECONDS", 1.0)
    started = time.time()
    refused(["analyze", model, "--out", tmp_path / "out", *SMALL], names=["chat template", "took over 1 s"],
            inputs=[model])
    assert time.time() - started < 120


# --- 6. every check before any model loads ------------------------------------------------------------


def test_the_last_checkpoints_custom_tokenizer_is_refused_before_any_model(tmp_path, tiny_series, no_model_loads):
    series = tmp_path / "series"
    shutil.copytree(tiny_series, series)
    last = sorted(series.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))[-1]
    config = json.loads((last / "tokenizer_config.json").read_text())
    config.update(auto_map={"AutoTokenizer": ["evil_tok.EvilTokenizer", None]}, tokenizer_class="EvilTokenizer")
    (last / "tokenizer_config.json").write_text(json.dumps(config))
    refused(["analyze", series, "--out", tmp_path / "out", *SMALL],
            names=[last.name, "tokenizer_config.json maps tokenizer class 'EvilTokenizer'", "--trust-remote-code"],
            inputs=[series])


def test_score_temperature_nan_fails_before_any_model(tmp_path, tiny_series, no_model_loads):
    refused(["analyze", tiny_series, "--out", tmp_path / "out", *SMALL, "--score-temperature", "nan"],
            names=["score_temperature=nan (--score-temperature) is invalid; expected a finite number in (0, 100]"])


# --- 9. reporters checked before training, not by TRL after the model loaded ---------------------------


@pytest.mark.parametrize("report_to, said", [
    ("bogus", "--report-to bogus: 'bogus' is not a reporter transformers knows"),
    ("wandb", "--report-to wandb needs"),
], ids=["unknown", "wandb-without-login"])
def test_report_to_is_checked_before_any_model(tmp_path, tiny_model_dir, monkeypatch, no_model_loads, report_to,
                                                said):
    if report_to == "wandb":
        pytest.importorskip("wandb", reason="the `trackers` extra")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc login either
    train = [a for a in TRAIN if a not in ("--report-to", "none")]
    refused(["train-hicra", "--model", tiny_model_dir, "--out", tmp_path / "run", *train, "--report-to", report_to],
            names=[said])
    assert not (tmp_path / "run").exists()
