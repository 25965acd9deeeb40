"""Advantage transforms for HICRA and its baselines: pure torch, no trainer, no I/O.

Shapes: B = completions in the generation batch (groups of ``group_size`` consecutive rows, in
the order they were sampled), T = completion positions (right-padded). Every function returns a
new tensor: none writes into its inputs. Masks are bool, True = the token is selected.

Departures from the paper (arXiv 2509.03646) and the public ports, decided in method.md:
- HICRA builds one full (B, T) mask and writes once (``torch.where``): the chained boolean
  indexing of a public port, ``adv[group][mask] *= k``, scales a copy and is a silent no-op.
- The standard deviation of a group uses Bessel's correction and ``eps=1e-4``, as TRL does, so
  ``grpo_advantages`` reproduces the per-sequence advantages TRL hands to our trainer.
- The "official-code heuristic" (no strategic grams: the top 30% entropy tokens of correct,
  longer-than-group-average responses, scaled by 1 + alpha) takes the quantile within each
  response; the port did not say, so this is our choice.
"""

from __future__ import annotations

import torch

from reasonlens.errors import ReasonlensError


def grpo_advantages(rewards: torch.Tensor, group_size: int, *, scale_std: bool = True,
                    eps: float = 1e-4) -> torch.Tensor:
    """GRPO group advantages A_i = (R_i - mean_group R) [/ (std_group R + eps)], one per completion.

    Parameters
    ----------
    rewards : (B,) float tensor, rows grouped by prompt (``group_size`` consecutive rows a group).
    group_size : completions per prompt (G).
    scale_std : divide by the group's standard deviation (Bessel-corrected) plus ``eps``.

    Returns
    -------
    (B,) float tensor.

    Examples
    --------
    >>> grpo_advantages(torch.tensor([1.0, 0.0, 0.0, 0.0]), 4, scale_std=False)
    tensor([ 0.7500, -0.2500, -0.2500, -0.2500])
    """
    if rewards.dim() != 1 or group_size < 1 or rewards.numel() % group_size != 0:
        raise ReasonlensError(f"rewards of shape {tuple(rewards.shape)} cannot be split into groups of "
                              f"group_size={group_size}: pass a 1-D tensor whose length is a multiple of it.")
    grouped = rewards.float().view(-1, group_size)  # (B/G, G)
    centred = grouped - grouped.mean(dim=1, keepdim=True)  # (B/G, G)
    if scale_std:
        std = grouped.std(dim=1, keepdim=True) if group_size > 1 else torch.zeros_like(centred[:, :1])
        centred = centred / (std + eps)
    return centred.reshape(-1)  # (B,)


def hicra_advantages(advantages: torch.Tensor, planning_mask: torch.Tensor,
                     alpha: float = 0.2) -> torch.Tensor:
    """HICRA credit: A + alpha * |A| on planning tokens, A on every other token.

    Successful responses (A > 0) get (1 + alpha)x credit on their planning tokens, failed ones
    (1 - alpha)x blame; the sign never flips and execution tokens keep A. Padding positions
    simply carry A (the loss masks them).

    Parameters
    ----------
    advantages : (B,) per-sequence or (B, T) per-token advantages.
    planning_mask : (B, T) bool, True = planning token.
    alpha : amplification, >= 0 (0 gives GRPO).

    Returns
    -------
    (B, T) float tensor, a new tensor.

    Examples
    --------
    >>> hicra_advantages(torch.tensor([1.0, -1.0]), torch.tensor([[True, False], [True, False]]))
    tensor([[ 1.2000,  1.0000],
            [-0.8000, -1.0000]])
    """
    if alpha < 0:
        raise ReasonlensError(f"alpha={alpha} must be >= 0 (0 = GRPO; the paper uses 0.2).")
    per_token = per_token_advantages(advantages, planning_mask)  # (B, T)
    return torch.where(planning_mask.bool(), per_token + alpha * per_token.abs(), per_token)


def entropy_topk_threshold(entropies: torch.Tensor, quantile: float = 0.2) -> torch.Tensor:
    """The entropy at the (1 - quantile) quantile (linear interpolation) of ``entropies`` (N,): tokens at or
    above it are the top ``quantile`` fraction (80/20 rule, arXiv 2506.01939). In a multi-process run pass
    the real tokens of the whole gathered batch, as TRL does, so every process selects by one threshold.

    >>> float(entropy_topk_threshold(torch.tensor([0.1, 0.9, 0.5, 0.3, 0.7]), 0.2))
    0.7400000095367432
    """
    _check_fraction("quantile", quantile)
    if entropies.numel() == 0:
        return torch.tensor(float("inf"))
    return torch.quantile(entropies.float(), 1.0 - quantile)


