"""Pure numerics of value learning: n-step returns, masked greedy values, TD errors.

Every function here is a plain tensor function with no learner state, tested by hand.
"""

from __future__ import annotations

import torch
from torch import Tensor

NEG_INF = -1e9  # stands in for -inf on illegal actions without producing NaNs


def masked_q(q: Tensor, action_mask: Tensor) -> Tensor:
    """Q-values with illegal actions pushed to a large negative number."""
    return q.masked_fill(~action_mask, NEG_INF)


def masked_argmax(q: Tensor, action_mask: Tensor) -> Tensor:
    """Index of the best legal action along the last axis (0 where nothing is legal)."""
    return masked_q(q, action_mask).argmax(dim=-1)


def greedy_values(q_target: Tensor, action_mask: Tensor, q_online: Tensor | None = None) -> Tensor:
    """Bootstrap values max_a' Q_target(a'), or Q_target(argmax_a' Q_online(a')) when double.

    q_target, q_online: [..., A]; action_mask: [..., A] bool. Returns [...]. Positions where
    no action is legal (dead agents, padding) get value 0.
    """
    any_legal = action_mask.any(dim=-1)
    if q_online is None:
        values = masked_q(q_target, action_mask).max(dim=-1).values
    else:
        best = masked_argmax(q_online, action_mask)
        values = q_target.gather(-1, best.unsqueeze(-1)).squeeze(-1)
    return torch.where(any_legal, values, torch.zeros_like(values))


def nstep_returns(
    rewards: Tensor, terminated: Tensor, filled: Tensor, gamma: float, n: int
) -> tuple[Tensor, Tensor, Tensor]:
    """n-step returns over padded sequences, cut at termination and at the sequence end.

    rewards: [B, T, K] (K reward streams, e.g. one per agent); terminated, filled: [B, T] bool
    (terminated[t]: the env ended the episode after step t; filled[t]: step t is real).
    Returns (returns [B, T, K], boot_index [B, T], discount [B, T]) such that the target of
    step t is returns[t] + discount[t] * V(obs[boot_index[t]]), where obs has T + 1 entries.
    A step within n of a termination gets discount 0; within n of the end of the filled part
    (a truncation or the end of a stored segment) it bootstraps from the last stored obs.
    """
    if n < 1:
        raise ValueError(f"n-step returns need n >= 1, got n={n}")
    batch, horizon = terminated.shape
    steps = torch.arange(horizon, device=rewards.device)
    returns = torch.zeros_like(rewards)
    count = torch.zeros(batch, horizon, dtype=torch.long, device=rewards.device)
    ended = torch.zeros(batch, horizon, dtype=torch.bool, device=rewards.device)
    running = filled.clone()
    for k in range(n):
        index = (steps + k).clamp(max=horizon - 1)
        active = running & (steps + k < horizon) & filled[:, index]
        returns = returns + (gamma**k) * active.unsqueeze(-1) * rewards[:, index]
        count = count + active.long()
        ended = ended | (active & terminated[:, index])
        running = active & ~terminated[:, index]
    discount = torch.where(ended | ~filled, 0.0, gamma ** count.to(rewards.dtype))
    return returns, steps + count, discount


def td_loss(
    predicted: Tensor, target: Tensor, mask: Tensor, weights: Tensor, kind: str
) -> tuple[Tensor, Tensor]:
    """Masked, importance-weighted TD loss and the TD errors (target - predicted).

    predicted, target, mask: the same shape [B, ...]; weights: [B]. The loss is the weighted
    sum over unmasked entries divided by the number of unmasked entries ("mse" is 0.5 * d^2,
    "huber" is smooth L1 with delta 1).
    """
    errors = (target - predicted) * mask
    if kind == "mse":
        per_entry = 0.5 * errors.pow(2)
    elif kind == "huber":
        per_entry = torch.nn.functional.huber_loss(
            predicted * mask, target * mask, reduction="none", delta=1.0
        )
    else:
        raise ValueError(f"unknown TD loss {kind!r}; expected 'mse' or 'huber'")
    return weighted_mean(per_entry, mask, weights), errors.detach()


def weighted_mean(per_entry: Tensor, mask: Tensor, weights: Tensor) -> Tensor:
    """Importance-weighted sum of `per_entry` [B, ...] over unmasked entries / their count."""
    shape = (-1,) + (1,) * (per_entry.dim() - 1)
    return (per_entry * mask * weights.reshape(shape)).sum() / mask.sum().clamp(min=1.0)
