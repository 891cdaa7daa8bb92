"""A2C (and MAA2C): synchronous advantage actor-critic on the PPO family's nets and rollouts.

Every iteration steps the B envs `rollout_len` times, turns the rollout into advantages and
value targets (n-step returns bootstrapped after the rollout when `gae_lambda = 1`, else
GAE(lambda); both bootstrap a truncated episode from its final observation and cut a
terminated one), and takes one RMSprop (or Adam) step on the policy-gradient loss. With
`critic = "state"` the critic sees the global state: MAA2C.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from marl.learners.ppo.config import A2CConfig
from marl.learners.ppo.learner import Experience, OnPolicyLearner, make_env
from marl.learners.ppo.loss import gradient_step
from marl.learners.ppo.numerics import Moments
from marl.learners.ppo.rollout import Batch, Rollout, concat_rollouts, make_batch, rollout_to

CONFIG = A2CConfig
ALGOS: dict[str, dict[str, Any]] = {"a2c": {}, "maa2c": dict(critic="state")}


class A2CLearner(OnPolicyLearner):
    """A2C on one `VecSpec` (follows `marl.core.learner.Learner`)."""

    def __init__(self, spec: Any, config: A2CConfig, seed: int, device: Any = "cpu"):
        super().__init__(spec, config, seed, device)
        params = self.net.parameters()
        if config.optimizer == "rmsprop":
            optimizer = torch.optim.RMSprop(
                params, lr=config.lr, alpha=0.99, eps=1e-5, foreach=True
            )
        else:
            optimizer = torch.optim.Adam(params, lr=config.lr, eps=1e-5, foreach=True)
        self.optimizers["policy"] = optimizer

    def learn(self, experience: Sequence[Experience]) -> dict[str, float]:
        """n-step / GAE targets for the joined rollouts, then one gradient step."""
        lr = self._set_learning_rate()
        rollout = rollout_to(concat_rollouts([e.rollout for e in experience]), self.device)
        batch, self.moments, stats = self._targets(rollout, experience)
        stats |= gradient_step(self.net, self.optimizers["policy"], batch, self.config)
        self.env_steps += rollout.rewards.shape[0] * rollout.rewards.shape[1]
        return stats | {"lr": lr} | self._episode_stats(experience)

    def _targets(
        self, rollout: Rollout, experience: Sequence[Any]
    ) -> tuple[Batch, list[Moments], dict[str, float]]:
        """The joined rollout's advantages and value targets (IMPALA: V-trace's)."""
        return make_batch(rollout, self.config, self.groups, self.moments)


def make_learner(spec: Any, config: A2CConfig, seed: int, device: Any = "cpu") -> A2CLearner:
    """An A2C learner for `spec`."""
    return A2CLearner(spec, config, seed, device)


__all__ = ["ALGOS", "CONFIG", "A2CLearner", "make_env", "make_learner"]
