"""Hostile and broken inputs to every command: a clear error, no traceback, no partial output, inputs untouched.

Each case runs the CLI in-process and asserts the exit code, that the message names the input, that no
traceback is printed, that the output folder holds no half-written file (nothing under a temporary
name, no summary.json of a failed run) and that every input file is byte-for-byte unchanged.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from hostile import SMALL, TRAIN, refused, runner, small_log, write_jsonl

from reasonlens import cli
from reasonlens.cli import app
from reasonlens.folders import writing
from reasonlens.train.resume import RUN_FILES

# --- 1. code shipped inside a checkpoint is never run -------------------------------------------------


@pytest.fixture
def remote_code_model(tmp_path, tiny_model_dir):
    """The tiny model, re-labelled as an unknown architecture whose own *.py writes a marker when run."""
    folder = tmp_path / "evil-model"
    shutil.copytree(tiny_model_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    config.update(model_type="evilnet", auto_map={"AutoConfig": "evil.EvilConfig",
                                                  "AutoModelForCausalLM": "evil.EvilModel"})
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "evil.py").write_text(f"open({str(tmp_path / 'RAN')!r}, 'w').write('code ran')\n")
    return folder


@pytest.fixture
def remote_code_tokenizer(tmp_path, tiny_tokenizer_dir):
    folder = tmp_path / "evil-tokenizer"
    shutil.copytree(tiny_tokenizer_dir, folder)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config.update(auto_map={"AutoTokenizer": ["evil_tok.EvilTokenizer", None]}, tokenizer_class="EvilTokenizer")
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    (folder / "evil_tok.py").write_text(f"open({str(tmp_path / 'RAN')!r}, 'w').write('code ran')\n")
    return folder


def test_analyze_refuses_a_checkpoint_with_its_own_code_even_when_yes_is_piped(tmp_path, remote_code_model):
    text = refused(["analyze", remote_code_model, "--out", tmp_path / "out", *SMALL], stdin="y\n" * 20,
                   names=[remote_code_model.name, "--trust-remote-code"], inputs=[remote_code_model])
    assert "auto_map" in text and not (tmp_path / "RAN").exists()


def test_analyze_base_with_its_own_code(tmp_path, tiny_series, remote_code_model):
    refused(["analyze", tiny_series, "--base", remote_code_model, "--out", tmp_path / "out", *SMALL],
            stdin="y\n" * 20, names=["--trust-remote-code"], inputs=[remote_code_model])
    assert not (tmp_path / "RAN").exists()


def test_tag_refuses_a_tokenizer_with_its_own_code(tmp_path, remote_code_tokenizer):
    refused(["tag", "so", "--tokenizer", remote_code_tokenizer], stdin="y\n" * 20,
            names=[remote_code_tokenizer, "--trust-remote-code"], inputs=[remote_code_tokenizer])
    assert not (tmp_path / "RAN").exists()


def test_text_only_tokenizer_with_its_own_code(tmp_path, remote_code_tokenizer):
    log = small_log(tmp_path)
    refused(["analyze", "--rollouts", log, "--tokenizer", remote_code_tokenizer, "--out", tmp_path / "out"],
            stdin="y\n" * 20, names=["--trust-remote-code"], inputs=[log, remote_code_tokenizer], out=tmp_path / "out")
    assert not (tmp_path / "RAN").exists()


def test_train_refuses_a_model_with_its_own_code_before_creating_the_run(tmp_path, remote_code_model):
    refused(["train-hicra", "--model", remote_code_model, "--out", tmp_path / "run", *TRAIN],
            names=[remote_code_model.name, "--trust-remote-code"], inputs=[remote_code_model])
    assert not (tmp_path / "run").exists() and not (tmp_path / "RAN").exists()


# --- 2. malformed values are refused, never turned into plausible numbers ------------------------------


def test_string_false_counts_as_false(tmp_path):
    log = write_jsonl(tmp_path / "log.jsonl", [{"step": 0, "prompt": "q", "response": "4", "correct": "false",
                                           "reward": 0.0}] * 2)
    result = runner.invoke(app, ["analyze", "--rollouts", str(log), "--out", str(tmp_path / "out"), "--no-report"])
    assert result.exit_code == 0, result.output
    assert pd.read_csv(tmp_path / "out" / "dynamics.csv")["accuracy"].tolist() == [0.0]


@pytest.mark.parametrize("field, value, said", [
    ("correct", "maybe", "correct = 'maybe' is not a boolean"),
    ("correct", 2, "correct = 2 is not a boolean"),
    ("step", 0.4, "step = 0.4 is not a non-negative integer"),
    ("step", True, "step = True is a boolean"),
    ("step", None, "step = None is missing"),
    ("step", -3, "step = -3 is not a non-negative integer"),
    ("reward", "good", "reward = 'good' is not a number"),
    ("reward", True, "reward = True is a boolean"),
    ("truncated", "sometimes", "truncated = 'sometimes' is not a boolean"),
    ("n_tokens", 2.5, "n_tokens = 2.5 is not a non-negative integer"),
], ids=["correct-word", "correct-2", "step-fraction", "step-bool", "step-null", "step-negative", "reward-text",
        "reward-bool", "truncated-word", "n_tokens-fraction"])
def test_malformed_values_name_file_line_and_value(tmp_path, field, value, said):
    log = small_log(tmp_path, **{field: value})
    refused(["analyze", "--rollouts", log, "--out", tmp_path / "out"], names=[log, "line 2", said],
            inputs=[log], out=tmp_path / "out")


def test_duplicate_rows_are_kept_with_a_warning(tmp_path):
    row = {"step": 0, "prompt": "q", "response": "so 4", "correct": True}
    log = write_jsonl(tmp_path / "log.jsonl", [row, row, {**row, "response": "5", "correct": False}])
    result = runner.invoke(app, ["analyze", "--rollouts", str(log), "--out", str(tmp_path / "out"), "--no-report"])
    assert result.exit_code == 0, result.output
    assert "warning:" in result.output and "repeat an earlier row exactly (e.g. line 2" in " ".join(result.output.split())


def test_mine_grams_never_mines_responses_marked_false(tmp_path):
    log = write_jsonl(tmp_path / "r.jsonl", [{"response": "let me check the sum", "correct": "false"}] * 5)
    refused(["mine-grams", log, "--out", tmp_path / "m.txt"], names=[log, "no correct responses"], inputs=[log])
    assert not (tmp_path / "m.txt").exists()


def test_mine_grams_malformed_label(tmp_path):
    log = write_jsonl(tmp_path / "r.jsonl", [{"response": "a b c", "correct": True}, {"response": "d e f", "correct": "yes"}])
    refused(["mine-grams", log, "--out", tmp_path / "m.txt"], names=[log, "line 2", "correct = 'yes'"], inputs=[log])


@pytest.mark.parametrize("content, said", [
    ('{"step": 0, "prompt": "q", "response": "r"}\n["an", "array"]\n', "line 2 is a JSON list"),
    ('{"step": 0, "prompt": "q", "response": "r"}\n{"step": 1, "prompt": "q", "resp', "line 2 is not valid JSON"),
], ids=["array-line", "truncated-line"])
def test_broken_jsonl_lines(tmp_path, content, said):
    log = tmp_path / "log.jsonl"
    log.write_text(content, encoding="utf-8")
    text = refused(["analyze", "--rollouts", log, "--out", tmp_path / "out"], names=[log, said], inputs=[log])
    assert "byte" not in text.split(said)[1][:40]  # a line number, not a byte offset


def test_non_utf8_log(tmp_path):
    log = tmp_path / "log.jsonl"
    log.write_bytes(b'{"step": 0, "prompt": "q", "response": "caf\xe9"}\n')
    refused(["analyze", "--rollouts", log, "--out", tmp_path / "out"], names=[log, "not UTF-8"], inputs=[log])


def test_truncated_parquet_log(tmp_path):
    log = tmp_path / "log.parquet"
    pd.DataFrame({"step": [0], "prompt": ["q"], "response": ["r"]}).to_parquet(log)
    log.write_bytes(log.read_bytes()[:40])
    refused(["analyze", "--rollouts", log, "--out", tmp_path / "out"], names=[log, "not a readable Parquet"],
            inputs=[log])


# --- 3. no dead end after a crash --------------------------------------------------------------------


@pytest.mark.slow
def test_a_run_killed_before_its_first_checkpoint_restarts(tmp_path, tiny_model_dir):
    run = tmp_path / "run"
    (run / "rollouts").mkdir(parents=True)
    (run / "rollouts" / "step_000001.parquet").write_bytes(b"half")
    (run / "metrics.csv").write_text("step,loss\n")
    (run / "trl" / "checkpoint-1").mkdir(parents=True)  # cut short: no trainer_state.json, no weights
    with writing(run, kind="run", covers=RUN_FILES):  # the marker the killed run wrote first
        pass
    for resume in ([], ["--resume"]):
        result = runner.invoke(app, ["train-hicra", "--model", str(tiny_model_dir), "--task", "basic_arithmetic",
                                     "--out", str(run), *TRAIN, *resume])
        assert result.exit_code == 0, result.output
        assert "warning:" in result.output and "Traceback" not in result.output
        assert list(pd.read_csv(run / "metrics.csv")["step"]) == [1]
        shutil.rmtree(run / "trl")  # the next pass again finds a run with no checkpoint


def test_vllm_without_vllm_fails_before_the_run_folder_exists(tmp_path, tiny_model_dir):
    pytest.importorskip("reasonlens")  # always present; vLLM is absent from the test environment
    import importlib.util

    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vLLM is installed here")
    refused(["train-hicra", "--model", tiny_model_dir, "--out", tmp_path / "run", "--vllm", "colocate", *TRAIN],
            names=["--vllm colocate", "--vllm off"])
    assert not (tmp_path / "run").exists()


# --- 4. broken outputs and resources are one clear line -----------------------------------------------


@pytest.mark.parametrize("command", ["analyze", "train-hicra", "compare", "mine-grams"])
def test_out_is_an_existing_file(tmp_path, command, tiny_model_dir):
    out = tmp_path / "taken.txt"
    out.write_text("mine")
    log = small_log(tmp_path)
    args = {"analyze": ["analyze", "--rollouts", log, "--out", out],
            "train-hicra": ["train-hicra", "--model", tiny_model_dir, "--out", out, *TRAIN],
            "compare": ["compare", tmp_path, tmp_path, "--out", out],
            "mine-grams": ["mine-grams", log, "--out", tmp_path]}[command]
    refused(args, names=[out if command != "mine-grams" else tmp_path], inputs=[out, log])


@pytest.mark.parametrize("out", ["under-a-file/x", "/proc/reasonlens-test"], ids=["parent-is-a-file", "read-only"])
def test_out_not_writable(tmp_path, out):
    (tmp_path / "under-a-file").write_text("x")
    out = tmp_path / out if not out.startswith("/") else Path(out)
    log = small_log(tmp_path)
    refused(["analyze", "--rollouts", log, "--out", out], names=[out, "not writable"], inputs=[log])


def test_full_disk_is_one_line_and_leaves_no_summary(tmp_path, monkeypatch):
    import errno

    from reasonlens.analysis import stream

    def no_space(self, part, added):  # a text log's rows are written step by step as the second pass ends each
        raise OSError(errno.ENOSPC, "No space left on device", str(self.path))
    monkeypatch.setattr(stream.RowsWriter, "write", no_space)
    log = small_log(tmp_path)
    refused(["analyze", "--rollouts", log, "--out", tmp_path / "out"],
            names=["No space left on device", tmp_path / "out" / "parts" / "rollouts.parquet"], inputs=[log],
            out=tmp_path / "out")
    assert not (tmp_path / "out" / "rollouts.parquet").exists()


def test_config_and_weights_of_different_sizes(tmp_path, tiny_model_dir):
    folder = tmp_path / "mismatched"
    shutil.copytree(tiny_model_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    config["intermediate_size"] = 96  # the weights were saved with 128
    (folder / "config.json").write_text(json.dumps(config))
    refused(["analyze", folder, "--out", tmp_path / "out", *SMALL], names=[folder], inputs=[folder],
            out=tmp_path / "out")


def test_tokenizer_larger_than_the_vocabulary(tmp_path, tiny_model_dir):
    folder = tmp_path / "small-vocab"
    shutil.copytree(tiny_model_dir, folder)
    from safetensors.torch import load_file, save_file

    weights = load_file(str(folder / "model.safetensors"))
    key = next(k for k in weights if "embed_tokens" in k)
    weights[key] = weights[key][:100].clone()
    weights = {k: v for k, v in weights.items() if "lm_head" not in k}
    save_file(weights, str(folder / "model.safetensors"), metadata={"format": "pt"})
    config = json.loads((folder / "config.json").read_text())
    config["vocab_size"] = 100
    (folder / "config.json").write_text(json.dumps(config))
    refused(["analyze", folder, "--out", tmp_path / "out", *SMALL], names=[folder, "tokenizer has"],
            inputs=[folder], out=tmp_path / "out")


def test_compare_truncated_table(tmp_path):
    from report_fixtures import make_analysis_dir

    a, b = make_analysis_dir(tmp_path / "a"), make_analysis_dir(tmp_path / "b")
    (b / "dynamics.parquet").write_bytes((b / "dynamics.parquet").read_bytes()[:50])
    refused(["compare", a, b, "--out", tmp_path / "cmp"], names=[b / "dynamics.parquet", "unreadable"],
            inputs=[a, b])


def test_compare_broken_summary(tmp_path):
    from report_fixtures import make_analysis_dir

    a, b = make_analysis_dir(tmp_path / "a"), make_analysis_dir(tmp_path / "b")
    (b / "summary.json").write_text("{oops")
    refused(["compare", a, b, "--out", tmp_path / "cmp"], names=[b / "summary.json", "not valid JSON"], inputs=[a, b])


def test_compare_edited_lexicon(tmp_path):
    from report_fixtures import make_analysis_dir

    a, b = make_analysis_dir(tmp_path / "a"), make_analysis_dir(tmp_path / "b")
    (b / "lexicon.txt").write_text("something else\n")
    refused(["compare", a, b, "--out", tmp_path / "cmp"], names=[b / "lexicon.txt", "edited"], inputs=[a, b])


def test_compare_needs_matching_labels(tmp_path):
    from report_fixtures import make_analysis_dir

    a, b = make_analysis_dir(tmp_path / "a"), make_analysis_dir(tmp_path / "b")
    refused(["compare", a, b, "--out", tmp_path / "cmp", "--label", "one"], names=["1 labels for 2 analyses"],
            inputs=[a, b])


def test_mine_grams_truncated_parquet(tmp_path):
    path = tmp_path / "rollouts.parquet"
    pd.DataFrame({"response": ["a b c"], "correct": [True]}).to_parquet(path)
    path.write_bytes(path.read_bytes()[:30])
    refused(["mine-grams", path, "--out", tmp_path / "m.txt"], names=[path, "not a readable Parquet"], inputs=[path])


@pytest.mark.parametrize("case", ["file-not-utf8", "lexicon-not-utf8", "lexicon-empty", "lexicon-missing"])
def test_tag_bad_files(tmp_path, case):
    bad = tmp_path / "bad.txt"
    {"file-not-utf8": lambda: bad.write_bytes(b"caf\xe9"), "lexicon-not-utf8": lambda: bad.write_bytes(b"\xff\xfe"),
     "lexicon-empty": lambda: bad.write_text("# only a comment\n"), "lexicon-missing": lambda: None}[case]()
    args = ["tag", "--file", bad] if case == "file-not-utf8" else ["tag", "so", "--lexicon", bad]
    said = {"file-not-utf8": "not UTF-8", "lexicon-not-utf8": "not UTF-8", "lexicon-empty": "has no phrases",
            "lexicon-missing": "does not exist"}[case]
    refused(args, names=[bad, said], inputs=[bad] if bad.exists() else [])


# --- 5. every input and option is checked before the first model loads --------------------------------


@pytest.fixture
def no_model_loads(monkeypatch):
    """Fail the test if any model is loaded: the error must come first."""
    from reasonlens.models import loading

    def forbidden(*args, **kwargs):
        raise AssertionError("a model was loaded before the bad input was reported")
    monkeypatch.setattr(loading, "load_model", forbidden)


@pytest.mark.parametrize("extra, said", [
    (["--lexicon", "MISSING"], "does not exist"),
    (["--lexicon", "EMPTY"], "has no phrases"),
    (["--task", "no_such_task"], "unknown task 'no_such_task'"),
    (["--task", "basic_arithmetic:max_terms"], "is not KEY=VALUE"),
    (["--prompts-file", "ARRAY"], "line 1 is a JSON list"),
    (["--prompts-file", "NOT_UTF8"], "not UTF-8"),
    (["--device", "cuda"], "torch sees no CUDA GPU"),
    (["--dtype", "int8"], "dtype='int8' is not supported"),
    (["--samples", "0"], "samples=0 (--samples) is invalid; expected an integer in [1, 1024]"),
    (["--top-p", "2"], "top_p=2.0 (--top-p) is invalid; expected a finite number in (0, 1]"),
    (["--scoring", "magic"], "scoring='magic' is not known"),
], ids=["lexicon-missing", "lexicon-empty", "unknown-task", "task-option", "prompts-array", "prompts-not-utf8",
        "no-gpu", "dtype", "samples", "top-p", "scoring"])
def test_analyze_bad_options_fail_before_any_model(tmp_path, tiny_series, no_model_loads, extra, said):
    import torch

    if "cuda" in extra and torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    files = {"MISSING": tmp_path / "missing.txt", "EMPTY": tmp_path / "empty.txt", "ARRAY": tmp_path / "p.jsonl",
             "NOT_UTF8": tmp_path / "latin1.jsonl"}
    files["EMPTY"].write_text("# nothing\n")
    files["ARRAY"].write_text('["not", "an", "object"]\n')
    files["NOT_UTF8"].write_bytes(b'{"question": "caf\xe9", "answer": "1"}\n')
    extra = [str(files.get(x, x)) for x in extra]
    pairs = dict(zip(SMALL[::2], SMALL[1::2]))  # SMALL is option/value pairs: the bad option replaces its own
    small = [a for option, value in pairs.items() if option not in extra for a in (option, value)] + ["--no-report"]
    refused(["analyze", tiny_series, "--out", tmp_path / "out", *small, *extra], names=[said],
            inputs=[tiny_series], out=tmp_path / "out")
    assert not (tmp_path / "out" / "rollouts").exists()  # nothing was generated


@pytest.mark.parametrize("extra, said", [
    (["--lexicon", "MISSING"], "does not exist"),
    (["--model", "MISSING"], "does not exist"),
    (["--num-generations", "1"], "num_generations=1 (--num-generations) is invalid; expected an integer in [2, 1024] (a group needs two"),
    (["--task", "no_such_task"], "unknown task"),
], ids=["lexicon", "model", "group", "task"])
def test_train_bad_options_fail_before_the_run_folder(tmp_path, tiny_model_dir, extra, said):
    extra = [str(tmp_path / "missing") if x == "MISSING" else x for x in extra]
    model = [] if "--model" in extra else ["--model", str(tiny_model_dir)]
    refused(["train-hicra", *model, "--out", tmp_path / "run", *TRAIN, *extra], names=[said])
    assert not (tmp_path / "run").exists()


def test_peft_adapter_with_a_missing_base_is_named_at_discovery(tmp_path, tiny_model_dir, no_model_loads):
    adapter = tmp_path / "series" / "checkpoint-1"
    adapter.mkdir(parents=True)
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(tmp_path / "gone"),
                                                             "peft_type": "LORA"}))
    (adapter / "adapter_model.safetensors").write_bytes(b"")
    refused(["analyze", tmp_path / "series", "--out", tmp_path / "out", *SMALL],
            names=["checkpoint-1", str(tmp_path / "gone"), "--base"], inputs=[tmp_path / "series"])


def test_eval_task_on_something_that_is_not_a_run(tmp_path, tiny_series, no_model_loads):
    refused(["analyze", tiny_series, "--eval-task", "basic_arithmetic", "--out", tmp_path / "out"],
            names=[tiny_series, "not one"], inputs=[tiny_series])


def test_training_run_with_a_corrupt_config(tmp_path):
    run = tmp_path / "run"
    (run / "rollouts").mkdir(parents=True)
    pd.DataFrame({"step": [1], "prompt": ["q"], "response": ["r"]}).to_parquet(run / "rollouts" / "step_000001.parquet")
    (run / "config.json").write_text("{not json")
    refused(["analyze", run], names=[run / "config.json", "not readable JSON"], inputs=[run])


# --- 6. inputs are never overwritten -----------------------------------------------------------------


def test_out_next_to_the_input_log_refuses_to_overwrite_it(tmp_path):
    log = tmp_path / "rollouts.parquet"
    pd.DataFrame({"step": [0], "prompt": ["q"], "response": ["so"], "token_ids": [[1, 2]]}).to_parquet(log)
    refused(["analyze", "--rollouts", log, "--out", tmp_path], names=["would overwrite the input", log], inputs=[log])


def test_run_logs_as_text_with_out_on_the_run(tmp_path):
    run = tmp_path / "run"
    (run / "rollouts").mkdir(parents=True)
    pd.DataFrame({"step": [1], "prompt": ["q"], "response": ["r"]}).to_parquet(run / "rollouts" / "step_000001.parquet")
    refused(["analyze", "--rollouts", run / "rollouts", "--out", run], names=["would overwrite the input"],
            inputs=[run])


def test_mine_grams_out_over_its_input(tmp_path):
    log = write_jsonl(tmp_path / "r.jsonl", [{"response": "a b c", "correct": True}])
    refused(["mine-grams", log, "--out", log], names=["would overwrite the input"], inputs=[log])


# --- 7. the cache is reused for a model folder analysed into itself ----------------------------------


def test_default_out_inside_a_model_folder_reuses_its_cache(tmp_path, tiny_model_dir, monkeypatch):
    from reasonlens.analysis import generate as rollouts

    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    calls = []
    real = rollouts.rollout_checkpoint
    monkeypatch.setattr(rollouts, "rollout_checkpoint", lambda *a, **k: calls.append(1) or real(*a, **k))
    for _ in range(2):
        result = runner.invoke(app, ["analyze", str(model), *SMALL])
        assert result.exit_code == 0, result.output
    assert calls == [1] and (model / "reasonlens" / "summary.json").exists()


# --- 8. messages that do not mislead ---------------------------------------------------------------


def test_paths_with_console_markup_are_printed_literally(tmp_path):
    missing = tmp_path / "[bold red]not-here[/]"
    result = runner.invoke(app, ["analyze", str(missing)])
    assert result.exit_code == 1 and "[bold red]not-here[/]" in result.output


def test_unexpected_errors_are_one_line_and_debug_shows_the_traceback(tmp_path, monkeypatch):
    from reasonlens.analysis import run as pipeline

    def boom(config, **kwargs):
        raise ZeroDivisionError("division by zero")
    monkeypatch.setattr(pipeline, "analyze", boom)
    log = small_log(tmp_path)
    text = refused(["analyze", "--rollouts", log], names=["unexpected ZeroDivisionError", "--debug"], inputs=[log])
    assert text.count("error:") == 1
    monkeypatch.setenv(cli._DEBUG, "1")
    result = runner.invoke(app, ["analyze", "--rollouts", str(log)])
    assert result.exit_code != 0 and isinstance(result.exception, ZeroDivisionError)