def entropy_topk_mask(entropies: torch.Tensor, completion_mask: torch.Tensor,
                      quantile: float = 0.2, *, threshold: torch.Tensor | None = None) -> torch.Tensor:
    """The tokens at or above the entropy threshold: the top ``quantile`` fraction of real tokens.

    The trainer gives these tokens A and every other token 0, and sets the loss normaliser (TRL's
    ``num_items_in_batch``, the DAPO normaliser) to the number selected, so the loss is the mean over
    the SELECTED tokens as in arXiv 2506.01939. TRL's ``top_entropy_quantile`` masks the same tokens
    but keeps the full-batch normaliser, so its step is ~quantile times smaller (~5x at 0.2).

    Parameters
    ----------
    entropies : (B, T) float, per-token entropy.
    completion_mask : (B, T), 1/True = real completion token, 0 = padding.
    quantile : fraction of tokens kept, in (0, 1].
    threshold : the entropy threshold, e.g. from `entropy_topk_threshold` over the gathered batch;
        default: taken over this batch's real tokens.

    Returns
    -------
    (B, T) bool, True = the token carries gradient. All False when the batch has no real token.

    Examples
    --------
    >>> entropy_topk_mask(torch.tensor([[0.1, 0.9, 0.5, 0.3, 0.7]]), torch.ones(1, 5), 0.2)
    tensor([[False,  True, False, False, False]])
    """
    valid = completion_mask.bool()  # (B, T)
    if threshold is None:
        threshold = entropy_topk_threshold(entropies[valid], quantile)
    return (entropies.float() >= threshold.to(entropies.device)) & valid


def heuristic_selection_mask(entropies: torch.Tensor, completion_mask: torch.Tensor,
                             correct: torch.Tensor, group_size: int,
                             quantile: float = 0.3) -> torch.Tensor:
    """The official-code heuristic's tokens: top-``quantile`` entropy tokens of each correct
    response that is longer than its group's mean length. No strategic grams are involved.

    Parameters
    ----------
    entropies : (B, T) float.
    completion_mask : (B, T), 1/True = real token.
    correct : (B,) bool, verified correct.
    group_size : completions per prompt; rows are grouped in sampling order.
    quantile : fraction of each eligible response's tokens selected, in (0, 1].

    Returns
    -------
    (B, T) bool, True = the token is scaled by (1 + alpha).

    Examples
    --------
    >>> heuristic_selection_mask(torch.tensor([[0.1, 0.9], [0.5, 0.0]]),
    ...                          torch.tensor([[1, 1], [1, 0]]), torch.tensor([True, True]), 2, 0.5)
    tensor([[False,  True],
            [False, False]])
    """
    _check_fraction("quantile", quantile)
    valid = completion_mask.bool()  # (B, T)
    lengths = valid.sum(dim=1).float()  # (B,)
    if lengths.numel() % group_size != 0:
        raise ReasonlensError(f"{lengths.numel()} rows cannot be split into groups of group_size={group_size}.")
    group_mean = lengths.view(-1, group_size).mean(dim=1).repeat_interleave(group_size)  # (B,)
    eligible = correct.bool() & (lengths > group_mean)  # (B,)
    masked = entropies.float().masked_fill(~valid, float("nan"))  # (B, T)
    rows_with_tokens = valid.any(dim=1)  # (B,)
    threshold = torch.full_like(lengths, float("inf"))  # (B,)
    if rows_with_tokens.any():
        threshold[rows_with_tokens] = torch.nanquantile(masked[rows_with_tokens], 1.0 - quantile, dim=1)
    return (masked >= threshold[:, None]) & valid & eligible[:, None]


def heuristic_advantages(advantages: torch.Tensor, selection_mask: torch.Tensor,
                         alpha: float = 0.2) -> torch.Tensor:
    """The official-code heuristic's credit: A * (1 + alpha) on selected tokens, A elsewhere.

    Parameters
    ----------
    advantages : (B,) or (B, T).
    selection_mask : (B, T) bool from ``heuristic_selection_mask``.

    Returns
    -------
    (B, T) float tensor, a new tensor.

    Examples
    --------
    >>> heuristic_advantages(torch.tensor([-1.0]), torch.tensor([[True, False]]), 0.5)
    tensor([[-1.5000, -1.0000]])
    """
    if alpha < 0:
        raise ReasonlensError(f"alpha={alpha} must be >= 0.")
    per_token = per_token_advantages(advantages, selection_mask)  # (B, T)
    return torch.where(selection_mask.bool(), per_token * (1.0 + alpha), per_token)


def per_token_advantages(advantages: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B,) or (B, T) advantages as a new (B, T) float tensor shaped like ``mask`` (GRPO: A on every token).

    Examples
    --------
    >>> per_token_advantages(torch.tensor([1.0, -1.0]), torch.ones(2, 2, dtype=torch.bool))
    tensor([[ 1.,  1.],
            [-1., -1.]])
    """
    if mask.dim() != 2 or advantages.shape not in ((mask.shape[0],), tuple(mask.shape)):
        raise ReasonlensError(f"advantages of shape {tuple(advantages.shape)} do not fit a mask of shape "
                              f"{tuple(mask.shape)}: expected (B,) or (B, T) advantages and a (B, T) mask.")
    per_token = advantages.float() if advantages.dim() == 2 else advantages.float()[:, None]
    return per_token.expand(mask.shape).clone()  # (B, T)


def _check_fraction(name: str, value: float) -> None:
    if not 0 < value <= 1:
        raise ReasonlensError(f"{name}={value} must be in (0, 1]: the fraction of tokens kept.")
