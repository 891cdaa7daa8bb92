"""Actors and critics of the off-policy learner, and the action distributions they draw from.

Actions are coded the same way for every env: a Box action is a vector in [-1, 1]^D
(scaled to the Box's bounds only when handed to the env), a discrete action is a one-hot
vector of width A. The critic reads the coded actions; the env reads `to_env`'s.

- deterministic (DDPG, TD3): a = tanh(actor(obs)), plus Gaussian noise when exploring;
- squashed Gaussian (SAC): a = tanh(u), u ~ N(mean, std), with the tanh log-prob correction;
- discrete (all three): the straight-through Gumbel-softmax of the MADDPG paper: a one-hot
  sample forward, the gradient of the relaxed softmax sample backward.

Agent-indexed tensors put agents on the second-to-last axis, `[..., N, F]`, as in the PPO
family, whose `AgentGroups` (parameter sharing per team) and `mlp` are used here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import gymnasium
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from marl.learners.ppo.nets import AgentGroups, box_bounds, mask_logits, mlp

LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0  # SAC's log-std range (tanh-rescaled into it)


def squashed_gaussian(
    mean: Tensor, log_std: Tensor, noise: Tensor, dim_mask: Tensor
) -> tuple[Tensor, Tensor]:
    """a = tanh(mean + std * noise) and its log-density summed over the kept dims.

    log p(a) = log N(u; mean, std) - log(1 - tanh(u)^2), with the correction written as
    2 (log 2 - u - softplus(-2u)), which stays finite where tanh(u) rounds to +-1.
    """
    u = mean + log_std.exp() * noise
    gaussian = -0.5 * noise**2 - log_std - 0.5 * math.log(2 * math.pi)
    correction = 2.0 * (math.log(2.0) - u - F.softplus(-2.0 * u))
    return torch.tanh(u) * dim_mask, ((gaussian - correction) * dim_mask).sum(-1)


def gumbel_noise(shape: torch.Size, generator: torch.Generator, device: torch.device) -> Tensor:
    """Standard Gumbel draws -log(-log U) of `shape`."""
    uniform = torch.rand(shape, generator=generator, device=device)
    return -torch.log(-torch.log(uniform.clamp(1e-10, 1.0 - 1e-7)))


def gumbel_softmax_st(logits: Tensor, gumbels: Tensor, temperature: float) -> Tensor:
    """Straight-through Gumbel-softmax: forward the one-hot argmax of logits + gumbels,
    backward the gradient of softmax((logits + gumbels) / temperature)."""
    soft = torch.softmax((logits + gumbels) / temperature, dim=-1)
    hard = F.one_hot(soft.argmax(-1), soft.shape[-1]).to(soft.dtype)
    return hard + soft - soft.detach()


def smoothed_actions(actions: Tensor, noise: Tensor, noise_clip: float) -> Tensor:
    """TD3's noisy action: actions + noise clipped to +-noise_clip, kept in [-1, 1]."""
    return (actions + noise.clamp(-noise_clip, noise_clip)).clamp(-1.0, 1.0)


class ActionCoding(nn.Module):
    """How the N agents' actions are coded: Box vectors in [-1, 1]^D or one-hots of width A."""

    def __init__(self, action_spaces: Sequence[gymnasium.Space]):
        super().__init__()
        kinds = {type(space).__name__ for space in action_spaces}
        if len(kinds) != 1 or not kinds <= {"Discrete", "Box"}:
            raise ValueError(
                f"action spaces {sorted(kinds)}: the off-policy actor-critic needs all Box or "
                "all Discrete actions"
            )
        self.continuous = kinds == {"Box"}
        if self.continuous:
            self.width = max(int(np.prod(s.shape)) for s in action_spaces)
        else:
            self.width = max(int(s.n) for s in action_spaces)
        low, high, dims = box_bounds(action_spaces, self.width if self.continuous else 0)
        self.register_buffer("low", low)
        self.register_buffer("high", high)
        if not self.continuous:
            dims = torch.tensor(
                [[float(i < s.n) for i in range(self.width)] for s in action_spaces]
            )
        self.register_buffer("dim_mask", dims)  # [N, D]: the dims (or actions) each agent has

    def to_env(self, actions: Tensor) -> Tensor:
        """Coded actions [..., N, D] -> env actions: scaled to the Box, or action indices."""
        if self.continuous:
            return self.low + (actions + 1.0) * 0.5 * (self.high - self.low)
        return actions.argmax(-1)

    def target_entropy(self, scale: float) -> Tensor:
        """SAC's target entropy per agent [N]: -scale * D (Box), scale * 0.5 log A (discrete)."""
        dims = self.dim_mask.sum(-1)
        return -scale * dims if self.continuous else scale * 0.5 * torch.log(dims)

    def uniform(self, mask: Tensor, generator: torch.Generator) -> Tensor:
        """Uniformly random coded actions for action mask `mask` [B, N, A] (warm-up acting)."""
        shape = (mask.shape[0], *self.dim_mask.shape)
        noise = torch.rand(shape, generator=generator, device=self.low.device)
        if self.continuous:
            return (2.0 * noise - 1.0) * self.dim_mask
        legal = mask & self.dim_mask.bool()
        pick = torch.where(legal, noise, torch.full_like(noise, -1.0)).argmax(-1)
        return F.one_hot(pick, self.width).to(noise.dtype)


