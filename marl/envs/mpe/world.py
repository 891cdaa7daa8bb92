"""The MPE world over batched tensors: entity properties, state, controls and physics.

Entities are ordered as mpe2 orders `world.entities`: the N agents first, then the
landmarks. One physics step follows mpe2's `World.step` exactly: action forces, soft
contact forces between colliding entities (pairwise, as one tensor op), then
position += velocity * dt, damping, velocity += force / mass * dt, and the speed cap.
Motor and communication noise are not modelled (no mpe2 scenario turns them on).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F

from marl.envs.mpe.features import relative, squared_norm

MOVE_DIM = 5
"""Discrete movement choices: no-op, left, right, down, up (mpe2's order)."""


@dataclass(frozen=True)
class WorldSpec:
    """The static properties of one scenario's entities (agents first, then landmarks)."""

    agent_names: tuple[str, ...]
    """Agent names in mpe2's order; the N axis of every tensor."""
    landmark_sizes: tuple[float, ...]
    """Radius of each landmark."""
    landmark_collide: tuple[bool, ...]
    """Whether each landmark pushes agents away on contact."""
    agent_sizes: tuple[float, ...]
    """Radius of each agent."""
    agent_collide: tuple[bool, ...]
    """Whether each agent takes part in contact forces."""
    movable: tuple[bool, ...]
    """Whether each agent moves (mpe2's `movable`); immovable agents only talk."""
    silent: tuple[bool, ...]
    """Whether each agent cannot send messages."""
    accel: tuple[float, ...]
    """Force per unit of movement action (mpe2's `accel`, 5.0 where mpe2 has None)."""
    max_speed: tuple[float, ...]
    """Speed cap of each agent (inf where mpe2 has None)."""
    mass: tuple[float, ...]
    """Mass of each agent."""
    dim_c: int = 0
    """Size of a message (communication channel dimensionality)."""
    dt: float = 0.1
    """Integration time step."""
    damping: float = 0.25
    """Fraction of velocity lost per step."""
    contact_force: float = 1e2
    """Stiffness of the soft contact force."""
    contact_margin: float = 1e-3
    """Softness of the contact force (softplus temperature)."""

    @property
    def num_agents(self) -> int:
        """N, the number of agents."""
        return len(self.agent_names)

    @property
    def num_landmarks(self) -> int:
        """L, the number of landmarks."""
        return len(self.landmark_sizes)


def make_spec(
    agent_names: list[str],
    landmark_sizes: list[float],
    landmark_collide: list[bool],
    *,
    size: float | list[float] = 0.05,
    collide: bool | list[bool] = True,
    movable: bool | list[bool] = True,
    silent: bool | list[bool] = False,
    accel: float | list[float] = 5.0,
    max_speed: float | list[float] = math.inf,
    mass: float | list[float] = 1.0,
    dim_c: int = 0,
) -> WorldSpec:
    """A WorldSpec where each agent property is one value for all agents or a list."""
    n = len(agent_names)

    def per_agent(value: object) -> tuple:
        values = tuple(value) if isinstance(value, list) else (value,) * n
        if len(values) != n:
            raise ValueError(f"expected {n} per-agent values, got {len(values)}")
        return values

    return WorldSpec(
        agent_names=tuple(agent_names),
        landmark_sizes=tuple(landmark_sizes),
        landmark_collide=tuple(landmark_collide),
        agent_sizes=per_agent(size),
        agent_collide=per_agent(collide),
        movable=per_agent(movable),
        silent=per_agent(silent),
        accel=per_agent(accel),
        max_speed=per_agent(max_speed),
        mass=per_agent(mass),
        dim_c=dim_c,
    )


class WorldState(NamedTuple):
    """The state of B worlds; every field has the batch as its first axis."""

    pos: torch.Tensor  # [B, E, 2] positions, agents then landmarks
    vel: torch.Tensor  # [B, N, 2] agent velocities (landmarks never move)
    comm: torch.Tensor  # [B, N, C] each agent's last message (zeros for silent agents)
    goals: torch.Tensor  # [B, G] long: the scenario's discrete draws (goal landmark, key...)
    targets: torch.Tensor  # [B, T, 2] the scenario's continuous targets (may be empty)


def merge_states(take_new: torch.Tensor, new: WorldState, old: WorldState) -> WorldState:
    """Row b of `new` where `take_new[b]`, else row b of `old`."""
    fields = []
    for n, o in zip(new, old):
        mask = take_new.view(-1, *([1] * (n.dim() - 1)))
        fields.append(torch.where(mask, n, o))
    return WorldState(*fields)


class Physics:
    """A WorldSpec as tensors on one device, and the step of B worlds under it."""

    def __init__(self, spec: WorldSpec, device: torch.device, dtype: torch.dtype) -> None:
        """Precompute the tensors the hot path reads."""
        n = spec.num_agents
        self.spec = spec
        kw = {"device": device, "dtype": dtype}
        movable = torch.tensor(spec.movable, device=device)

        def per_axis(x: torch.Tensor) -> torch.Tensor:
            # [N] -> [N, 2] materialized: torch broadcasts [B, N, 2] * [N, 2] ~10x faster
            # on the CPU than [B, N, 2] * [N, 1].
            return x.unsqueeze(-1).expand(-1, 2).contiguous()

        self.push = per_axis(torch.tensor(spec.accel, **kw) * movable)
        self.speaks = ~torch.tensor(spec.silent, device=device)
        self.any_speaker = not all(spec.silent) and spec.dim_c > 0
        self.inv_mass = per_axis(1.0 / torch.tensor(spec.mass, **kw))
        self.max_speed = per_axis(torch.tensor(spec.max_speed, **kw))
        self.capped = any(math.isfinite(s) for s in spec.max_speed)
        sizes = spec.agent_sizes + spec.landmark_sizes
        colliders = [i for i, c in enumerate(spec.agent_collide + spec.landmark_collide) if c]
        self.colliders = torch.tensor(colliders, device=device, dtype=torch.long)
        if colliders == list(range(len(colliders))):
            self.colliders = slice(0, len(colliders))  # a slice copies nothing
        self.agent_colliders = torch.tensor(
            [i for i in colliders if i < n], device=device, dtype=torch.long
        )
        ka = len(self.agent_colliders)
        csize = torch.tensor([sizes[i] for i in colliders], **kw)
        self.contact_dist = csize[:ka, None] + csize[None, :]  # [Ka, K]
        eye = torch.eye(ka, len(colliders), **kw)
        self.not_self, self.self_one = 1 - eye, eye  # masks without torch.where
        self.pushed = per_axis(movable[self.agent_colliders].to(dtype))  # [Ka, 2]
        self.all_agents_collide = ka == n
        self.moves = torch.tensor(
            [[0.0, 0.0], [-1.0, 0.0], [1.0, 0.0], [0.0, -1.0], [0.0, 1.0]], **kw
        )
        self.move_dim = torch.tensor([MOVE_DIM if m else 1 for m in spec.movable], device=device)
        offsets = torch.tensor([MOVE_DIM if m else 0 for m in spec.movable], device=device)
        self.comm_index = offsets[:, None] + torch.arange(spec.dim_c, device=device)  # [N, C]

    def discrete_controls(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Forces [B, N, 2] and messages [B, N, C] from discrete actions [B, N]."""
        move = actions % self.move_dim
        force = self.moves[move] * self.push
        c = self.spec.dim_c
        if not self.any_speaker:
            return force, force.new_zeros(*actions.shape, c)
        said = F.one_hot(actions // self.move_dim, c).to(force.dtype)
        return force, said * self.speaks.unsqueeze(-1)

    def continuous_controls(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Forces [B, N, 2] and messages [B, N, C] from actions in [0, 1], [B, N, D]."""
        a = actions.clamp(0.0, 1.0)
        if a.shape[-1] < MOVE_DIM:
            a = F.pad(a, (0, MOVE_DIM - a.shape[-1]))
        force = torch.stack((a[..., 2] - a[..., 1], a[..., 4] - a[..., 3]), -1) * self.push
        index = self.comm_index.clamp(max=a.shape[-1] - 1).expand(a.shape[0], -1, -1)
        said = a.gather(-1, index) * self.speaks.unsqueeze(-1)
        return force, said

    def contact_forces(self, pos: torch.Tensor) -> torch.Tensor:
        """[B, Ka, 2]: the summed soft contact force on each colliding agent."""
        p = pos[:, self.colliders]  # [B, K, 2]
        ka = self.contact_dist.shape[0]
        toward = relative(p, p[:, :ka])  # [B, Ka, K, 2]: pos_j - pos_i
        dist = squared_norm(toward).sqrt()
        k = self.spec.contact_margin
        penetration = F.softplus((self.contact_dist - dist) / k) * (k * self.spec.contact_force)
        # An entity's distance to itself is 0: divide by 1 there and mask the term out.
        scale = penetration * self.not_self / (dist + self.self_one)
        # Contact pushes i away from j, against `toward`.
        return -(toward * scale.unsqueeze(-1)).sum(2) * self.pushed

    def step(self, s: WorldState, force: torch.Tensor, said: torch.Tensor) -> WorldState:
        """Advance B worlds one step under agent forces [B, N, 2] and messages [B, N, C]."""
        n = self.spec.num_agents
        if len(self.agent_colliders):
            contact = self.contact_forces(s.pos)
            if self.all_agents_collide:
                force = force + contact
            else:
                force = force.index_add(1, self.agent_colliders, contact)
        agent_pos = s.pos[:, :n] + s.vel * self.spec.dt
        vel = s.vel * (1 - self.spec.damping) + force * self.inv_mass * self.spec.dt
        if self.capped:
            speed = squared_norm(vel).sqrt().unsqueeze(-1)
            vel = torch.where(speed > self.max_speed, vel / speed * self.max_speed, vel)
        pos = torch.cat((agent_pos, s.pos[:, n:]), 1)
        return s._replace(pos=pos, vel=vel, comm=said)
