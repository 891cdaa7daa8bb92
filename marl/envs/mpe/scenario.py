"""What a batched MPE scenario provides, and the draws every scenario's reset shares."""

from __future__ import annotations

from typing import Protocol

import torch

from marl.envs.mpe.world import WorldSpec, WorldState


class Scenario(Protocol):
    """One MPE scenario over B worlds: its entities, resets, observations and rewards.

    A scenario may also define `post_step(s, generator) -> WorldState`, run after the
    physics and before rewards (collect_treasure's pickups and respawns).
    """

    spec: WorldSpec

    def reset(self, num_envs: int, generator: torch.Generator) -> WorldState:
        """Fresh initial states of `num_envs` worlds drawn from `generator`."""
        ...

    def observe(self, s: WorldState) -> list[torch.Tensor]:
        """Observations as [B, n_g, O_g] blocks of consecutive agents, in agent order."""
        ...

    def reward(self, s: WorldState) -> torch.Tensor:
        """[B, N] reward of each agent after the step that led to `s`."""
        ...

    def is_terminal(self, s: WorldState) -> torch.Tensor | None:
        """[B] bool: the episode ends early in `s` (None: this scenario never ends early)."""
        ...


class Placement:
    """Draws positions for scenario resets on one device, dtype and generator."""

    def __init__(self, spec: WorldSpec, device: torch.device, dtype: torch.dtype) -> None:
        """Remember where tensors live and how many agents and landmarks there are."""
        self.spec = spec
        self.device = device
        self.dtype = dtype

    def uniform(
        self, generator: torch.Generator, shape: tuple[int, ...], low: float, high: float
    ) -> torch.Tensor:
        """Uniform draws in [low, high) of the given shape."""
        u = torch.rand(shape, generator=generator, device=self.device, dtype=self.dtype)
        return u * (high - low) + low

    def choice(self, generator: torch.Generator, num_envs: int, n: int, k: int) -> torch.Tensor:
        """[num_envs, k] long: k independent uniform picks among n options."""
        return torch.randint(n, (num_envs, k), generator=generator, device=self.device)

    def state(
        self,
        agent_pos: torch.Tensor,
        landmark_pos: torch.Tensor,
        goals: torch.Tensor | None = None,
        targets: torch.Tensor | None = None,
    ) -> WorldState:
        """A resting world (zero velocities and messages) with the given positions."""
        b, n = agent_pos.shape[:2]
        zeros = agent_pos.new_zeros
        return WorldState(
            pos=torch.cat((agent_pos, landmark_pos), 1),
            vel=zeros(b, n, 2),
            comm=zeros(b, n, self.spec.dim_c),
            goals=goals
            if goals is not None
            else torch.zeros(b, 0, dtype=torch.long, device=agent_pos.device),
            targets=targets if targets is not None else zeros(b, 0, 2),
        )

    def scatter(
        self, generator: torch.Generator, num_envs: int, landmark_bound: float = 1.0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Agents uniform in [-1, 1]^2 and landmarks uniform in [-bound, bound]^2."""
        spec = self.spec
        agents = self.uniform(generator, (num_envs, spec.num_agents, 2), -1.0, 1.0)
        bound = landmark_bound
        landmarks = self.uniform(generator, (num_envs, spec.num_landmarks, 2), -bound, bound)
        return agents, landmarks

    def tensor(self, values: object) -> torch.Tensor:
        """A float tensor of `values` on this device and dtype."""
        return torch.tensor(values, device=self.device, dtype=self.dtype)
