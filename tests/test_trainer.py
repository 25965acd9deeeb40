"""HicraTrainer end to end on the tiny model: every method trains 2 steps, logs what the loss used,
and resumes without losing or repeating a step."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from reasonlens import columns as C

# Words the tiny random model emits often, so planning tokens show up in 16-token completions.
LEXICON = ["the", "so", "is", "to", "we", "and", "a", "x", "of", "wait", "let's", "but", "first", "apples"]
METHODS = [("hicra", "lexicon"), ("grpo", "lexicon"), ("entropy-topk", "lexicon"),
           ("entropy-reg", "lexicon"), ("hicra", "heuristic")]


def length_reward(prompts, completions, **kwargs):
    """A reward with variance inside every group (the task reward of a random model is always 0)."""
    return [len(c) / 50.0 for c in completions]


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_model_dir):
    root = tmp_path_factory.mktemp("train")
    problems = root / "problems.jsonl"
    problems.write_text("\n".join(json.dumps({"question": f"Tom has {i} apples and buys 3 more. How many?",
                                              "answer": str(i + 3)}) for i in range(4)) + "\n")
    lexicon = root / "lexicon.txt"
    lexicon.write_text("\n".join(LEXICON) + "\n")
    return {"root": root, "problems": problems, "lexicon": lexicon, "model": tiny_model_dir}


def _config(setup, name, **overrides):
    from reasonlens.train.config import TrainConfig

    values = dict(out=setup["root"] / name, model=str(setup["model"]), prompts_file=setup["problems"],
                  num_prompts=4, lexicon=str(setup["lexicon"]), steps=2, prompts_per_step=2,
                  num_generations=4, max_new_tokens=16, lr=1e-2, dtype="fp32", save_every=2, report_to="none")
    values.update(overrides)
    return TrainConfig(**values)


@pytest.fixture(scope="module")
def runs(setup):
    from reasonlens.train.run import train_hicra

    out = {}
    for method, source in METHODS:
        name = f"{method}-{source}"
        out[name] = train_hicra(_config(setup, name, method=method, planning_source=source),
                                extra_rewards=[length_reward])
    return out


def _weights(folder):
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def _rollouts(run):
    return pd.concat([pd.read_parquet(p) for p in sorted((run / "rollouts").glob("step_*.parquet"))],
                     ignore_index=True)


@pytest.mark.slow
@pytest.mark.parametrize("name", [f"{m}-{s}" for m, s in METHODS], ids=[f"{m}-{s}" for m, s in METHODS])
def test_every_method_trains_two_steps_and_records(runs, setup, name):
    run = runs[name]
    before, after = _weights(setup["model"]), _weights(run / "checkpoints" / "step_2")
    changed = [key for key in before if not np.allclose(before[key].numpy(), after[key].numpy())]
    assert len(changed) == len(before), f"unchanged: {sorted(set(before) - set(changed))}"
    metrics = pd.read_csv(run / "metrics.csv")
    assert list(metrics["step"]) == [1, 2]
    for column in ("planning_ratio", "advantage_planning", "advantage_execution", "sg_semantic_entropy",
                   "entropy_planning", "entropy_execution", "accuracy", "pass_at_4", "mean_length",
                   "reward", "loss"):
        assert column in metrics.columns
    table = _rollouts(run)
    assert len(table) == 2 * 8 and set(table[C.STEP]) == {1, 2}
    for row in table.itertuples():
        n = getattr(row, C.N_TOKENS)
        assert n == len(getattr(row, C.TOKEN_IDS)) == len(getattr(row, C.LOGPROBS)) == len(getattr(row, C.TOKEN_OFFSETS)) \
            == len(getattr(row, C.ENTROPIES)) == len(getattr(row, C.PLANNING_MASK)) == len(getattr(row, C.ADVANTAGES))
    config = json.loads((run / "config.json").read_text())
    assert config["config"]["method"] == name.rsplit("-", 1)[0] and config["trl_args"]["epsilon_high"] == 0.28
    assert config["provenance"]["libraries"]["trl"].startswith("1.16")


def _sequence_advantage(advantages, planning):
    """A of a row, read off an execution token (HICRA leaves them at A)."""
    execution = np.flatnonzero(~planning)
    return advantages[execution[0]] if execution.size else None


@pytest.mark.slow
def test_logged_hicra_advantages_are_exact(runs):
    table = _rollouts(runs["hicra-lexicon"])
    planning_tokens = 0
    for row in table.itertuples():
        adv = np.asarray(getattr(row, C.ADVANTAGES), dtype=np.float32)
        planning = np.asarray(getattr(row, C.PLANNING_MASK), dtype=bool)
        a = _sequence_advantage(adv, planning)
        if a is None:
            continue
        assert np.all(adv[~planning] == a)  # execution tokens: A
        expected = np.float32(a) + np.float32(0.2) * np.abs(np.float32(a))  # planning tokens: A + 0.2|A|
        assert np.all(adv[planning] == expected)
        planning_tokens += planning.sum()
    assert planning_tokens > 0  # the check above was not vacuous


@pytest.mark.slow
def test_grpo_and_topk_credit(runs):
    grpo = _rollouts(runs["grpo-lexicon"])
    for adv in grpo[C.ADVANTAGES]:
        assert len(set(adv)) <= 1  # one advantage per response
    run = runs["entropy-topk-lexicon"]
    topk, metrics = _rollouts(run), pd.read_csv(run / "metrics.csv").set_index("step")
    checked = 0
    for step, group in topk.groupby(C.STEP):
        threshold = metrics.loc[step, "entropy_threshold"]
        for entropies, adv, seq in zip(group[C.ENTROPIES], group[C.ADVANTAGES], group[C.REWARD]):
            entropies, adv = np.asarray(entropies, dtype=np.float32), np.asarray(adv)
            a = adv[adv != 0]
            if a.size == 0:
                continue  # A = 0: nothing tells selected from unselected
            # exactly the tokens at or above the logged (gathered) threshold carry A, the rest 0
            assert np.array_equal(adv != 0, entropies >= np.float32(threshold))
            assert len(set(a)) == 1
            checked += 1
        # the loss normaliser is the selected-token count (EOS included, not logged), never the batch's
        assert metrics.loc[step, "selected_tokens"] >= sum((np.asarray(e) >= threshold).sum() for e in group[C.ENTROPIES])
    assert checked > 0


@pytest.mark.slow
def test_planning_mask_equals_tagger_on_decoded_text(runs, setup):
    from transformers import AutoTokenizer

    from reasonlens.hierarchy.matcher import leftmost_longest
    from reasonlens.hierarchy.tagger import PlanningTagger
    from reasonlens.models.offsets import DECODE_KWARGS, token_offsets

    tokenizer = AutoTokenizer.from_pretrained(setup["model"])
    tagger = PlanningTagger(str(setup["lexicon"]))
    table = _rollouts(runs["hicra-lexicon"])
    for row in table.itertuples():
        ids = list(getattr(row, C.TOKEN_IDS))
        text, offsets = token_offsets(tokenizer, ids)
        assert getattr(row, C.RESPONSE) == text == tokenizer.decode(ids, **DECODE_KWARGS)
        assert [list(o) for o in getattr(row, C.TOKEN_OFFSETS)] == [list(o) for o in offsets]
        assert list(getattr(row, C.PLANNING_MASK)) == tagger.token_mask(text, offsets)
        assert list(getattr(row, C.GRAMS)) == [m.gram for m in leftmost_longest(tagger.find(text))]


@pytest.mark.slow
def test_resume_continues_without_losing_or_repeating_steps(setup):
    from reasonlens.train.run import train_hicra

    first = train_hicra(_config(setup, "resume", steps=3, save_every=1), extra_rewards=[length_reward])
    # simulate a crash during step 3, after its rollouts were written: resume from checkpoint 2
    shutil.rmtree(first / "trl" / "checkpoint-3")
    train_hicra(_config(setup, "resume", steps=4, save_every=1, resume=True), extra_rewards=[length_reward])
    metrics = pd.read_csv(first / "metrics.csv")
    assert list(metrics["step"]) == [1, 2, 3, 4]
    assert sorted(p.name for p in (first / "rollouts").iterdir()) == [f"step_00000{i}.parquet" for i in (1, 2, 3, 4)]
    assert sorted(_rollouts(first)[C.STEP].unique()) == [1, 2, 3, 4]
    assert {p.name for p in (first / "checkpoints").iterdir()} == {"step_1", "step_2", "step_3", "step_4"}
    # every step saw the prompts an uninterrupted run sees (steps 3-4 start the second pass)
    straight = train_hicra(_config(setup, "straight", steps=4, save_every=4), extra_rewards=[length_reward])
    key = [C.STEP, C.PROMPT_ID, C.SAMPLE_ID]
    resumed, whole = (_rollouts(r).sort_values(key)[key].reset_index(drop=True) for r in (first, straight))
    pd.testing.assert_frame_equal(resumed, whole)


@pytest.mark.slow
def test_refuses_to_overwrite_a_run_with_checkpoints(runs, setup):
    from reasonlens.errors import ReasonlensError
    from reasonlens.train.run import train_hicra

    with pytest.raises(ReasonlensError, match=r"already holds a run \(last checkpoint: checkpoint-2\): pass --resume"):
        train_hicra(_config(setup, "hicra-lexicon"))


@pytest.mark.slow
def test_resume_refuses_a_changed_recipe(runs, setup):
    from reasonlens.errors import ReasonlensError
    from reasonlens.train.run import train_hicra

    with pytest.raises(ReasonlensError, match=r"alpha: 0.2 -> 0.5"):
        train_hicra(_config(setup, "hicra-lexicon", steps=3, alpha=0.5, resume=True))
    with pytest.warns(UserWarning, match="already trained to step 2: nothing to do"):
        assert train_hicra(_config(setup, "hicra-lexicon", steps=2, resume=True)) == setup["root"] / "hicra-lexicon"


def test_config_messages():
    from reasonlens.errors import ReasonlensError
    from reasonlens.train.config import TrainConfig

    with pytest.raises(ReasonlensError, match="method='ppo'"):
        TrainConfig(out="r", method="ppo")
    with pytest.raises(ReasonlensError, match="num_generations=1"):
        TrainConfig(out="r", num_generations=1)
    with pytest.raises(ReasonlensError, match="needs a run folder: pass --out"):
        TrainConfig()


@pytest.mark.slow
def test_per_token_credit_reaches_the_loss(runs):
    # same seed -> identical step-1 samples; only the credit on planning tokens differs, and so the loss
    grpo, hicra = (_rollouts(runs[name]) for name in ("grpo-lexicon", "hicra-lexicon"))
    first = [t[t[C.STEP] == 1] for t in (grpo, hicra)]
    assert all(np.array_equal(a, b) for a, b in zip(first[0][C.TOKEN_IDS], first[1][C.TOKEN_IDS]))
    losses = [pd.read_csv(runs[name] / "metrics.csv")["loss"][0] for name in ("grpo-lexicon", "hicra-lexicon")]
    assert losses[0] != pytest.approx(losses[1], rel=1e-6, abs=1e-9)


def test_auto_trains_fp32_master_weights_even_where_the_cpu_computes_bf16_fast(monkeypatch):
    # bf16 has an 8-bit mantissa: a weight of 0.05 moves in steps of 2**-12 ~ 2.4e-4, far above an
    # Adam step at lr 1e-5, so bf16 weights alone would drop every update (the demo did not learn).
    from reasonlens.models import hardware
    from reasonlens.train.config import TrainConfig
    from reasonlens.train.run import weights_dtype

    monkeypatch.setattr(hardware, "cpu_bf16_timing", lambda: {"fp32_s": 0.01, "bf16_s": 0.001, "bf16_is_faster": True})
    assert weights_dtype(TrainConfig(out="x")) == "fp32"
    assert weights_dtype(TrainConfig(out="x", dtype="bf16")) == "bf16"
