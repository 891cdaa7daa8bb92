"""A3C: asynchronous advantage actor-critic. Actors compute gradients, the learner applies them.

An actor steps its envs `rollout_len` times with the weights it was sent, computes A2C's
targets and clipped gradient on its own rollout, and sends the gradient (not the rollout).
The learner applies each gradient as it arrives with its optimizer (RMSprop, as in Mnih et
al. 2016, but one shared optimizer state rather than per-thread statistics); a gradient
computed on weights more than `max_lag` updates old is dropped by the pool
(`marl.core.async_trainer`). Value normalization is refused: an actor's gradient would need
the learner's running moments.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor

from marl.envs.types import VecEnv
from marl.learners.ppo.a2c import A2CLearner
from marl.learners.ppo.config import A3CConfig
from marl.learners.ppo.learner import make_env
from marl.learners.ppo.loss import clipped_gradients
from marl.learners.ppo.rollout import Carry, collect, make_batch

CONFIG = A3CConfig
ALGOS: dict[str, dict[str, Any]] = {"a3c": {}, "maa3c": dict(critic="state")}


class Gradient(NamedTuple):
    """An actor's gradient on its own rollout, with what the learner logs and counts."""

    gradients: list[Tensor]  # one per parameter of the net, clipped, on the CPU
    finished: Tensor  # [episodes, N] per-agent undiscounted returns
    env_steps: int  # env steps of the rollout
    stats: dict[str, float]  # the actor's loss stats


class A3CLearner(A2CLearner):
    """A3C on one `VecSpec` (follows `marl.core.learner.Learner`)."""

    def collect(self, env: VecEnv, carry: Carry) -> tuple[Gradient, Carry]:
        """Act `rollout_len` steps, then the clipped A2C gradient of this copy's weights."""
        rollout, carry, finished = collect(self.net, env, carry, self.config.rollout_len)
        batch, _, stats = make_batch(rollout, self.config, self.groups, self.moments)
        stats |= clipped_gradients(self.net, batch, self.config)
        grads = [
            torch.zeros_like(p) if p.grad is None else p.grad.detach().cpu().clone()
            for p in self.net.parameters()
        ]
        self.net.zero_grad()
        steps = rollout.rewards.shape[0] * rollout.rewards.shape[1]
        return Gradient(grads, finished.cpu(), steps, stats), carry

    def learn(self, experience: Sequence[Gradient]) -> dict[str, float]:
        """One optimizer step per gradient, in arrival order."""
        lr = self._set_learning_rate()
        optimizer = self.optimizers["policy"]
        for part in experience:
            for param, grad in zip(self.net.parameters(), part.gradients, strict=True):
                param.grad = grad.to(self.device)
            optimizer.step()
            self.env_steps += part.env_steps
        keys = experience[0].stats
        stats = {k: sum(p.stats[k] for p in experience) / len(experience) for k in keys}
        return stats | {"lr": lr} | self._episode_stats(experience)


def make_learner(spec: Any, config: A3CConfig, seed: int, device: Any = "cpu") -> A3CLearner:
    """An A3C learner for `spec`."""
    return A3CLearner(spec, config, seed, device)


__all__ = ["ALGOS", "CONFIG", "A3CLearner", "Gradient", "make_env", "make_learner"]