class GroupMLPs(nn.Module):
    """One ReLU MLP per agent group, applied to `[..., N, F]` inputs with group ids appended."""

    def __init__(
        self, groups: AgentGroups, in_dim: int, hidden: Sequence[int], out_dim: int,
        out_gain: float, generator: torch.Generator,
    ):  # fmt: skip
        super().__init__()
        self.groups = groups
        self.nets = nn.ModuleList(
            mlp(in_dim + groups.id_dim(g), hidden, out_dim, generator, out_gain, nn.ReLU)
            for g in range(len(groups.groups))
        )

    def forward(self, x: Tensor) -> Tensor:
        """x [..., N, F] -> [..., N, out]."""
        if self.groups.groups == [list(range(self.groups.num_agents))]:  # no gather/scatter
            return self.nets[0](self.groups.with_ids(x, 0))
        outs = [
            net(self.groups.with_ids(self.groups.gather(x, g), g))
            for g, net in enumerate(self.nets)
        ]
        return self.groups.scatter(outs, dim=-2)


class Sampled(NamedTuple):
    """Coded actions and their log-probabilities (0 for deterministic actors)."""

    actions: Tensor  # [..., N, D]
    log_probs: Tensor  # [..., N]


class Actors(nn.Module):
    """Decentralized actors: each agent acts on its own observation."""

    def __init__(
        self, groups: AgentGroups, obs_dim: int, coding: ActionCoding, hidden: Sequence[int],
        algorithm: str, generator: torch.Generator,
    ):  # fmt: skip
        super().__init__()
        self.coding, self.algorithm = coding, algorithm
        self.gaussian = coding.continuous and algorithm == "sac"
        out_dim = coding.width * (2 if self.gaussian else 1)
        self.body = GroupMLPs(groups, obs_dim, hidden, out_dim, 0.01, generator)

    def forward(
        self, obs: Tensor, mask: Tensor, generator: torch.Generator | None,
        noise: float = 0.0, noise_clip: float = math.inf, temperature: float = 1.0,
    ) -> Sampled:  # fmt: skip
        """Actions for obs [..., N, O]: greedy when `generator` is None, else sampled (Box
        DDPG/TD3: Gaussian noise of std `noise` clipped to +-`noise_clip`; SAC: the squashed
        Gaussian; discrete: the straight-through Gumbel-softmax at `temperature`)."""
        out = self.body(obs)
        dims = self.coding.dim_mask
        zeros = torch.zeros(out.shape[:-1], device=out.device)
        if not self.coding.continuous:
            logits = mask_logits(out, mask & dims.bool())
            if generator is None:
                actions = F.one_hot(logits.argmax(-1), logits.shape[-1]).to(out.dtype)
            else:
                gumbels = gumbel_noise(logits.shape, generator, logits.device)
                actions = gumbel_softmax_st(logits, gumbels, temperature)
            return Sampled(actions, (actions * torch.log_softmax(logits, -1)).sum(-1))
        if self.gaussian:
            mean, raw = out.chunk(2, dim=-1)
            if generator is None:
                return Sampled(torch.tanh(mean) * dims, zeros)
            log_std = LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (torch.tanh(raw) + 1.0)
            eps = torch.randn(mean.shape, generator=generator, device=mean.device)
            return Sampled(*squashed_gaussian(mean, log_std, eps, dims))
        actions = torch.tanh(out)
        if generator is not None and noise > 0:
            eps = torch.randn(out.shape, generator=generator, device=out.device) * noise
            actions = smoothed_actions(actions, eps, noise_clip)
        return Sampled(actions * dims, zeros)


def joint_actions(taken: Tensor, own: Tensor | None = None) -> Tensor:
    """[..., N, D] -> the joint action each agent's critic sees, [..., N, N, D]: the `taken`
    actions of all agents, with agent i's own replaced by `own[..., i]` in row i if given."""
    n = taken.shape[-2]
    joint = taken.unsqueeze(-3).expand(*taken.shape[:-2], n, *taken.shape[-2:])
    if own is None:
        return joint
    eye = torch.eye(n, dtype=torch.bool, device=taken.device)[..., None]
    return torch.where(eye, own.unsqueeze(-3), joint)


class Critics(nn.Module):
    """`heads` Q-functions per agent (twin critics for TD3 and SAC), local or centralized."""

    def __init__(
        self, groups: AgentGroups, obs_dim: int, state_dim: int, width: int, central: bool,
        hidden: Sequence[int], heads: int, generator: torch.Generator,
    ):  # fmt: skip
        super().__init__()
        self.central = central
        n = groups.num_agents
        in_dim = state_dim + n * width if central else obs_dim + width
        self.heads = nn.ModuleList(
            GroupMLPs(groups, in_dim, hidden, 1, 1.0, generator) for _ in range(heads)
        )

    def forward(self, obs: Tensor, state: Tensor, joint: Tensor) -> Tensor:
        """obs [B, N, O], state [B, S], joint [B, N, N, D] -> Q-values [heads, B, N]."""
        if self.central:
            shared = state[..., None, :].expand(*obs.shape[:-1], state.shape[-1])
            x = torch.cat([shared, joint.flatten(-2)], dim=-1)
        else:
            own = joint.diagonal(dim1=-3, dim2=-2).transpose(-1, -2)  # [B, N, D]
            x = torch.cat([obs, own], dim=-1)
        return torch.stack([head(x).squeeze(-1) for head in self.heads])
