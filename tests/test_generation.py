"""Generation: seeded reproducibility, batch independence, left padding, truncation, pure sampling helpers."""

from __future__ import annotations

import numpy as np
import pytest

from reasonlens.errors import ReasonlensError
from reasonlens.models.generation import (generate, row_seed, sample_rows, split_response, top_p_filter)


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    from reasonlens.models.loading import load_model

    return load_model(tiny_model_dir, device="cpu", dtype="fp32")


@pytest.fixture(scope="module")
def prompts(tiny):
    _, tokenizer = tiny
    questions = ["Tom has 4 apples and buys 9 more. How many apples does he have?", "Add 3 and 4."]
    return [tokenizer.apply_chat_template([{"role": "user", "content": q}], tokenize=False,
                                          add_generation_prompt=True) for q in questions]


def _ids(gens):
    return [(g.prompt_index, g.sample_id, g.token_ids) for g in gens]


def test_same_seed_same_outputs_other_seed_differs(tiny, prompts):
    model, tokenizer = tiny
    kwargs = dict(samples=2, max_new_tokens=8, temperature=1.0, batch_size=4)
    first = generate(model, tokenizer, prompts, seed=0, **kwargs)
    assert _ids(first) == _ids(generate(model, tokenizer, prompts, seed=0, **kwargs))
    assert _ids(first) != _ids(generate(model, tokenizer, prompts, seed=1, **kwargs))
    assert [(g.prompt_index, g.sample_id) for g in first] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert first[0].token_ids != first[1].token_ids  # the K samples of a prompt differ


def test_sampling_does_not_depend_on_batch_size_in_fp32(tiny, prompts):
    model, tokenizer = tiny
    kwargs = dict(samples=3, max_new_tokens=8, temperature=0.8, top_p=0.9, seed=3)
    batched = generate(model, tokenizer, prompts, batch_size=6, **kwargs)
    assert _ids(batched) == _ids(generate(model, tokenizer, prompts, batch_size=1, **kwargs))


def test_left_padded_batch_equals_unbatched_greedy(tiny, prompts):
    model, tokenizer = tiny
    lengths = [len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts]
    assert lengths[0] != lengths[1]  # the batch really needs padding
    batched = generate(model, tokenizer, prompts, samples=1, max_new_tokens=10, temperature=0, batch_size=2)
    for index, prompt in enumerate(prompts):
        [alone] = generate(model, tokenizer, [prompt], samples=1, max_new_tokens=10, temperature=0)
        assert batched[index].token_ids == alone.token_ids
        assert batched[index].prompt_token_ids == tokenizer(prompt, add_special_tokens=False)["input_ids"]
        assert tokenizer.pad_token_id not in batched[index].prompt_token_ids


def test_greedy_samples_are_identical(tiny, prompts):
    model, tokenizer = tiny
    gens = generate(model, tokenizer, prompts[:1], samples=2, max_new_tokens=6, temperature=0)
    assert gens[0].token_ids == gens[1].token_ids


def test_model_generation_defaults_do_not_reshape_the_distribution(tiny, prompts):
    model, tokenizer = tiny
    kwargs = dict(samples=1, max_new_tokens=8, temperature=0)
    plain = generate(model, tokenizer, prompts[:1], **kwargs)
    model.generation_config.repetition_penalty, model.generation_config.min_new_tokens = 50.0, 8
    try:
        assert _ids(generate(model, tokenizer, prompts[:1], **kwargs)) == _ids(plain)
    finally:
        model.generation_config.repetition_penalty, model.generation_config.min_new_tokens = 1.0, None


