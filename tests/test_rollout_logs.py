"""read_rollout_log on tiny files of every supported format, and its error messages."""

import json

import pandas as pd
import pytest

from reasonlens import columns as C
from reasonlens.errors import ReasonlensError
from reasonlens.sources.logs import read_rollout_log


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_generic_jsonl_fills_ids(tmp_path):
    rows = [{"step": 2, "prompt": "q1", "response": "a"}, {"step": 2, "prompt": "q1", "response": "b"},
            {"step": 1, "prompt": "q2", "response": "c", "reward": 1.0}]
    df = read_rollout_log(_jsonl(tmp_path / "log.jsonl", rows))
    assert df[C.STEP].tolist() == [1, 2, 2]  # sorted by step
    q1 = df[df[C.PROMPT] == "q1"]
    assert q1[C.PROMPT_ID].nunique() == 1 and q1[C.SAMPLE_ID].tolist() == [0, 1]
    assert df.loc[df[C.PROMPT] == "q2", C.REWARD].item() == 1.0


def test_same_prompt_same_id_across_steps(tmp_path):
    rows = [{"step": s, "prompt": "same", "response": "r"} for s in (0, 5)]
    df = read_rollout_log(_jsonl(tmp_path / "log.jsonl", rows))
    assert df[C.PROMPT_ID].nunique() == 1


def test_own_step_files_keep_token_arrays(tmp_path):
    for step in (1, 2):
        pd.DataFrame({C.STEP: [step], C.PROMPT_ID: ["p0"], C.SAMPLE_ID: [0], C.PROMPT: ["q"],
                      C.RESPONSE: ["so"], C.LOGPROBS: [[-0.1, -0.2]]}).to_parquet(tmp_path / f"step_{step:06d}.parquet")
    df = read_rollout_log(tmp_path)
    assert df[C.STEP].tolist() == [1, 2] and list(df[C.LOGPROBS].iloc[0]) == [-0.1, -0.2]


def test_own_analysis_dir_reads_rollouts_parquet(tmp_path):
    pd.DataFrame({C.STEP: [3], C.PROMPT: ["q"], C.RESPONSE: ["r"]}).to_parquet(tmp_path / "rollouts.parquet")
    assert read_rollout_log(tmp_path)[C.STEP].tolist() == [3]


def test_trl_completions(tmp_path):
    folder = tmp_path / "completions"
    folder.mkdir()
    for step in (10, 20):
        pd.DataFrame({"step": [str(step)] * 2, "prompt": ["q", "q"], "completion": ["x", "y"],
                      "accuracy_reward": [1.0, 0.0], "format_reward": [0.5, 0.5], "advantage": [0.5, -0.5]}
                     ).to_parquet(folder / f"completions_{step:05d}.parquet")
    df = read_rollout_log(tmp_path)
    assert df[C.STEP].tolist() == [10, 10, 20, 20]
    assert df[C.RESPONSE].tolist()[:2] == ["x", "y"]
    # reward = unweighted sum of the reward-function columns: 1 + 0.5, 0 + 0.5
    assert df[C.REWARD].tolist()[:2] == [1.5, 0.5]
    assert df[C.SAMPLE_ID].tolist()[:2] == [0, 1]


def test_trl_conversational_completion(tmp_path):
    pd.DataFrame({"step": [1], "prompt": [[{"role": "user", "content": "q?"}]],
                  "completion": [[{"role": "assistant", "content": "so 4"}]], "r": [1.0]}
                 ).to_parquet(tmp_path / "completions_00001.parquet")
    df = read_rollout_log(tmp_path / "completions_00001.parquet")
    assert (df[C.PROMPT].item(), df[C.RESPONSE].item()) == ("q?", "so 4")


def test_verl_dump(tmp_path):
    _jsonl(tmp_path / "3.jsonl", [{"input": "q", "output": "a", "gts": "4", "score": 1.0, "step": 3}])
    _jsonl(tmp_path / "12.jsonl", [{"input": "q", "output": "b", "gts": "4", "score": 0.0}])  # step from name
    df = read_rollout_log(tmp_path)
    assert df[C.STEP].tolist() == [3, 12]
    assert df[[C.PROMPT, C.RESPONSE, C.ANSWER, C.REWARD]].iloc[0].tolist() == ["q", "a", "4", 1.0]


def test_missing_file(tmp_path):
    with pytest.raises(ReasonlensError, match="does not exist"):
        read_rollout_log(tmp_path / "nope.jsonl")


def test_unknown_format(tmp_path):
    (tmp_path / "log.csv").write_text("step,prompt,response\n1,q,r\n")
    with pytest.raises(ReasonlensError, match=r"unknown rollout log format '\.csv'"):
        read_rollout_log(tmp_path / "log.csv")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReasonlensError, match="unknown format"):
        read_rollout_log(tmp_path / "empty")


