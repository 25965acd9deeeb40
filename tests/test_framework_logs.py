"""Each RL framework's rollout log, written in that framework's exact record schema, read as a rollout table;
plus a hostile case per format (cut lines, missing STABLE, mismatched arrays, a pickle that would run code)."""

from pathlib import Path

import pytest

from framework_logs import (areal_record, jsonl, nemo_record, prime_rl_record, roll_dump, slime_sample,
                            verl_rows)
from reasonlens import columns as C
from reasonlens.errors import ReasonlensError
from reasonlens.sources.logs import detect_layout, read_rollout_log

PROMPTS = ["What is 3+4?", "What is 2*6?"]


# --- verl: three kinds of dump ------------------------------------------------------------------


def test_verl_v1_dump_links_prompts_across_steps_and_keeps_groups(tmp_path):
    for step in (10, 20):
        jsonl(tmp_path / f"{step}.jsonl", verl_rows(step, PROMPTS, [["so 7", "8"], ["12", "so 12"]],
                                                    [1.0, 0.0, 1.0, 1.0], ["7", "12"], kind="v1"))
    df = read_rollout_log(tmp_path)
    assert detect_layout(tmp_path).framework == "verl (v1 dump)"
    assert df[C.STEP].tolist() == [10] * 4 + [20] * 4
    # the uuid differs between steps, the prompt id (hash of the input text) does not
    by_step = df.groupby(C.STEP)
    assert set(by_step.get_group(10)[C.PROMPT_ID]) == set(by_step.get_group(20)[C.PROMPT_ID])
    assert set(by_step.get_group(10)["group_id"]).isdisjoint(by_step.get_group(20)["group_id"])
    # one group per prompt within a step, its members numbered 0, 1
    assert (df.groupby([C.STEP, C.PROMPT_ID])["group_id"].nunique() == 1).all()
    assert sorted(df[C.SAMPLE_ID].tolist()) == [0, 0, 0, 0, 1, 1, 1, 1]
    assert dict(zip(df[C.RESPONSE], df[C.REWARD])) == {"so 7": 1.0, "8": 0.0, "12": 1.0, "so 12": 1.0}
    assert C.CORRECT not in df  # the v1 trainer logs no reward extras, so no verdict


def test_verl_legacy_dump_keeps_reward_extras_as_columns(tmp_path):
    jsonl(tmp_path / "4.jsonl", verl_rows(4, PROMPTS[:1], [["so 7", "8"]], [1.0, -1.0], ["7"], kind="legacy"))
    layout = detect_layout(tmp_path)
    df = read_rollout_log(tmp_path)
    assert layout.framework == "verl (legacy dump)" and "acc" in layout.correct_from
    assert df[C.CORRECT].tolist() == [True, False]  # "True"/"False" (default=str) parsed as booleans
    assert df[C.REWARD].tolist() == [1.0, -1.0] and df[C.PRED].tolist() == ["7", "8"]
    assert df["request_id"].tolist() == ["req-0", "req-1"]


def test_verl_validation_dump_step0_is_the_base_model(tmp_path):
    for step in (0, 5):
        jsonl(tmp_path / f"{step}.jsonl", verl_rows(step, PROMPTS, [["7"], ["13"]], [1.0, 0.0], ["7", "12"],
                                                    kind="validation"))
    df = read_rollout_log(tmp_path)
    assert detect_layout(tmp_path).framework == "verl (validation dump)"
    assert df[C.STEP].min() == 0
    assert "reward" in df and "verl_reward" not in df  # validation 'reward' repeats 'score': one column
    assert dict(zip(df[C.RESPONSE], df[C.CORRECT])) == {"7": True, "13": False}


def test_verl_cut_dump_names_file_and_line(tmp_path):
    path = jsonl(tmp_path / "7.jsonl", verl_rows(7, PROMPTS, [["so 7"], ["12"]], [1.0, 0.0], ["7", "12"], kind="v1"))
    path.write_text(path.read_text()[:-25])  # the writer's thread stopped mid-line
    with pytest.raises(ReasonlensError, match=r"7\.jsonl line 2 is not valid JSON.*truncated"):
        read_rollout_log(tmp_path)


# --- prime-rl token exports -----------------------------------------------------------------------