def test_truncation_flag_and_stop_token_excluded(tiny, prompts):
    model, tokenizer = tiny
    [free] = generate(model, tokenizer, prompts[:1], samples=1, max_new_tokens=6, temperature=0)
    assert free.truncated and len(free.token_ids) == 6  # the random tiny model never says <|im_end|> here
    # Make the 3rd greedy token a stop token: the response must end just before its first occurrence.
    stop = free.token_ids[2]
    saved = model.generation_config.eos_token_id
    model.generation_config.eos_token_id = [tokenizer.eos_token_id, stop]
    try:
        [cut] = generate(model, tokenizer, prompts[:1], samples=1, max_new_tokens=6, temperature=0)
    finally:
        model.generation_config.eos_token_id = saved
    assert not cut.truncated
    assert cut.token_ids == free.token_ids[:free.token_ids.index(stop)]
    assert cut.text == tokenizer.decode(cut.token_ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
    assert len(cut.offsets) == len(cut.token_ids) and (not cut.offsets or cut.offsets[-1][1] == len(cut.text))


def test_progress_reports_sequences_done_per_batch(tiny, prompts):
    model, tokenizer = tiny
    calls = []
    generate(model, tokenizer, prompts, samples=3, max_new_tokens=2, batch_size=4, progress=calls.append)
    assert calls == [4, 2]  # 2 prompts x 3 samples in batches of 4


@pytest.mark.parametrize("kwargs, message", [
    (dict(samples=0), r"samples=0 is invalid; expected an integer in \[1, 1024\]"),
    (dict(top_p=0.0), r"top_p=0.0 is invalid; expected a finite number in \(0, 1\]"),
    (dict(temperature=-1.0), r"temperature=-1.0 is invalid; expected a finite number in \[0, 100\]"),
    (dict(batch_size=0), "batch_size=0 is invalid"),
], ids=["samples", "top_p", "temperature", "batch_size"])
def test_invalid_arguments(tiny, prompts, kwargs, message):
    model, tokenizer = tiny
    with pytest.raises(ReasonlensError, match=message):
        generate(model, tokenizer, prompts, **kwargs)


def test_prompts_must_be_a_list_of_strings(tiny):
    model, tokenizer = tiny
    with pytest.raises(ReasonlensError, match="prompts must be a list of strings"):
        generate(model, tokenizer, "one prompt")


def test_top_p_filter_by_hand():
    import torch

    logits = torch.log(torch.tensor([[0.2, 0.5, 0.3]]))
    # Sorted 0.5, 0.3, 0.2; mass before each: 0, 0.5, 0.8. top_p=0.6 keeps 0.5 and 0.3 (0.5 < 0.6).
    kept = torch.isfinite(top_p_filter(logits, 0.6))
    assert kept.tolist() == [[False, True, True]]
    # top_p=0.5: the mass before 0.3 is 0.5, not < 0.5, so only the top token stays.
    assert torch.isfinite(top_p_filter(logits, 0.5)).tolist() == [[False, True, False]]
    assert torch.equal(top_p_filter(logits, 1.0), logits)


def test_sample_rows_uses_each_rows_generator():
    import torch

    scores = torch.zeros(2, 50)  # uniform over 50 tokens
    def gens(*seeds):
        return [torch.Generator().manual_seed(s) for s in seeds]
    both = sample_rows(scores, gens(1, 2), temperature=1.0, top_p=1.0)
    alone = sample_rows(scores[1:], gens(2), temperature=1.0, top_p=1.0)
    assert both[1] == alone[0]  # row 1 does not depend on row 0
    peaked = torch.tensor([[0.0, 20.0, 0.0]])  # p(1) = 1 / (1 + 2 e^-20) ~ 1
    assert sample_rows(peaked, gens(0), temperature=1.0, top_p=1.0).tolist() == [1]


def test_row_seed_and_split_response():
    assert row_seed(0, 1, 2) == row_seed(0, 1, 2) != row_seed(0, 2, 1)
    assert 0 <= row_seed(5, 0, 0) < 2**63
    assert split_response([5, 6, 2, 0, 0], {2}) == ([5, 6], False)
    assert split_response([5, 6, 7], {2}) == ([5, 6, 7], True)
    assert split_response([2], {2, 9}) == ([], False)


@pytest.mark.parametrize("temperature, score_temperature", [(0.7, 1.0), (1.0, 0.5), (0.0, 1.0)],
                         ids=["sampled", "score-at-0.5", "greedy"])
def test_scores_from_generation_equal_teacher_forced_scores(tiny, temperature, score_temperature):
    from reasonlens.models.scoring import score_tokens

    model, tokenizer = tiny
    gens = generate(model, tokenizer, ["Tom has 4 apples.", "What is 3 + 4?"], samples=2, max_new_tokens=12,
                    temperature=temperature, seed=3, batch_size=3, score_temperature=score_temperature)
    forced = score_tokens(model, [g.prompt_token_ids for g in gens], [g.token_ids for g in gens],
                          temperature=score_temperature)
    for g, (logp, ent) in zip(gens, forced):
        assert g.logprobs.dtype == np.float32 and len(g.logprobs) == len(g.entropies) == len(g.token_ids)
        np.testing.assert_allclose(g.logprobs, logp, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(g.entropies, ent, rtol=1e-4, atol=1e-5)
