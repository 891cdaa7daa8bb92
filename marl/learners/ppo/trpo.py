"""TRPO (and MATRPO-style centralized critics): the natural-gradient policy step under a
KL limit, on the PPO family's nets and rollouts.

Each iteration: GAE advantages and value targets (as PPO), then
1. the policy step: g = grad of the surrogate mean(pi/pi_old A); the direction s solves
   F s = g by conjugate gradient on Fisher-vector products (Hessian-vector products of the
   mean KL at the current policy, plus `cg_damping`); the full step is scaled so that
   0.5 s'Fs = max_kl; a backtracking line search shrinks it until the mean KL is within
   `max_kl` and the surrogate improves (else the policy stays put);
2. the value function: `value_epochs` passes of minibatch Adam regression on the targets.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from marl.learners.ppo import numerics as nx
from marl.learners.ppo.config import TRPOConfig
from marl.learners.ppo.learner import Experience, OnPolicyLearner, make_env
from marl.learners.ppo.loss import flatten_time
from marl.learners.ppo.nets import MultiAgentActorCritic
from marl.learners.ppo.rollout import Batch, concat_rollouts, make_batch, rollout_to

CONFIG = TRPOConfig
ALGOS: dict[str, dict[str, Any]] = {"trpo": {}, "matrpo": dict(critic="state")}


def _flat(tensors: Sequence[Tensor]) -> Tensor:
    return torch.cat([t.reshape(-1) for t in tensors])


def _assign(params: Sequence[nn.Parameter], vector: Tensor) -> None:
    """Copy the flat `vector` into `params`, in order."""
    with torch.no_grad():
        offset = 0
        for p in params:
            p.copy_(vector[offset : offset + p.numel()].view_as(p))
            offset += p.numel()


def policy_step(net: MultiAgentActorCritic, batch: Batch, cfg: TRPOConfig) -> dict[str, float]:
    """One TRPO policy step on a flattened batch (see the module docstring)."""
    params = net.actor_parameters()
    alive = batch.alive
    advantages = batch.advantages
    if cfg.normalize_advantages:
        advantages = nx.standardized(advantages, alive)
    with torch.no_grad():
        old = (net.actor(batch.obs, batch.hidden, batch.starts)[0], net.log_std().clone()
               if net.continuous else None)  # fmt: skip

    def surrogate_and_kl() -> tuple[Tensor, Tensor]:
        out, _ = net.actor(batch.obs, batch.hidden, batch.starts)
        log_probs, _ = net.log_prob_entropy(out, batch.action_mask, batch.actions)
        ratio = torch.exp(log_probs - batch.log_probs)
        kl = nx.masked_mean(net.kl(old, out, batch.action_mask), alive)
        return nx.masked_mean(ratio * advantages, alive), kl

    surrogate, kl = surrogate_and_kl()
    grad = _flat(torch.autograd.grad(surrogate, params, retain_graph=True))
    fvp = nx.fisher_vector_product(kl, params, cfg.cg_damping)
    direction = nx.conjugate_gradient(fvp, grad, cfg.cg_iters)
    curvature = float(direction @ fvp(direction))
    stats = {"loss/policy": -surrogate.item(), "grad_norm": grad.norm().item()}
    if not math.isfinite(curvature) or curvature <= 0:  # no gradient: nothing to step on
        return stats | {
            "kl": 0.0,
            "step_fraction": 0.0,
            "backtracks": 0.0,
            "expected_improvement": 0.0,
        }
    full_step = math.sqrt(2 * cfg.max_kl / curvature) * direction.detach()
    start = _flat(params).detach()
    base = surrogate.item()
    measured: dict[float, float] = {}

    def evaluate(fraction: float) -> tuple[float, float]:
        _assign(params, start + fraction * full_step)
        with torch.no_grad():
            new_surrogate, new_kl = surrogate_and_kl()
        measured[fraction] = float(new_kl)
        return float(new_surrogate) - base, float(new_kl)

    fraction, backtracks = nx.backtracking_line_search(
        evaluate, cfg.max_kl, cfg.line_search_steps, cfg.line_search_shrink
    )
    _assign(params, start + fraction * full_step)
    return stats | {
        "kl": measured.get(fraction, 0.0),
        "step_fraction": fraction,
        "backtracks": float(backtracks),
        "expected_improvement": float(grad @ full_step),
    }


def value_regression(
    net: MultiAgentActorCritic,
    optimizer: torch.optim.Optimizer,
    batch: Batch,
    cfg: TRPOConfig,
    generator: torch.Generator,
) -> dict[str, float]:
    """`value_epochs` passes of minibatch Adam on 0.5 (V - R)^2 over a flattened batch."""
    num, params = batch.obs.shape[1], net.critic_parameters()
    total, steps = 0.0, 0
    for _ in range(cfg.value_epochs):
        order = torch.randperm(num, generator=generator, device=generator.device)
        for idx in torch.tensor_split(order, cfg.minibatches):
            values = net.values(batch.obs[:, idx], batch.state[:, idx])
            loss = nx.masked_mean(
                nx.value_loss(values, values, batch.returns[:, idx], None), batch.alive[:, idx]
            )
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm, foreach=True)
            optimizer.step()
            total += loss.item()
            steps += 1
    return {"loss/value": total / steps}


class TRPOLearner(OnPolicyLearner):
    """TRPO on one `VecSpec` (follows `marl.core.learner.Learner`)."""

    def __init__(self, spec: Any, config: TRPOConfig, seed: int, device: Any = "cpu"):
        super().__init__(spec, config, seed, device)
        params = self.net.critic_parameters()
        self.optimizers["value"] = torch.optim.Adam(params, lr=config.lr, eps=1e-5, foreach=True)

    def learn(self, experience: Sequence[Experience]) -> dict[str, float]:
        """GAE targets for the joined rollouts, the policy step, then the value fit."""
        lr = self._set_learning_rate()
        rollout = rollout_to(concat_rollouts([e.rollout for e in experience]), self.device)
        batch, self.moments, stats = make_batch(rollout, self.config, self.groups, self.moments)
        batch = flatten_time(batch)
        stats |= policy_step(self.net, batch, self.config)
        optimizer = self.optimizers["value"]
        stats |= value_regression(self.net, optimizer, batch, self.config, self.generator)
        self.env_steps += rollout.rewards.shape[0] * rollout.rewards.shape[1]
        return stats | {"lr": lr} | self._episode_stats(experience)


def make_learner(spec: Any, config: TRPOConfig, seed: int, device: Any = "cpu") -> TRPOLearner:
    """A TRPO learner for `spec`."""
    return TRPOLearner(spec, config, seed, device)


__all__ = ["ALGOS", "CONFIG", "TRPOLearner", "make_env", "make_learner"]