def _prime_step(root: Path, step: int, ranks: list[list[dict]], stable: bool = True) -> Path:
    folder = root / "token_exports" / f"step_{step}"
    for rank, records in enumerate(ranks):
        jsonl(folder / f"rank_{rank}.jsonl", records)
    if stable:
        (folder / "STABLE").touch()
    return folder


def test_prime_rl_export_joins_ranks_and_keeps_completion_scores(tmp_path):
    a = prime_rl_record(3, 0, 0, [1, 2, 3], [7, 8], [-0.1, -0.2], [0.5, 0.6], 1.0, vocab=400)
    b = prime_rl_record(3, 1, 0, [1, 2, 3], [9], [-0.3], [0.7], -1.0, vocab=400)
    _prime_step(tmp_path, 3, [[a], [b]])
    df = read_rollout_log(tmp_path)
    assert len(df) == 2 and df[C.STEP].tolist() == [3, 3]
    # only the loss-masked (completion) positions, exactly as exported: no shift
    assert sorted(map(tuple, df[C.TOKEN_IDS])) == [(7, 8), (9,)]
    row = df[df[C.N_TOKENS] == 2].iloc[0]
    assert list(row[C.LOGPROBS]) == [-0.1, -0.2] and list(row[C.ENTROPIES]) == [0.5, 0.6]
    assert list(row[C.ADVANTAGES]) == [1.0, 1.0] and list(row[C.PROMPT_TOKEN_IDS]) == [1, 2, 3]
    assert df[C.PROMPT_ID].nunique() == 1  # the same prompt tokens on both ranks: one prompt, samples 0 and 1
    assert sorted(df[C.SAMPLE_ID]) == [0, 1]
    assert detect_layout(tmp_path).needs_tokenizer


def test_prime_rl_export_without_completion_tokens_is_refused(tmp_path):
    rec = prime_rl_record(1, 0, 0, [1, 2], [5], [-0.1], [0.2], 0.0, vocab=400)
    _prime_step(tmp_path, 1, [[dict(rec, loss_mask=[False] * 3)]])
    with pytest.raises(ReasonlensError, match="holds no response"):
        read_rollout_log(tmp_path)


def test_prime_rl_step_without_stable_is_skipped_with_a_message(tmp_path):
    rec = prime_rl_record(1, 0, 0, [1, 2], [5], [-0.1], [0.2], 0.0, vocab=400)
    _prime_step(tmp_path, 1, [[rec]])
    _prime_step(tmp_path, 2, [[rec]], stable=False)
    with pytest.warns(UserWarning, match=r"step\(s\) \[2\] have no STABLE marker"):
        df = read_rollout_log(tmp_path)
    assert df[C.STEP].tolist() == [1]


def test_prime_rl_without_any_stable_step_is_refused(tmp_path):
    _prime_step(tmp_path, 2, [[prime_rl_record(2, 0, 0, [1], [5], [-0.1], [0.2], 0.0, vocab=400)]], stable=False)
    with pytest.warns(UserWarning), pytest.raises(ReasonlensError, match="no step folder has its STABLE marker"):
        read_rollout_log(tmp_path)


def test_prime_rl_cut_line_and_mismatched_arrays_name_file_and_line(tmp_path):
    rec = prime_rl_record(1, 0, 0, [1, 2], [5, 6], [-0.1, -0.2], [0.2, 0.3], 0.0, vocab=400)
    folder = _prime_step(tmp_path, 1, [[rec, rec]])
    text = (folder / "rank_0.jsonl").read_text()
    (folder / "rank_0.jsonl").write_text(text[: len(text) - 40])  # the second line cut mid-way
    with pytest.raises(ReasonlensError, match=r"rank_0\.jsonl line 2 is not valid JSON.*truncated"):
        read_rollout_log(tmp_path)
    bad = dict(rec, entropy=rec["entropy"][:-1])
    jsonl(folder / "rank_0.jsonl", [rec, bad])
    with pytest.raises(ReasonlensError, match=r"rank_0\.jsonl line 2: per-token arrays have different lengths"):
        read_rollout_log(tmp_path)


# --- NeMo-RL ---------------------------------------------------------------------------------------


