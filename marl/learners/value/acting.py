"""Epsilon-greedy acting with action masks and per-env recurrent state."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from marl.learners.value.collect import as_numpy
from marl.learners.value.noisy import reset_noise, set_deterministic
from marl.learners.value.targets import masked_argmax


def linear_schedule(start: float, end: float, duration: int, step: int) -> float:
    """Value moving linearly from `start` to `end` over `duration` steps, then held."""
    if duration <= 0:
        return end
    return start + (end - start) * min(1.0, step / duration)


def epsilon_greedy(
    q: torch.Tensor, action_mask: torch.Tensor, epsilon: float, rng: np.random.Generator
) -> np.ndarray:
    """q, action_mask [B, N, A] -> actions [B, N]: greedy, or with prob. epsilon a uniformly
    random legal action (the draws are made even at epsilon 0, so streams stay aligned)."""
    greedy = masked_argmax(q, action_mask).cpu().numpy()
    mask = action_mask.cpu().numpy()
    noise = rng.random(mask.shape)
    random_legal = np.where(mask, noise, -1.0).argmax(axis=-1)
    explore = rng.random(greedy.shape) < epsilon
    return np.where(explore, random_legal, greedy)


class ValuePolicy:
    """Acts for all N agents of B envs with the teams' Q-networks.

    It keeps each env's recurrent state and previous actions between calls: call
    `reset(done)` with the envs whose episode just ended (the recurrent state of a new
    batch size starts fresh by itself). `greedy=False` acts epsilon-greedily with `epsilon`
    and, with noisy nets, draws new weight noise from `noise` before every step; `greedy=True`
    uses the noisy layers' mean weights.
    """

    def __init__(
        self,
        nets: nn.ModuleList,
        teams: list[list[int]],
        device: torch.device,
        epsilon: float = 0.0,
        rng: np.random.Generator | None = None,
        noise: torch.Generator | None = None,
    ):
        self.nets, self.teams, self.device = nets, teams, device
        self.epsilon = epsilon
        self.rng = rng if rng is not None else np.random.default_rng(0)
        self.noise = noise
        self.hidden: list[torch.Tensor | None] = [None] * len(teams)
        self.prev_action: np.ndarray | None = None

    def reset(self, done: Any = None) -> None:
        """Forget the recurrent state of the envs where `done` [B] is True (all if None)."""
        if done is None or self.prev_action is None:
            self.hidden = [None] * len(self.teams)
            self.prev_action = None
            return
        done = as_numpy(done).astype(bool)
        keep = torch.as_tensor(~done, device=self.device).float()[:, None, None]
        self.hidden = [h if h is None else h * keep for h in self.hidden]
        self.prev_action[done] = -1

    @torch.no_grad()
    def act(self, obs: Any, action_mask: Any, *, greedy: bool = True) -> np.ndarray:
        """obs [B, N, O], action_mask [B, N, A] -> actions [B, N]."""
        obs_t = torch.as_tensor(as_numpy(obs), dtype=torch.float32, device=self.device)
        mask_t = torch.as_tensor(as_numpy(action_mask), dtype=torch.bool, device=self.device)
        if self.prev_action is None or len(self.prev_action) != len(obs_t):
            self.hidden = [None] * len(self.teams)
            self.prev_action = np.full(obs_t.shape[:2], -1, dtype=np.int64)
        prev = torch.as_tensor(self.prev_action, device=self.device)
        if not greedy and self.noise is not None:
            reset_noise(self.nets, self.noise)
        set_deterministic(self.nets, greedy)
        q = torch.zeros(mask_t.shape, device=self.device)
        for i, (net, members) in enumerate(zip(self.nets, self.teams)):
            team_q, self.hidden[i] = net.q_values(
                obs_t[:, None, members], prev[:, None, members], self.hidden[i]
            )
            q[:, members] = team_q[:, 0]
        set_deterministic(self.nets, False)  # training and other actors see the noise
        actions = epsilon_greedy(q, mask_t, 0.0 if greedy else self.epsilon, self.rng)
        self.prev_action = actions.astype(np.int64)
        return actions
