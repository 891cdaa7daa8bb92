"""What a search is asked (`SearchConfig`) and what it answers (`SearchResult`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import NamedTuple

from torch import Tensor


@dataclass(frozen=True)
class SearchConfig:
    """How one search runs."""

    simulations: int = 64
    """Simulations per move (each adds at most one node to each tree)."""
    c_puct: float = 1.5
    """Exploration weight: score = Q + c_puct * prior * sqrt(N_parent) / (1 + N_child)."""
    fpu: float = 0.0
    """Value assumed for a move never tried (first-play urgency)."""
    dirichlet_alpha: float = 0.3
    """Concentration of the root Dirichlet noise."""
    dirichlet_fraction: float = 0.0
    """Weight of the root noise in the root priors (0 turns noise off; AlphaZero used 0.25)."""
    forced_playouts: float = 0.0
    """k of KataGo's forced playouts (Wu 2019): a root move of prior P is searched at least
    sqrt(k * P * N) times (N: the root's visits so far), and the policy target takes those
    visits back where they were only forced (policy target pruning). 0 turns both off; KataGo
    uses 2. PUCT on game values only (not with `gumbel` or `normalize_q`)."""
    gumbel: bool = False
    """Choose root moves by Gumbel top-k with sequential halving (Danihelka et al. 2022)."""
    gumbel_considered: int = 16
    """Root moves sequential halving starts from (the paper's m)."""
    gumbel_c_visit: float = 50.0
    """c_visit of the monotone transform sigma(q) = (c_visit + max N) * c_scale * q."""
    gumbel_c_scale: float = 1.0
    """c_scale of the same transform."""
    reuse_tree: bool = True
    """Keep the subtree below the played move for the next search."""
    discount: float = 1.0
    """Discount of the backup `reward + discount * value` (1 for board games; MuZero on a
    single-agent env uses its own, e.g. 0.997)."""
    normalize_q: bool = False
    """Min-max normalise Q in the PUCT scores over the values seen in each tree (MuZero's
    normalisation for rewards of unknown scale; board games' values already lie in [-1, 1])."""

    def greedy(self, simulations: int | None = None) -> SearchConfig:
        """This search without self-play's exploration (root noise, Gumbel's sampled root
        moves, forced playouts): how trained players search; `simulations` if given."""
        changes = {"simulations": simulations} if simulations else {}
        return dataclasses.replace(
            self, dirichlet_fraction=0.0, gumbel=False, forced_playouts=0.0, **changes
        )

    def validate(self) -> None:
        """Refuse settings no search can run with."""
        if self.simulations < 1:
            raise ValueError(f"simulations={self.simulations}: expected at least 1")
        if not 0.0 <= self.dirichlet_fraction <= 1.0:
            raise ValueError(f"dirichlet_fraction={self.dirichlet_fraction}: expected 0..1")
        if self.dirichlet_fraction > 0 and not self.dirichlet_alpha > 0:
            raise ValueError(f"dirichlet_alpha={self.dirichlet_alpha}: expected > 0 (noise on)")
        if not self.c_puct >= 0:
            raise ValueError(f"c_puct={self.c_puct}: expected >= 0")
        if self.gumbel_considered < 1:
            raise ValueError(f"gumbel_considered={self.gumbel_considered}: expected at least 1")
        for name in ("gumbel_c_visit", "gumbel_c_scale"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}={getattr(self, name)}: expected > 0")
        if not 0.0 < self.discount <= 1.0:
            raise ValueError(f"discount={self.discount}: expected 0 < discount <= 1")
        if self.forced_playouts < 0:
            raise ValueError(f"forced_playouts={self.forced_playouts}: expected >= 0")
        if self.forced_playouts > 0 and (self.gumbel or self.normalize_q):
            raise ValueError(
                "forced_playouts works with PUCT on game values: turn off "
                f"{'gumbel' if self.gumbel else 'normalize_q (a single-agent MuZero search)'}"
            )


class SearchResult(NamedTuple):
    """What a search of B trees returns."""

    visit_counts: Tensor  # [B, A] root children's visit counts
    policy: Tensor  # [B, A] training target: visit shares, or Gumbel's improved policy
    root_value: Tensor  # [B] mean value of the root from the side to move's view
    action: Tensor | None  # [B] Gumbel's chosen move (None for PUCT: use select_action)