def test_nemo_rl_train_data_unpads_and_keeps_generation_logprobs(tmp_path):
    recs = [nemo_record(0, ["<|im_start|>user\nq<|im_end|>\n", "so 7"], [1, 2, 3], [7, 8], [-0.5, -1.0],
                        1.0, 0.5, pad_to=8, pad_id=0),
            nemo_record(1, ["<|im_start|>user\nq<|im_end|>\n", "8"], [1, 2, 3], [9, 10, 11], [-2.0, -0.1, -0.3],
                        0.0, -0.5, pad_to=8, pad_id=0)]
    jsonl(tmp_path / "train_data_step4.jsonl", recs)
    layout = detect_layout(tmp_path)
    df = read_rollout_log(tmp_path)
    assert layout.framework == "nemo-rl" and "entropies" in layout.unavailable["entropy"]
    assert df[C.STEP].tolist() == [4, 4] and df[C.REWARD].tolist() == [1.0, 0.0]
    assert list(df[C.TOKEN_IDS].iloc[0]) == [7, 8] and list(df[C.TOKEN_IDS].iloc[1]) == [9, 10, 11]
    assert list(df[C.LOGPROBS].iloc[1]) == [-2.0, -0.1, -0.3]  # padding and prompt positions dropped
    assert list(df[C.ADVANTAGES].iloc[0]) == [0.5, 0.5]
    assert df[C.RESPONSE].tolist() == ["so 7", "8"] and C.ENTROPIES not in df
    assert df[C.PROMPT].iloc[0].startswith("<|im_start|>user")


def test_nemo_rl_hostile_lines(tmp_path):
    rec = nemo_record(0, ["q", "a"], [1, 2], [3], [-0.5], 1.0, 0.5, pad_to=4, pad_id=0)
    path = jsonl(tmp_path / "train_data_step1.jsonl", [rec, dict(rec, generation_logprobs=[[0.0, 0.0]])])
    with pytest.raises(ReasonlensError, match=r"train_data_step1\.jsonl line 2: per-token arrays have different"):
        read_rollout_log(path)
    jsonl(path, [dict(rec, input_lengths=[9])])
    with pytest.raises(ReasonlensError, match=r"line 1: input_lengths = 9 but only 4 tokens"):
        read_rollout_log(path)


# --- AReaL and ROLL -------------------------------------------------------------------------------


def test_areal_versions_are_steps(tmp_path):
    root = tmp_path / "logs" / "me" / "exp" / "trial"
    jsonl(root / "rollout" / "3" / "0.jsonl", [areal_record(0, i, "q1", f"a{i}<|im_end|>", 10, 4 + i, r, 3)
                                               for i, r in enumerate([1.0, 0.0])])
    jsonl(root / "rollout" / "3" / "1.jsonl", [areal_record(1, 0, "q2", "b<|im_end|>", 12, 6, 1.0, 3)])
    jsonl(root / "rollout" / "5" / "2.jsonl", [areal_record(2, 0, "q1", "c<|im_end|>", 10, 8, 1.0, 5)])
    df = read_rollout_log(root)
    assert detect_layout(root).framework == "areal"
    assert df[C.STEP].tolist() == [3, 3, 3, 5]
    # n_tokens = seqlen - prompt_len; q1 keeps its prompt_id from version 3 to 5
    assert sorted(df[df[C.STEP] == 3][C.N_TOKENS]) == [4, 5, 6]
    q1 = df[df[C.PROMPT] == "q1"]
    assert q1[C.PROMPT_ID].nunique() == 1 and len(q1) == 3


def test_areal_missing_field_and_cut_line(tmp_path):
    path = jsonl(tmp_path / "rollout" / "1" / "0.jsonl", [areal_record(0, 0, "q", "a", 3, 2, 1.0, 1)])
    path.write_text(path.read_text() + '{"task_id": 0, "sample_idx": 1, "seqlen"')
    with pytest.raises(ReasonlensError, match=r"0\.jsonl line 2 is not valid JSON"):
        read_rollout_log(tmp_path)
    rec = areal_record(0, 0, "q", "a", 3, 2, 1.0, 1)
    del rec["reward"]
    jsonl(path, [areal_record(0, 0, "q", "a", 3, 2, 1.0, 1), rec])
    with pytest.raises(ReasonlensError, match=r"line 2: no field\(s\) \['reward'\]"):
        read_rollout_log(tmp_path)


