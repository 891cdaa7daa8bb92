"""simple_adversary and simple_push: good agents and one adversary race for a goal landmark."""

from __future__ import annotations

import torch

from marl.envs.mpe.features import (
    distance,
    drop_self,
    flat,
    nearest,
    nearest_landmarks,
    relative,
    squared_norm,
)
from marl.envs.mpe.scenario import Placement
from marl.envs.mpe.scenarios.cooperative import check_neighbors
from marl.envs.mpe.world import WorldState, make_spec


def adversary_names(num_good: int) -> list[str]:
    """One adversary then `num_good` good agents, as mpe2 names them."""
    return ["adversary_0"] + [f"agent_{i}" for i in range(num_good)]


def goal_position(s: WorldState, num_agents: int) -> torch.Tensor:
    """[B, 2]: the position of the goal landmark (landmark index in goals[:, 0])."""
    index = (num_agents + s.goals[:, 0]).view(-1, 1, 1).expand(-1, 1, 2)
    return s.pos.gather(1, index).squeeze(1)


class SimpleAdversary:
    """mpe2 simple_adversary_v3: good agents hide which of N landmarks is the goal."""

    def __init__(
        self,
        device: torch.device,
        dtype: torch.dtype,
        N: int = 2,  # capital N: mpe2's keyword
        num_agent_neighbors: int | None = None,
        num_landmark_neighbors: int | None = None,
    ) -> None:
        """Build one adversary, N good agents (radius 0.15) and N landmarks (radius 0.08)."""
        check_neighbors("num_agent_neighbors", num_agent_neighbors)
        check_neighbors("num_landmark_neighbors", num_landmark_neighbors)
        names = adversary_names(N)
        lms = [0.08] * N
        self.spec = make_spec(
            names, lms, [False] * N, size=0.15, collide=False, silent=True, dim_c=2
        )
        self.place = Placement(self.spec, device, dtype)
        self.k_agents = num_agent_neighbors
        self.k_landmarks = num_landmark_neighbors

    def reset(self, num_envs: int, generator: torch.Generator) -> WorldState:
        """A random goal landmark; agents and landmarks uniform in [-1, 1]^2."""
        goal = self.place.choice(generator, num_envs, self.spec.num_landmarks, 1)
        return self.place.state(*self.place.scatter(generator, num_envs), goals=goal)

    def observe(self, s: WorldState) -> list[torch.Tensor]:
        """Adversary: [landmarks, others]; good agents: [goal, landmarks, others] (relative)."""
        n = self.spec.num_agents
        me = s.pos[:, :n]
        to_landmarks = nearest_landmarks(s.pos, n, self.k_landmarks)
        to_others = drop_self(relative(me, me))
        to_others = nearest(to_others, squared_norm(to_others), self.k_agents)
        seen = torch.cat((flat(to_landmarks), flat(to_others)), -1)
        to_goal = goal_position(s, n).unsqueeze(1) - me[:, 1:]
        return [seen[:, :1], torch.cat((to_goal, seen[:, 1:]), -1)]

    def reward(self, s: WorldState) -> torch.Tensor:
        """Adversary: minus its goal distance; good: adversary's minus their closest one's."""
        n = self.spec.num_agents
        gap = distance(goal_position(s, n).unsqueeze(1), s.pos[:, :n]).squeeze(-1)  # [B, N]
        good = gap[:, :1] - gap[:, 1:].amin(-1, keepdim=True)
        return torch.cat((-gap[:, :1], good.expand(-1, n - 1)), 1)

    def is_terminal(self, s: WorldState) -> torch.Tensor | None:
        """Never ends early."""
        return None


class SimplePush:
    """mpe2 simple_push_v3: the good agent reaches its goal; the adversary pushes it away."""

    landmark_colors = ((0.1, 0.9, 0.1), (0.1, 0.1, 0.9))

    def __init__(self, device: torch.device, dtype: torch.dtype) -> None:
        """Build one adversary and one good agent (colliding) and two landmarks."""
        names = adversary_names(1)
        self.spec = make_spec(names, [0.05, 0.05], [False, False], silent=True, dim_c=2)
        self.place = Placement(self.spec, device, dtype)
        self.colors = self.place.tensor(self.landmark_colors)  # [L, 3]

    def reset(self, num_envs: int, generator: torch.Generator) -> WorldState:
        """A random goal landmark; agents and landmarks uniform in [-1, 1]^2."""
        goal = self.place.choice(generator, num_envs, self.spec.num_landmarks, 1)
        return self.place.state(*self.place.scatter(generator, num_envs), goals=goal)

    def observe(self, s: WorldState) -> list[torch.Tensor]:
        """Adversary: [vel, landmarks, other]; good: [vel, goal, own and landmark colours...]."""
        me = s.pos[:, :2]
        to_landmarks = flat(relative(s.pos[:, 2:], me))  # [B, 2, 4]
        to_other = me.flip(1) - me
        adversary = torch.cat((s.vel[:, :1], to_landmarks[:, :1], to_other[:, :1]), -1)
        b = s.pos.shape[0]
        to_goal = goal_position(s, 2) - me[:, 1]
        # The good agent is grey with its goal's colour channel raised by 0.5.
        color = (self.colors[s.goals[:, 0]] > 0.5) * 0.5 + 0.25
        colors = self.colors.flatten().expand(b, -1)
        parts = (s.vel[:, 1], to_goal, color, to_landmarks[:, 1], colors, to_other[:, 1])
        return [adversary, torch.cat(parts, -1).unsqueeze(1)]

    def reward(self, s: WorldState) -> torch.Tensor:
        """Good: minus its goal distance; adversary: good's goal distance minus its own."""
        gap = distance(goal_position(s, 2).unsqueeze(1), s.pos[:, :2]).squeeze(-1)  # [B, 2]
        return torch.stack((gap[:, 1] - gap[:, 0], -gap[:, 1]), 1)

    def is_terminal(self, s: WorldState) -> torch.Tensor | None:
        """Never ends early."""
        return None
