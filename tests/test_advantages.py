"""Advantage transforms against hand-computed tensors (reasonlens.train.advantages)."""

from __future__ import annotations

import pytest
import torch

from reasonlens.errors import ReasonlensError
from reasonlens.train.advantages import (entropy_topk_mask, entropy_topk_threshold, grpo_advantages,
                                         heuristic_advantages, heuristic_selection_mask, hicra_advantages)


def test_grpo_advantages_hand_computed():
    # group 1: rewards 1,0,0,1 -> mean 0.5, centred +-0.5; Bessel std = sqrt(4*0.25/3) = 0.57735
    # -> 0.5 / (0.57735 + 1e-4) = 0.86588
    # group 2: all equal -> centred 0, std 0 -> 0 / 1e-4 = 0
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    expected = torch.tensor([0.86588, -0.86588, -0.86588, 0.86588, 0, 0, 0, 0])
    torch.testing.assert_close(grpo_advantages(rewards, 4), expected, atol=1e-5, rtol=0)
    # without std scaling only the centring remains
    torch.testing.assert_close(grpo_advantages(rewards, 4, scale_std=False),
                               torch.tensor([0.5, -0.5, -0.5, 0.5, 0, 0, 0, 0]))


def test_grpo_advantages_matches_trl_formula():
    # TRL: (r - mean) / (nanstd (Bessel) + 1e-4) per group of num_generations
    from trl.trainer.utils import nanstd

    rewards = torch.tensor([0.3, 1.0, 0.0, 0.5, 0.2, 0.9])
    grouped = rewards.view(-1, 3)
    std = torch.stack([nanstd(g) for g in grouped]).repeat_interleave(3)
    trl = (rewards - grouped.mean(1).repeat_interleave(3)) / (std + 1e-4)
    torch.testing.assert_close(grpo_advantages(rewards, 3), trl)


def test_hicra_per_sequence_hand_computed():
    # A = [0.5, -0.5]; alpha 0.2; planning tokens get A + 0.2|A|:
    # row 0: 0.5 + 0.1 = 0.6 on planning, 0.5 elsewhere; row 1: -0.5 + 0.1 = -0.4 on planning
    adv = torch.tensor([0.5, -0.5])
    mask = torch.tensor([[True, False, True], [False, True, False]])
    expected = torch.tensor([[0.6, 0.5, 0.6], [-0.5, -0.4, -0.5]])
    torch.testing.assert_close(hicra_advantages(adv, mask, alpha=0.2), expected)


def test_hicra_per_token_input_and_no_sign_flip():
    # per-token input: [[2, -1]] with both planning, alpha 0.5 -> [[2+1, -1+0.5]] = [[3, -0.5]]
    adv = torch.tensor([[2.0, -1.0]])
    out = hicra_advantages(adv, torch.tensor([[True, True]]), alpha=0.5)
    torch.testing.assert_close(out, torch.tensor([[3.0, -0.5]]))
    assert torch.equal(torch.sign(out), torch.sign(adv))
    assert torch.equal(adv, torch.tensor([[2.0, -1.0]]))  # the input is left alone


def test_hicra_alpha_zero_is_grpo():
    adv = torch.tensor([0.7, -0.3])
    mask = torch.tensor([[True, False], [True, True]])
    torch.testing.assert_close(hicra_advantages(adv, mask, alpha=0.0), adv[:, None].expand(2, 2))


def test_chained_boolean_indexing_is_a_noop_but_hicra_writes():
    # The public-port bug: adv[group][mask] *= k scales a copy made by the first boolean index.
    adv = torch.tensor([[1.0, 1.0], [-1.0, -1.0]])
    group = torch.tensor([True, False])
    mask = torch.tensor([[True, False]])
    before = adv.clone()
    adv[group][mask] *= 1.2
    assert torch.equal(adv, before)  # silent no-op
    # ours: one full (B, T) mask, one write -> row 0 token 0 becomes 1.2
    full_mask = torch.tensor([[True, False], [False, False]])
    out = hicra_advantages(adv, full_mask, alpha=0.2)
    assert out[0, 0].item() == pytest.approx(1.2)
    assert torch.equal(out[1], adv[1])