def test_missing_column_names_file_and_column(tmp_path):
    path = _jsonl(tmp_path / "log.jsonl", [{"step": 1, "prompt": "q"}])
    with pytest.raises(ReasonlensError, match=r"log\.jsonl: missing column\(s\) \['response'\]"):
        read_rollout_log(path)


def test_bad_step(tmp_path):
    path = _jsonl(tmp_path / "log.jsonl", [{"step": 1, "prompt": "q", "response": "r"},
                                           {"step": "late", "prompt": "q", "response": "r"}])
    with pytest.raises(ReasonlensError, match=r"log\.jsonl line 2: step = 'late' is not a non-negative integer"):
        read_rollout_log(path)


def test_corrupt_parquet(tmp_path):
    (tmp_path / "x.parquet").write_bytes(b"not parquet")
    with pytest.raises(ReasonlensError, match=r"x\.parquet is not a readable Parquet file"):
        read_rollout_log(tmp_path / "x.parquet")


# --- strict parsing: property tests -------------------------------------------------------------

import math  # noqa: E402
import re  # noqa: E402

from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from reasonlens.sources.logs import parse_bool, parse_reward, parse_step  # noqa: E402


@given(st.integers(0, 10**12))
def test_parse_step_accepts_every_way_of_writing_a_step(n):
    assert parse_step(n) == parse_step(float(n)) == parse_step(str(n)) == parse_step(f" {n} ") == n


def _not_a_step_number(x: float) -> bool:
    return not (math.isfinite(x) and x.is_integer() and x >= 0)


@given(st.one_of(st.floats().filter(_not_a_step_number), st.integers(max_value=-1), st.booleans(), st.none(),
                 st.text().filter(lambda t: not re.fullmatch(r"\+?[0-9]+", t.strip()))))
def test_parse_step_refuses_everything_else(value):
    with pytest.raises(ValueError):
        parse_step(value)


@given(st.sampled_from([True, False, 0, 1, 0.0, 1.0, "true", "False", " TRUE ", "false"]))
def test_parse_bool_accepts_booleans_0_1_and_their_names(value):
    expected = value if isinstance(value, bool) else (bool(value) if not isinstance(value, str)
                                                      else value.strip().lower() == "true")
    assert parse_bool(value) is expected


@given(st.one_of(st.integers().filter(lambda i: i not in (0, 1)), st.floats().filter(lambda x: x not in (0, 1) and x == x),
                 st.text().filter(lambda t: t.strip().lower() not in ("true", "false"))))
def test_parse_bool_refuses_everything_else(value):
    with pytest.raises(ValueError):
        parse_bool(value)


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_parse_reward_keeps_finite_numbers(x):
    assert parse_reward(x) == x and parse_reward(repr(x)) == x


@given(st.one_of(st.booleans(), st.sampled_from([float("inf"), "-inf", "good", "", "1,5", "nan-ish"])))
def test_parse_reward_refuses_booleans_text_and_infinities(value):
    with pytest.raises(ValueError):
        parse_reward(value)


def test_missing_values_are_unknown_not_zero():
    assert parse_bool(None) is None and parse_bool(float("nan")) is None
    assert parse_reward(None) != parse_reward(None)  # NaN


_cell = st.one_of(st.sampled_from(["a", "b"]), st.integers(0, 1), st.none(), st.lists(st.integers(0, 1), max_size=1))


@given(st.lists(st.tuples(st.one_of(st.sampled_from(["so 4", "5"]), st.lists(st.integers(0, 1), max_size=1)),
                          _cell, _cell), min_size=1, max_size=8))
def test_repeated_rows_are_found_as_a_whole_table_comparison_finds_them(rows):
    """The repeat warning compares only rows whose response repeats (every row when responses are token lists);
    the same rows as comparing every row on every column that holds no list (the rule, on the whole table here)."""
    import warnings

    import numpy as np

    from reasonlens.sources.logs import _WHERE, _warn_duplicates

    table = pd.DataFrame({C.RESPONSE: pd.Series([r[0] for r in rows], dtype=object), "x": pd.Series([r[1] for r in rows], dtype=object),
                          "y": pd.Series([r[2] for r in rows], dtype=object), C.STEP: 0,
                          _WHERE: [f"line {i + 1}" for i in range(len(rows))]})
    scalar = [c for c in (C.RESPONSE, "x", "y", C.STEP)
              if not any(isinstance(v, (list, np.ndarray)) for v in table[c])]
    expected = int(table.astype({c: str for c in scalar}).duplicated(subset=scalar).sum())  # str: a list cell hashes
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _warn_duplicates(table)
    said = [str(w.message) for w in caught if "repeat an earlier row" in str(w.message)]
    assert len(said) == (1 if expected else 0)
    assert all(message.startswith(f"rollout log: {expected} row(s) repeat") for message in said)
