"""simple_tag and simple_world_comm: slower adversaries chase faster good agents."""

from __future__ import annotations

import torch

from marl.envs.mpe.features import (
    bound_penalty,
    contacts,
    distance,
    drop_self,
    flat,
    nearest,
    nearest_landmarks,
    others,
    relative,
    squared_norm,
)
from marl.envs.mpe.scenario import Placement
from marl.envs.mpe.scenarios.cooperative import check_neighbors
from marl.envs.mpe.world import WorldSpec, WorldState, make_spec


def chase_spec(
    names: list[str], num_adversaries: int, good_size: float, landmarks: list[tuple[float, bool]]
) -> WorldSpec:
    """Adversaries (radius 0.075, accel 3, speed 1) then good agents (accel 4, speed 1.3)."""
    num_good = len(names) - num_adversaries
    return make_spec(
        names,
        [size for size, _ in landmarks],
        [collide for _, collide in landmarks],
        size=[0.075] * num_adversaries + [good_size] * num_good,
        accel=[3.0] * num_adversaries + [4.0] * num_good,
        max_speed=[1.0] * num_adversaries + [1.3] * num_good,
        silent=True,
        dim_c=2,
    )


class Chase:
    """What tag and world_comm share: the adversary/good split and who touches whom."""

    def __init__(self, spec: WorldSpec, num_adversaries: int, place: Placement) -> None:
        """Index the two sides of `spec`."""
        self.spec = spec
        self.place = place
        self.num_adversaries = num_adversaries
        self.sizes = place.tensor(spec.agent_sizes)

    def reset(self, num_envs: int, generator: torch.Generator) -> WorldState:
        """Agents uniform in [-1, 1]^2, landmarks in [-0.9, 0.9]^2."""
        return self.place.state(*self.place.scatter(generator, num_envs, landmark_bound=0.9))

    def caught(self, s: WorldState) -> torch.Tensor:
        """[B, G, A] bool: good agent g touches adversary a."""
        a = self.num_adversaries
        n = self.spec.num_agents
        return contacts(s.pos[:, a:n], s.pos[:, :a], self.sizes[a:], self.sizes[:a])

    def good_velocities(
        self, s: WorldState, seen: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Velocities of the good agents as adversaries [B, A, G*2] and good agents see them.

        The good agents' block [B, G, (G-1)*2] leaves out each agent itself; `seen`
        ([B, N, N] bool) zeroes the velocities an agent cannot see.
        """
        a = self.num_adversaries
        vel = s.vel[:, a:].unsqueeze(1).expand(-1, self.spec.num_agents, -1, -1)
        if seen is not None:
            vel = vel * seen[:, :, a:].unsqueeze(-1)
        return flat(vel[:, :a]), flat(drop_self(vel[:, a:]))

    def adversary_hits(self, caught: torch.Tensor) -> torch.Tensor:
        """[B]: number of (good, adversary) pairs in contact."""
        return caught.sum((1, 2)).to(self.sizes.dtype)


class SimpleTag:
    """mpe2 simple_tag_v3: adversaries score 10 per contact with a good agent."""

    def __init__(
        self,
        device: torch.device,
        dtype: torch.dtype,
        num_good: int = 1,
        num_adversaries: int = 3,
        num_obstacles: int = 2,
        terminate_on_success: bool = False,
        num_agent_neighbors: int | None = None,
        num_landmark_neighbors: int | None = None,
    ) -> None:
        """Build the chase with `num_obstacles` colliding landmarks of radius 0.2."""
        check_neighbors("num_agent_neighbors", num_agent_neighbors)
        check_neighbors("num_landmark_neighbors", num_landmark_neighbors)
        names = [f"adversary_{i}" for i in range(num_adversaries)]
        names += [f"agent_{i}" for i in range(num_good)]
        self.spec = chase_spec(names, num_adversaries, 0.05, [(0.2, True)] * num_obstacles)
        self.place = Placement(self.spec, device, dtype)
        self.chase = Chase(self.spec, num_adversaries, self.place)
        self.good = self.place.tensor([0.0] * num_adversaries + [1.0] * num_good)
        self.terminate_on_success = terminate_on_success
        self.k_agents = num_agent_neighbors
        self.k_landmarks = num_landmark_neighbors

    def reset(self, num_envs: int, generator: torch.Generator) -> WorldState:
        """Agents uniform in [-1, 1]^2, obstacles in [-0.9, 0.9]^2."""
        return self.chase.reset(num_envs, generator)

    def observe(self, s: WorldState) -> list[torch.Tensor]:
        """[vel, pos, obstacles - pos, others - pos, good others' velocities]."""
        n, a = self.spec.num_agents, self.chase.num_adversaries
        me = s.pos[:, :n]
        to_landmarks = nearest_landmarks(s.pos, n, self.k_landmarks)
        to_others = drop_self(relative(me, me))
        head = torch.cat((s.vel, me, flat(to_landmarks)), -1)
        if self.k_agents is not None:
            d = squared_norm(to_others)
            vel = others(s.vel * self.good.unsqueeze(-1))
            seen = (nearest(to_others, d, self.k_agents), nearest(vel, d, self.k_agents))
            return [torch.cat((head, flat(seen[0]), flat(seen[1])), -1)]
        body = torch.cat((head, flat(to_others)), -1)
        adversary_view, good_view = self.chase.good_velocities(s)
        return [
            torch.cat((body[:, :a], adversary_view), -1),
            torch.cat((body[:, a:], good_view), -1),
        ]

    def reward(self, s: WorldState) -> torch.Tensor:
        """Adversaries: +10 per contact; good: -10 per adversary touching, minus bounds."""
        a, n = self.chase.num_adversaries, self.spec.num_agents
        caught = self.chase.caught(s)
        hits = self.chase.adversary_hits(caught)
        good = -10 * caught.sum(-1) - bound_penalty(s.pos[:, a:n])
        return torch.cat((10 * hits.unsqueeze(-1).expand(-1, a), good), 1)

    def is_terminal(self, s: WorldState) -> torch.Tensor | None:
        """With terminate_on_success: every good agent touches some adversary."""
        if not self.terminate_on_success:
            return None
        return self.chase.caught(s).any(-1).all(-1)


class SimpleWorldComm:
    """mpe2 simple_world_comm_v3: tag with food, forests that hide, and a talking leader."""

    def __init__(
        self,
        device: torch.device,
        dtype: torch.dtype,
        num_good: int = 2,
        num_adversaries: int = 4,
        num_obstacles: int = 1,
        num_food: int = 2,
        num_forests: int = 2,
    ) -> None:
        """Build leader + adversaries, good agents, then obstacles, food and forests."""
        names = ["leadadversary_0"] + [f"adversary_{i}" for i in range(num_adversaries - 1)]
        names += [f"agent_{i}" for i in range(num_good)]
        landmarks = [(0.2, True)] * num_obstacles + [(0.03, False)] * num_food
        landmarks += [(0.3, False)] * num_forests
        spec = chase_spec(names, num_adversaries, 0.045, landmarks)
        silent = (False,) + spec.silent[1:]
        self.spec = WorldSpec(**{**spec.__dict__, "silent": silent, "dim_c": 4})
        self.place = Placement(self.spec, device, dtype)
        self.chase = Chase(self.spec, num_adversaries, self.place)
        self.food = slice(len(names) + num_obstacles, len(names) + num_obstacles + num_food)
        self.forests = slice(self.food.stop, self.food.stop + num_forests)
        self.leader = torch.zeros(len(names), dtype=torch.bool, device=device)
        self.leader[0] = True

    def reset(self, num_envs: int, generator: torch.Generator) -> WorldState:
        """Agents uniform in [-1, 1]^2, every landmark in [-0.9, 0.9]^2."""
        return self.chase.reset(num_envs, generator)

    def sight(self, s: WorldState) -> tuple[torch.Tensor, torch.Tensor]:
        """In-forest flags [B, N, W] and who-sees-whom [B, N, N] (mpe2's forest rule)."""
        me = s.pos[:, : self.spec.num_agents]
        inside = contacts(me, s.pos[:, self.forests], self.chase.sizes, 0.3)
        shared = (inside.unsqueeze(2) & inside.unsqueeze(1)).any(-1)
        out = ~inside.any(-1)
        seen = shared | (out.unsqueeze(2) & out.unsqueeze(1)) | self.leader.view(1, -1, 1)
        return inside, seen

    def observe(self, s: WorldState) -> list[torch.Tensor]:
        """Adversaries: [vel, pos, landmarks, others, good vels, forest, leader's message]."""
        n, a = self.spec.num_agents, self.chase.num_adversaries
        me = s.pos[:, :n]
        inside, seen = self.sight(s)
        to_others = drop_self(relative(me, me) * seen.unsqueeze(-1))
        in_forest = inside.to(me.dtype) * 2 - 1
        head = torch.cat((s.vel, me, flat(relative(s.pos[:, n:], me)), flat(to_others)), -1)
        adversary_view, good_view = self.chase.good_velocities(s, seen)
        said = s.comm[:, :1].expand(-1, a, -1)
        adversaries = torch.cat((head[:, :a], adversary_view, in_forest[:, :a], said), -1)
        return [adversaries, torch.cat((head[:, a:], in_forest[:, a:], good_view), -1)]

    def reward(self, s: WorldState) -> torch.Tensor:
        """Good: -5 per catcher, bounds, +2 per food touched, food distance; adversaries: hunt."""
        a, n = self.chase.num_adversaries, self.spec.num_agents
        caught = self.chase.caught(s)
        good_pos, food = s.pos[:, a:n], s.pos[:, self.food]
        eating = contacts(good_pos, food, self.chase.sizes[a:], 0.03).sum(-1)
        good = -5 * caught.sum(-1) - 2 * bound_penalty(good_pos) + 2 * eating
        good = good - 0.05 * distance(food, good_pos).amin(-1)
        hunt = -0.1 * distance(good_pos, s.pos[:, :a]).amin(-1)
        adversaries = hunt + 5 * self.chase.adversary_hits(caught).unsqueeze(-1)
        return torch.cat((adversaries, good), 1)

    def is_terminal(self, s: WorldState) -> torch.Tensor | None:
        """Never ends early."""
        return None