def test_entropy_topk_mask_hand_computed():
    # 10 real tokens with entropies 0.1..1.0 (row 1 has one pad of entropy 5.0, ignored);
    # quantile 0.2 -> threshold = torch.quantile(values, 0.8): sorted index 0.8*9 = 7.2
    # -> 0.8 + 0.2*(0.9-0.8) = 0.82 -> tokens 0.9 and 1.0 selected (20% of 10)
    entropies = torch.tensor([[0.1, 0.2, 0.3, 0.4, 0.5, 0.6], [0.7, 0.8, 0.9, 1.0, 5.0, 0.0]])
    completion_mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]])
    mask = entropy_topk_mask(entropies, completion_mask, 0.2)
    expected = torch.zeros(2, 6, dtype=torch.bool)
    expected[1, 2] = expected[1, 3] = True
    assert torch.equal(mask, expected)


def test_entropy_topk_threshold_of_a_gathered_batch():
    # 10 tokens 0.1..1.0: the 0.8 quantile is at position 0.8 * 9 = 7.2 -> 0.8 + 0.2 * 0.1 = 0.82;
    # a process holding only [0.1, 0.2] selects by that threshold: nothing (its own would select 0.2)
    gathered = torch.arange(1, 11, dtype=torch.float32) / 10
    threshold = entropy_topk_threshold(gathered, 0.2)
    assert float(threshold) == pytest.approx(0.82)
    local = torch.tensor([[0.1, 0.2]])
    assert not entropy_topk_mask(local, torch.ones(1, 2), threshold=threshold).any()
    assert entropy_topk_mask(local, torch.ones(1, 2), 0.2).tolist() == [[False, True]]


def test_entropy_topk_empty_batch_selects_nothing():
    assert not entropy_topk_mask(torch.ones(2, 3), torch.zeros(2, 3)).any()


def test_heuristic_selection_hand_computed():
    # one group of 3: lengths 4, 2, 3 -> mean 3. Row 0 correct and 4 > 3 -> eligible;
    # row 1 correct but shorter; row 2 not longer (3 == 3) -> both excluded.
    # Row 0 entropies [0.4, 0.1, 0.3, 0.2]; quantile 0.5 -> torch.quantile(.., 0.5) = 0.25
    # -> tokens 0.4 and 0.3 selected.
    entropies = torch.tensor([[0.4, 0.1, 0.3, 0.2], [0.9, 0.9, 0.0, 0.0], [0.9, 0.8, 0.7, 0.0]])
    completion_mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 1, 1, 0]])
    correct = torch.tensor([True, True, True])
    mask = heuristic_selection_mask(entropies, completion_mask, correct, 3, quantile=0.5)
    expected = torch.tensor([[True, False, True, False], [False] * 4, [False] * 4])
    assert torch.equal(mask, expected)
    # credit: A * (1 + alpha) on the selected tokens: 0.5 * 1.2 = 0.6
    adv = heuristic_advantages(torch.tensor([0.5, 0.5, -0.5]), mask, alpha=0.2)
    torch.testing.assert_close(adv[0], torch.tensor([0.6, 0.5, 0.6, 0.5]))
    torch.testing.assert_close(adv[2], torch.full((4,), -0.5))


@pytest.mark.parametrize("call, match", [
    (lambda: grpo_advantages(torch.ones(5), 2), "group_size=2"),
    (lambda: hicra_advantages(torch.ones(2), torch.ones(2, 3, dtype=torch.bool), alpha=-0.1), "alpha=-0.1"),
    (lambda: hicra_advantages(torch.ones(3), torch.ones(2, 3, dtype=torch.bool)), r"shape \(3,\)"),
    (lambda: entropy_topk_mask(torch.ones(1, 2), torch.ones(1, 2), 0.0), "quantile=0.0"),
], ids=["groups", "alpha", "shape", "quantile"])
def test_bad_input_messages(call, match):
    with pytest.raises(ReasonlensError, match=match):
        call()
