"""IMPALA: actors act with weights up to `max_lag` updates old; V-trace corrects for it.

The learner is A2C's (nets, team switches, optimizer, one gradient step per update) with
other targets: the learner's own critic values the rollout, and V-trace (Espeholt et al.
2018) turns the actor's and learner's log-probabilities into clipped importance weights that
correct both the value targets and the policy-gradient advantages. An actor's rollout also
carries the observation after it, so the learner bootstraps it with its own critic. The
asynchronous actors and the lag bound are the pool's (`marl.core.async_trainer`): in
process, one actor acts exactly `max_lag` updates behind; on Ray, K actors push rollouts
that the learner takes as they arrive.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor

from marl.envs.types import VecEnv
from marl.learners.ppo import numerics as nx
from marl.learners.ppo.a2c import A2CLearner
from marl.learners.ppo.config import IMPALAConfig
from marl.learners.ppo.learner import make_env
from marl.learners.ppo.nets import AgentGroups, MultiAgentActorCritic
from marl.learners.ppo.rollout import Batch, Carry, Rollout, collect

CONFIG = IMPALAConfig
ALGOS: dict[str, dict[str, Any]] = {"impala": {}, "maimpala": dict(critic="state+agent")}


class IMPALAExperience(NamedTuple):
    """An actor's rollout, the returns of the episodes that ended in it, and what follows it."""

    rollout: Rollout  # [T, b, ...]
    finished: Tensor  # [episodes, N] per-agent undiscounted returns
    last_obs: Tensor  # [b, N, O] the observation after the rollout
    last_state: Tensor  # [b, S] the state after the rollout


def vtrace_batch(
    net: MultiAgentActorCritic,
    experience: IMPALAExperience,
    cfg: IMPALAConfig,
    groups: AgentGroups,
    moments: list[nx.Moments],
) -> tuple[Batch, list[nx.Moments], dict[str, float]]:
    """V-trace advantages and value targets of a rollout under `net` (the learner's weights).

    Truncated episodes bootstrap from the actor's V(final obs) (the rollout keeps no final
    observation); everything else is valued by `net`. `vtrace=False` sets every importance
    weight to 1: n-step targets and the uncorrected policy gradient.
    """
    rollout, batch = experience.rollout, experience.rollout.batch
    running = cfg.value_norm == "running"

    def raw(x: Tensor) -> Tensor:
        if not running:
            return x
        parts = [nx.denormalize(x[..., idx], m) for idx, m in zip(groups.groups, moments)]
        return groups.scatter(parts, dim=-1)

    with torch.no_grad():
        out, _ = net.actor(batch.obs, batch.hidden, batch.starts)
        log_probs, _ = net.log_prob_entropy(out, batch.action_mask, batch.actions)
        values = raw(net.values(batch.obs, batch.state))
        last_values = raw(net.values(experience.last_obs, experience.last_state))
    next_values, ends = nx.bootstrap_targets(
        values, last_values, raw(rollout.final_values),
        rollout.terminated, rollout.truncated, rollout.next_alive,
    )  # fmt: skip
    log_rhos = log_probs - batch.log_probs if cfg.vtrace else torch.zeros_like(log_probs)
    vs, advantages = nx.vtrace(rollout.rewards, values, next_values, ends, log_rhos, cfg.gamma,
                               cfg.rho_bar, cfg.c_bar, cfg.gae_lambda)  # fmt: skip
    ratio = (log_probs - batch.log_probs).exp()
    stats = {
        "explained_variance": nx.explained_variance(values, vs, batch.alive),
        "vtrace/rho_mean": float(nx.masked_mean(ratio, batch.alive)),
        "vtrace/rho_clipped": float(nx.masked_mean((ratio > cfg.rho_bar).float(), batch.alive)),
    }
    if running:
        moments = [
            nx.update_moments(m, vs[..., idx][batch.alive[..., idx]])
            for m, idx in zip(moments, groups.groups)
        ]
        parts = [nx.normalize(vs[..., idx], m) for idx, m in zip(groups.groups, moments)]
        vs = groups.scatter(parts, dim=-1)
    return batch._replace(advantages=advantages, returns=vs), moments, stats


class IMPALALearner(A2CLearner):
    """IMPALA on one `VecSpec` (follows `marl.core.learner.Learner`)."""

    def collect(self, env: VecEnv, carry: Carry) -> tuple[IMPALAExperience, Carry]:
        """`rollout_len` steps of every env with the sampled policy, and the obs after them."""
        rollout, carry, finished = collect(self.net, env, carry, self.config.rollout_len)
        f32, device = torch.float32, carry.hidden.device
        last_obs = torch.as_tensor(carry.step.obs, dtype=f32, device=device)
        last_state = torch.as_tensor(carry.step.state, dtype=f32, device=device)
        return IMPALAExperience(rollout, finished, last_obs, last_state), carry

    def _targets(
        self, rollout: Rollout, experience: Sequence[Any]
    ) -> tuple[Batch, list[nx.Moments], dict[str, float]]:
        """V-trace targets of the joined rollouts under the learner's current weights."""
        joined = IMPALAExperience(
            rollout,
            torch.empty(0),
            torch.cat([e.last_obs for e in experience]).to(self.device),
            torch.cat([e.last_state for e in experience]).to(self.device),
        )
        return vtrace_batch(self.net, joined, self.config, self.groups, self.moments)


def make_learner(spec: Any, config: IMPALAConfig, seed: int, device: Any = "cpu") -> IMPALALearner:
    """An IMPALA learner for `spec`."""
    return IMPALALearner(spec, config, seed, device)


__all__ = ["ALGOS", "CONFIG", "IMPALAExperience", "IMPALALearner", "make_env", "make_learner",
           "vtrace_batch"]  # fmt: skip