def test_roll_one_line_of_columns(tmp_path):
    roll_dump(tmp_path, 2, ["q1", "q1", "q2"], ["\\boxed{7}", "8", "\\boxed{12}"], [1.0, 0.0, 1.0],
              ["7", "7", "12"], ["id-1", "id-1", "id-2"])
    roll_dump(tmp_path, 4, ["q1"], ["\\boxed{7}"], [1.0], ["7"], ["id-1"])
    df = read_rollout_log(tmp_path)
    assert detect_layout(tmp_path).framework == "roll"
    assert df[C.STEP].tolist() == [2, 2, 2, 4]
    assert df[C.PROMPT_ID].tolist() == ["id-1", "id-1", "id-2", "id-1"]  # ROLL's id is the prompt id
    assert df[C.ANSWER].tolist() == ["7", "7", "12", "7"] and df[C.REWARD].tolist() == [1.0, 0.0, 1.0, 1.0]
    assert "sampling_params" not in df


def test_roll_mismatched_columns_and_extra_lines(tmp_path):
    path = roll_dump(tmp_path, 2, ["q1", "q2"], ["a", "b"], [1.0], ["7", "8"], ["1", "2"])
    with pytest.raises(ReasonlensError, match=r"step_2\.jsonl: column arrays have different lengths"):
        read_rollout_log(tmp_path)
    roll_dump(tmp_path, 2, ["q1"], ["a"], [1.0], ["7"], ["1"])
    path.write_text(path.read_text() * 2)
    with pytest.raises(ReasonlensError, match="2 JSON lines; ROLL writes one line"):
        read_rollout_log(path)


# --- slime: pickles only with --trust-remote-code -------------------------------------------------


class _Marker:
    """Unpickling this object creates a file: what a hostile pickle could do instead."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def _slime_dump(path: Path, rollout_id: int, samples: list) -> Path:
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"rollout_id": rollout_id, "samples": samples}, path)
    return path


def test_slime_pickle_never_runs_without_the_flag(tmp_path):
    marker = tmp_path / "pwned"
    dump = _slime_dump(tmp_path / "dumps" / "1.pt", 1, [_Marker(marker)])
    for target in (dump, dump.parent):
        with pytest.raises(ReasonlensError, match="pickles.*--trust-remote-code"):
            read_rollout_log(target)
    assert not marker.exists()
    with pytest.raises(ReasonlensError):  # with the flag it is loaded, so the marker does appear
        read_rollout_log(dump, trust_remote_code=True)
    assert marker.exists()


def test_slime_dump_with_the_flag(tmp_path):
    samples = [slime_sample(0, "q", "so \\boxed{7}", "7", 1.0, [1, 2, 7, 8], [-0.1, -0.2]),
               slime_sample(1, "q", "8", "7", {"score": 0.0, "acc": False}, [1, 2, 9], [-0.4], status="truncated")]
    _slime_dump(tmp_path / "rollout_data" / "6.pt", 6, samples)
    df = read_rollout_log(tmp_path, trust_remote_code=True)
    assert df[C.STEP].tolist() == [6, 6] and df[C.REWARD].tolist() == [1.0, 0.0]
    assert df[C.TRUNCATED].tolist() == [False, True] and df[C.ANSWER].tolist() == ["7", "7"]
    assert list(df[C.TOKEN_IDS].iloc[0]) == [7, 8] and list(df[C.LOGPROBS].iloc[1]) == [-0.4]
    samples[1]["rollout_log_probs"] = None  # the engine returned none for this one
    _slime_dump(tmp_path / "rollout_data" / "6.pt", 6, samples)
    with pytest.warns(UserWarning, match="token scores are dropped"):
        assert C.LOGPROBS not in read_rollout_log(tmp_path, trust_remote_code=True)
    bad = [slime_sample(0, "q", "a", "7", 1.0, [1, 2], [-0.1, -0.2, -0.3])]
    _slime_dump(tmp_path / "rollout_data" / "6.pt", 6, bad)
    with pytest.raises(ReasonlensError, match="response_length = 3 but rollout_log_probs has 3 values and tokens 2"):
        read_rollout_log(tmp_path, trust_remote_code=True)
