"""simple (one agent reaches a landmark) and simple_spread (N agents cover N landmarks)."""

from __future__ import annotations

import torch

from marl.envs.mpe.features import (
    distance,
    drop_self,
    flat,
    mix_rewards,
    nearest,
    nearest_landmarks,
    others,
    relative,
    squared_norm,
)
from marl.envs.mpe.scenario import Placement
from marl.envs.mpe.world import WorldState, make_spec


def check_neighbors(name: str, value: int | None) -> None:
    """Refuse a neighbour count that is not None or a positive int (as mpe2 does)."""
    if value is not None and (not isinstance(value, int) or value <= 0):
        raise ValueError(f"{name} must be a positive int or None, got {value!r}")


class Simple:
    """mpe2 simple_v3: one agent, rewarded by minus its squared distance to one landmark."""

    def __init__(self, device: torch.device, dtype: torch.dtype) -> None:
        """Build the one-agent, one-landmark world."""
        self.spec = make_spec(["agent_0"], [0.05], [False], collide=False, silent=True)
        self.place = Placement(self.spec, device, dtype)

    def reset(self, num_envs: int, generator: torch.Generator) -> WorldState:
        """Agent and landmark uniform in [-1, 1]^2."""
        return self.place.state(*self.place.scatter(generator, num_envs))

    def observe(self, s: WorldState) -> list[torch.Tensor]:
        """[velocity, landmark - position]."""
        return [torch.cat((s.vel, s.pos[:, 1:] - s.pos[:, :1]), -1)]

    def reward(self, s: WorldState) -> torch.Tensor:
        """Minus the squared distance to the landmark."""
        return -squared_norm(s.pos[:, :1] - s.pos[:, 1:])

    def is_terminal(self, s: WorldState) -> torch.Tensor | None:
        """Never ends early."""
        return None


class SimpleSpread:
    """mpe2 simple_spread_v3: N agents cover N landmarks without bumping into each other."""

    capture_radius = 0.1

    def __init__(
        self,
        device: torch.device,
        dtype: torch.dtype,
        N: int = 3,  # capital N: mpe2's keyword
        local_ratio: float = 0.5,
        terminate_on_success: bool = False,
        num_agent_neighbors: int | None = None,
        num_landmark_neighbors: int | None = None,
    ) -> None:
        """Build N agents of radius 0.15 and N non-colliding landmarks."""
        if not 0.0 <= local_ratio <= 1.0:
            raise ValueError(f"local_ratio must be in [0, 1], got {local_ratio}")
        check_neighbors("num_agent_neighbors", num_agent_neighbors)
        check_neighbors("num_landmark_neighbors", num_landmark_neighbors)
        names = [f"agent_{i}" for i in range(N)]
        self.spec = make_spec(names, [0.05] * N, [False] * N, size=0.15, silent=True, dim_c=2)
        self.place = Placement(self.spec, device, dtype)
        self.local_ratio = local_ratio
        self.terminate_on_success = terminate_on_success
        self.k_agents = num_agent_neighbors
        self.k_landmarks = num_landmark_neighbors

    def reset(self, num_envs: int, generator: torch.Generator) -> WorldState:
        """Agents and landmarks uniform in [-1, 1]^2."""
        return self.place.state(*self.place.scatter(generator, num_envs))

    def observe(self, s: WorldState) -> list[torch.Tensor]:
        """[vel, pos, landmarks - pos, others - pos, others' messages]."""
        n = self.spec.num_agents
        me = s.pos[:, :n]
        to_landmarks = nearest_landmarks(s.pos, n, self.k_landmarks)
        to_others = drop_self(relative(me, me))
        heard = others(s.comm)
        if self.k_agents is not None:
            d = squared_norm(to_others)
            heard = nearest(heard, d, self.k_agents)
            to_others = nearest(to_others, d, self.k_agents)
        parts = (s.vel, me, flat(to_landmarks), flat(to_others), flat(heard))
        return [torch.cat(parts, -1)]

    def landmark_gaps(self, s: WorldState) -> torch.Tensor:
        """[B, L]: distance from each landmark to its nearest agent."""
        n = self.spec.num_agents
        return distance(s.pos[:, :n], s.pos[:, n:]).amin(-1)

    def reward(self, s: WorldState) -> torch.Tensor:
        """Shared: minus the summed landmark gaps; local: minus one per agent touched."""
        n = self.spec.num_agents
        touching = distance(s.pos[:, :n], s.pos[:, :n]) < 2 * self.spec.agent_sizes[0]
        collisions = drop_self(touching).sum(-1)
        shared = -self.landmark_gaps(s).sum(-1)
        return mix_rewards(-collisions.to(shared.dtype), shared, self.local_ratio)

    def is_terminal(self, s: WorldState) -> torch.Tensor | None:
        """With terminate_on_success: every landmark has an agent within 0.1."""
        if not self.terminate_on_success:
            return None
        return (self.landmark_gaps(s) < self.capture_radius).all(-1)
