"""`reasonlens train-hicra` through typer's CliRunner on the tiny model (LoRA, 2 steps)."""

from __future__ import annotations

import json
import sys

import pandas as pd
import pytest
from typer.testing import CliRunner

from reasonlens.analysis.config import AnalyzeConfig
from reasonlens.cli import app
from reasonlens.train.config import TrainConfig


@pytest.mark.slow
def test_train_hicra_cli_lora_run(tmp_path, tiny_model_dir):
    problems = tmp_path / "problems.jsonl"
    problems.write_text("\n".join(json.dumps({"question": f"What is {i} + 1?", "answer": str(i + 1)})
                                  for i in range(2)) + "\n")
    run = tmp_path / "run"
    result = CliRunner().invoke(app, [
        "train-hicra", "--model", str(tiny_model_dir), "--prompts-file", str(problems), "--out", str(run),
        "--steps", "2", "--prompts-per-step", "2", "--num-generations", "2", "--max-new-tokens", "8",
        "--save-every", "1", "--lora"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().splitlines()[-1] == str(run)
    assert "planning ratio" in result.output
    assert list(pd.read_csv(run / "metrics.csv")["step"]) == [1, 2]
    assert (run / "checkpoints" / "step_2" / "adapter_model.safetensors").exists()
    config = json.loads((run / "config.json").read_text())
    assert config["config"]["lora"] is True and config["lexicon"]["name"] == "paper"

    # `analyze RUN` reads the logged tokens, logprobs and entropies: nothing is regenerated
    result = CliRunner().invoke(app, ["analyze", str(run), "--no-report"])
    assert result.exit_code == 0, result.output
    summary = json.loads((run / "reasonlens" / "summary.json").read_text())
    assert summary["mode"] == "training-run" and summary["checkpoints"] == []
    logged = pd.concat(pd.read_parquet(p) for p in sorted((run / "rollouts").glob("step_*.parquet")))
    analyzed = pd.read_parquet(run / "reasonlens" / "rollouts.parquet")
    assert analyzed["token_ids"].map(list).tolist() == logged["token_ids"].map(list).tolist()
    assert analyzed["entropies"].map(list).tolist() == logged["entropies"].map(list).tolist()

    # `--eval-task` re-evaluates the saved adapters (on the run's base model) on held-out problems
    result = CliRunner().invoke(app, ["analyze", str(run), "--eval-task", "basic_arithmetic", "--out",
                                      str(tmp_path / "eval"), "--num-prompts", "2", "--samples", "2",
                                      "--max-new-tokens", "4", "--device", "cpu", "--no-report"])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text())
    assert [(c["step"], c["kind"]) for c in summary["checkpoints"]] == [(0, "base"), (1, "peft"), (2, "peft")]
    # held-out problems: the run trained with seed 0: drawn with seed 0 + 1000003, its questions removed
    assert summary["mode"] == "eval" and summary["problems"]["seed"] == 1_000_003
    assert summary["problems"]["held_out_of_run_seed"] == 0 and summary["problems"]["excluded_training_questions"] == 2


def test_train_hicra_cli_bad_method_is_one_red_line(tmp_path):
    result = CliRunner().invoke(app, ["train-hicra", "--out", str(tmp_path / "r"), "--method", "ppo"])
    assert result.exit_code == 1
    assert "method='ppo' is not known" in result.output


def test_cli_exposes_every_config_field():
    import dataclasses

    import click

    from reasonlens.cli import app as cli_app
    from reasonlens.analysis.config import AnalyzeConfig
    from reasonlens.train.config import TrainConfig

    commands = typer_commands(cli_app)
    from reasonlens.hierarchy.mine_config import MineConfig

    for name, config in (("analyze", AnalyzeConfig), ("train-hicra", TrainConfig), ("mine-grams", MineConfig)):
        params = {p.name: p for p in commands[name].params}
        for field in dataclasses.fields(config):
            assert field.name in params, f"{name} has no option for {config.__name__}.{field.name}"
            assert params[field.name].help == field.metadata["help"] or isinstance(params[field.name], click.Argument)
            if field.default is not None and field.name not in ("out", "rollouts"):
                assert params[field.name].default == field.default, field.name


def typer_commands(cli_app):
    import typer.main

    group = typer.main.get_command(cli_app)
    return {name: group.get_command(None, name) for name in group.list_commands(None)}


def test_cli_help_does_not_import_torch():
    import subprocess

    code = "import sys; from reasonlens.cli import app; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("config", ["AnalyzeConfig", "TrainConfig", "MineConfig"])
def test_help_of_a_config_lists_every_field_with_its_help(config):
    import dataclasses
    import pydoc

    from reasonlens.hierarchy.mine_config import MineConfig

    cls = {"AnalyzeConfig": AnalyzeConfig, "TrainConfig": TrainConfig, "MineConfig": MineConfig}[config]
    text = " ".join(w for w in pydoc.render_doc(cls, renderer=pydoc.plaintext).split() if w != "|")
    for field in dataclasses.fields(cls):
        assert f"{field.name} : " in text and " ".join(field.metadata["help"].split()) in text, field.name
