"""MuZero's training targets: the value transform h, categorical supports, n-step returns.

MuZero (Schrittwieser et al. 2020, appendix F) trains value and reward heads as categorical
distributions over an integer support after squashing scalars with the invertible

    h(x) = sign(x) (sqrt(|x| + 1) - 1) + eps x,

so returns of very different scales share one loss. A scalar is encoded as the two-hot
distribution on its two neighbouring support points; a prediction is decoded as the
expectation over the support, then h^-1. Value targets are n-step returns bootstrapped from
the (search) value n steps later. In two-player zero-sum games the value at each step is
from the view of the player to move, so every step between t and t + k flips the sign.

The MuZero learner (`marl.search.muzero`) uses them; their exact-number tests are in
tests/test_muzero_targets.py.
"""

from __future__ import annotations

import torch
from torch import Tensor

EPS = 1e-3
"""The eps of h: keeps h^-1 Lipschitz (MuZero's value)."""


def h(x: Tensor, eps: float = EPS) -> Tensor:
    """The squashing transform sign(x) (sqrt(|x| + 1) - 1) + eps x."""
    return x.sign() * ((x.abs() + 1).sqrt() - 1) + eps * x


def h_inverse(y: Tensor, eps: float = EPS) -> Tensor:
    """The exact inverse of `h` (the positive root of the quadratic in sqrt(|x| + 1))."""
    root = ((1 + 4 * eps * (y.abs() + 1 + eps)).sqrt() - 1) / (2 * eps)
    return y.sign() * (root.square() - 1)


def to_support(x: Tensor, size: int, eps: float = EPS) -> Tensor:
    """Scalars [...] -> two-hot distributions [..., 2 * size + 1] over the integers -size..size
    of h(x) (h(x) clipped to the support's range)."""
    y = h(x, eps).clamp(-size, size)
    low = y.floor()
    upper_weight = y - low
    out = torch.zeros(*x.shape, 2 * size + 1, dtype=x.dtype, device=x.device)
    index = (low + size).long()
    out.scatter_(-1, index.unsqueeze(-1), (1 - upper_weight).unsqueeze(-1))
    upper = (index + 1).clamp(max=2 * size)  # at the top, upper_weight is 0 anyway
    out.scatter_add_(-1, upper.unsqueeze(-1), upper_weight.unsqueeze(-1))
    return out


def from_support(probs: Tensor, eps: float = EPS) -> Tensor:
    """Distributions [..., 2 * size + 1] over -size..size -> scalars: h^-1 of the mean."""
    size = (probs.shape[-1] - 1) // 2
    points = torch.arange(-size, size + 1, dtype=probs.dtype, device=probs.device)
    return h_inverse((probs * points).sum(-1), eps)


def n_step_values(
    rewards: Tensor, values: Tensor, n: int, discount: float, two_player: bool = False
) -> Tensor:
    """n-step value targets of one episode.

    `rewards[t]` is the reward of the move made at step t (from the mover's view), `values`
    [T + 1] the bootstrap value of each position from the view of its player to move
    (values[T], after the last move, is 0 for a finished episode). The target at t is
    sum_{k<n} s^k discount^k rewards[t + k] + s^n discount^n values[t + n], cut at the end
    of the episode, where s = -1 when two players alternate (each step changes whose view
    a value is from) and 1 for a single agent.
    """
    steps = len(rewards)
    if values.shape != (steps + 1,):
        raise ValueError(f"values must have shape [{steps + 1}] (one per position), got "
                         f"{tuple(values.shape)}")  # fmt: skip
    factor = torch.tensor(-discount if two_player else discount, dtype=values.dtype)
    t = torch.arange(steps, device=values.device)
    ahead = t[:, None] + torch.arange(n, device=values.device)[None]  # [T, n] steps t..t+n-1
    window = torch.where(ahead < steps, rewards[ahead.clamp(max=max(steps - 1, 0))], 0.0)
    powers = factor ** torch.arange(n, dtype=values.dtype)
    end = (t + n).clamp(max=steps)
    return (window * powers).sum(1) + factor ** (end - t).to(values.dtype) * values[end]
