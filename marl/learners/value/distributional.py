"""C51's categorical return distribution (Bellemare et al. 2017): the support and projection.

A return distribution is a probability vector over `atoms` evenly spaced values from `v_min`
to `v_max`. The Bellman target r + gamma^n * discount * z moves and shrinks those values off
the support; `project` puts the mass back onto the two nearest atoms in proportion to how
close each is (values outside [v_min, v_max] are clipped to the end atoms first).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

# Positions within this many atom widths of an atom count as on it, so the float rounding of
# the support (v_min + i * delta_z) does not smear an exact hit over two atoms.
SNAP = 1e-4


@dataclass(frozen=True)
class CategoricalSupport:
    """The fixed atoms z_i = v_min + i * delta_z, i = 0 .. atoms - 1, of C51."""

    v_min: float = -10.0
    """Smallest representable return (the first atom)."""
    v_max: float = 10.0
    """Largest representable return (the last atom)."""
    atoms: int = 51
    """Number of atoms (51 in C51 and Rainbow)."""

    def __post_init__(self) -> None:
        if self.atoms < 2:
            raise ValueError(f"CategoricalSupport.atoms={self.atoms}: need at least 2")
        if not self.v_min < self.v_max:
            raise ValueError(
                f"CategoricalSupport: v_min={self.v_min} must be below v_max={self.v_max}"
            )

    @property
    def delta_z(self) -> float:
        """Distance between neighbouring atoms."""
        return (self.v_max - self.v_min) / (self.atoms - 1)

    def values(self, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu"):
        """The atoms z as a [atoms] tensor."""
        steps = torch.arange(self.atoms, dtype=dtype, device=device)
        return self.v_min + steps * self.delta_z


def expected_value(probs: Tensor, support: CategoricalSupport) -> Tensor:
    """Mean of each distribution: probs [..., atoms] -> [...] (a Q-value per action)."""
    return (probs * support.values(probs.dtype, probs.device)).sum(-1)


def project(
    probs: Tensor, rewards: Tensor, discounts: Tensor, gamma_n: float, support: CategoricalSupport
) -> Tensor:
    """Project the distribution of r + gamma_n * discount * z onto the support.

    probs: [B, atoms], the next state's distribution (of the bootstrap action); rewards: [B],
    the (n-step) rewards; discounts: [B], 1 to bootstrap and 0 at a terminal step (then all
    mass lands on the atoms around r); gamma_n: gamma ** n. Returns [B, atoms], each row
    summing to the same mass as the row of `probs`.
    """
    atoms = support.atoms
    z = support.values(probs.dtype, probs.device)
    scale = (gamma_n * discounts.to(probs.dtype)).unsqueeze(-1)
    shifted = (rewards.to(probs.dtype).unsqueeze(-1) + scale * z).clamp(
        support.v_min, support.v_max
    )
    position = (shifted - support.v_min) / support.delta_z  # [B, atoms], in [0, atoms - 1]
    nearest = position.round()
    position = torch.where((position - nearest).abs() < SNAP, nearest, position)
    lower = position.floor().clamp(0, atoms - 1)
    upper_weight = position - lower  # 0 when the value sits on an atom
    upper = (lower + 1).clamp(max=atoms - 1)
    out = torch.zeros_like(probs)
    out.scatter_add_(-1, lower.long(), probs * (1.0 - upper_weight))
    out.scatter_add_(-1, upper.long(), probs * upper_weight)
    return out


def cross_entropy(log_probs: Tensor, target_probs: Tensor) -> Tensor:
    """C51's loss per sample: -sum_i target_i * log p_i, [B, atoms] -> [B]."""
    return -(target_probs * log_probs).sum(-1)


def categorical_target(
    next_probs: Tensor,
    next_q: Tensor,
    action_mask: Tensor,
    rewards: Tensor,
    discounts: Tensor,
    support: CategoricalSupport,
) -> Tensor:
    """C51's target: the projected distribution of r + discount * z of the bootstrap action.

    next_probs: [..., A, atoms], the target net's distributions at the bootstrap step;
    next_q: [..., A], the values that pick the bootstrap action among the legal ones (the
    online net's expected values for double Q, the target net's for plain C51); action_mask:
    [..., A] bool; rewards: [...] n-step returns; discounts: [...] gamma^k, 0 after a
    termination (where no action is legal, the target is r alone). Returns [..., atoms].
    """
    best = next_q.masked_fill(~action_mask, float("-inf")).argmax(dim=-1)
    index = best[..., None, None].expand(*best.shape, 1, next_probs.shape[-1])
    chosen = next_probs.gather(-2, index).squeeze(-2)  # [..., atoms]
    discounts = discounts * action_mask.any(dim=-1)
    lead = chosen.shape[:-1]
    flat = project(
        chosen.reshape(-1, support.atoms), rewards.reshape(-1), discounts.reshape(-1), 1.0, support
    )
    return flat.reshape(*lead, support.atoms)
