"""simple_line and simple_formation: N agents take up evenly spaced slots.

Both score the best one-to-one matching of agents to slots (mpe2 uses scipy's
`linear_sum_assignment`); here the matching is found by trying every permutation at
once, which is exact and fast for the small N these scenarios use (at most 8).
"""

from __future__ import annotations

import itertools
import math

import torch

from marl.envs.mpe.features import distance, flat, relative
from marl.envs.mpe.scenario import Placement
from marl.envs.mpe.world import WorldState, make_spec

MAX_AGENTS = 8
"""Largest N the permutation search accepts (8! = 40,320 matchings per world)."""


def matched_distances(
    points: torch.Tensor, slots: torch.Tensor, perms: torch.Tensor
) -> torch.Tensor:
    """[B, N]: each point's distance to its slot under the matching of least total distance."""
    cost = distance(slots, points)  # [B, N agents, N slots]
    rows = torch.arange(cost.shape[1], device=cost.device)
    per_perm = cost[:, rows, perms]  # [B, P, N]
    best = per_perm.sum(-1).argmin(-1)
    return per_perm[torch.arange(cost.shape[0], device=cost.device), best]


class SlotScenario:
    """What line and formation share: the world, the reward and the success test."""

    dist_threshold = 0.05

    def __init__(
        self,
        device: torch.device,
        dtype: torch.dtype,
        n: int,
        size: float,
        landmark_sizes: list[float],
        terminate_on_success: bool,
    ) -> None:
        """N colliding, silent agents and non-colliding landmarks."""
        if not 1 <= n <= MAX_AGENTS:
            raise ValueError(f"N must be in [1, {MAX_AGENTS}] for the batched scenario, got {n}")
        names = [f"agent_{i}" for i in range(n)]
        lms = landmark_sizes
        self.spec = make_spec(names, lms, [False] * len(lms), size=size, silent=True)
        self.place = Placement(self.spec, device, dtype)
        self.perms = torch.tensor(list(itertools.permutations(range(n))), device=device)
        self.terminate_on_success = terminate_on_success

    def slots(self, s: WorldState) -> torch.Tensor:
        """[B, N, 2]: where the agents should stand."""
        raise NotImplementedError

    def observe(self, s: WorldState) -> list[torch.Tensor]:
        """[vel, pos, landmarks - pos]."""
        me = s.pos[:, : self.spec.num_agents]
        return [torch.cat((s.vel, me, flat(relative(s.pos[:, me.shape[1] :], me))), -1)]

    def gaps(self, s: WorldState) -> torch.Tensor:
        """[B, N]: distance of each agent to its matched slot."""
        return matched_distances(s.pos[:, : self.spec.num_agents], self.slots(s), self.perms)

    def reward(self, s: WorldState) -> torch.Tensor:
        """Shared by all: minus the mean matched distance (each clipped to 2)."""
        shared = -self.gaps(s).clamp(0, 2).mean(-1, keepdim=True)
        return shared.expand(-1, self.spec.num_agents)

    def is_terminal(self, s: WorldState) -> torch.Tensor | None:
        """With terminate_on_success: every agent within 0.05 of its slot."""
        if not self.terminate_on_success:
            return None
        return (self.gaps(s) < self.dist_threshold).all(-1)


class SimpleLine(SlotScenario):
    """mpe2 simple_line_v1: agents spread evenly on the segment between two landmarks."""

    total_sep = 1.25

    def __init__(
        self,
        device: torch.device,
        dtype: torch.dtype,
        N: int = 4,  # capital N: mpe2's keyword
        terminate_on_success: bool = False,
    ) -> None:
        """N agents of radius 0.03 and two landmarks of radius 0.02."""
        super().__init__(device, dtype, N, 0.03, [0.02, 0.02], terminate_on_success)
        self.turns = torch.arange(72, device=device, dtype=dtype) * math.radians(5)

    def reset(self, num_envs: int, generator: torch.Generator) -> WorldState:
        """Landmark 0 near the centre, landmark 1 at 1.25 from it inside [-1, 1]^2."""
        agents = self.place.uniform(generator, (num_envs, self.spec.num_agents, 2), -1, 1)
        start = self.place.uniform(generator, (num_envs, 1, 2), -0.25, 0.25)
        theta = self.place.uniform(generator, (num_envs, 1), 0, 2 * math.pi) + self.turns
        # Like mpe2, turn by 5 degrees until the far end lies inside the square.
        ends = start + self.total_sep * torch.stack((theta.cos(), theta.sin()), -1)
        first_inside = (ends.abs() < 1.0).all(-1).to(torch.uint8).argmax(-1)
        end = ends[torch.arange(num_envs, device=ends.device), first_inside].unsqueeze(1)
        return self.place.state(agents, torch.cat((start, end), 1))

    def slots(self, s: WorldState) -> torch.Tensor:
        """N points evenly spaced from landmark 0 to landmark 1."""
        n = self.spec.num_agents
        start, end = s.pos[:, n : n + 1], s.pos[:, n + 1 : n + 2]
        steps = torch.arange(n, device=start.device, dtype=start.dtype).view(1, -1, 1)
        return start + steps / max(n - 1, 1) * (end - start)


class SimpleFormation(SlotScenario):
    """mpe2 simple_formation_v1: agents stand evenly on a circle of radius 0.5."""

    target_radius = 0.5

    def __init__(
        self,
        device: torch.device,
        dtype: torch.dtype,
        N: int = 4,  # capital N: mpe2's keyword
        terminate_on_success: bool = False,
    ) -> None:
        """N agents of radius 0.05 around one landmark of radius 0.03."""
        super().__init__(device, dtype, N, 0.05, [0.03], terminate_on_success)

    def reset(self, num_envs: int, generator: torch.Generator) -> WorldState:
        """Agents uniform in [-1, 1]^2, the centre in [-0.5, 0.5]^2."""
        agents = self.place.uniform(generator, (num_envs, self.spec.num_agents, 2), -1, 1)
        centre = self.place.uniform(generator, (num_envs, 1, 2), -0.5, 0.5)
        return self.place.state(agents, centre)

    def slots(self, s: WorldState) -> torch.Tensor:
        """Circle points starting at the smallest agent angle (in [0, 2 pi)) around the centre."""
        n = self.spec.num_agents
        centre = s.pos[:, n : n + 1]
        rel = s.pos[:, :n] - centre
        angle = torch.atan2(rel[..., 1], rel[..., 0])
        angle = torch.where(angle < 0, angle + 2 * math.pi, angle)
        steps = torch.arange(n, device=rel.device, dtype=rel.dtype) * (2 * math.pi / n)
        theta = angle.amin(-1, keepdim=True) + steps
        circle = torch.stack((theta.cos(), theta.sin()), -1)
        return centre + self.target_radius * circle
