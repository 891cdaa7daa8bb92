"""The family's losses: PPO's clipped surrogate with `epochs` passes of minibatch SGD, and
the plain policy-gradient loss that A2C and REINFORCE take one gradient step on."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from marl.learners.ppo import analytic
from marl.learners.ppo import numerics as nx
from marl.learners.ppo.config import PPOConfig
from marl.learners.ppo.nets import MultiAgentActorCritic
from marl.learners.ppo.rollout import Batch


def ppo_loss(
    net: MultiAgentActorCritic, batch: Batch, cfg: PPOConfig
) -> tuple[Tensor, dict[str, Tensor]]:
    """Clipped-surrogate policy loss + value loss - entropy bonus, over alive agents."""
    out, _ = net.actor(batch.obs, batch.hidden, batch.starts)
    log_probs, entropy = net.log_prob_entropy(out, batch.action_mask, batch.actions)
    values = net.values(batch.obs, batch.state)
    return ppo_objective(log_probs, entropy, values, batch, cfg)


def ppo_objective(
    log_probs: Tensor, entropy: Tensor, values: Tensor, batch: Batch, cfg: PPOConfig
) -> tuple[Tensor, dict[str, Tensor]]:
    """`ppo_loss` from the network's outputs on `batch` (log-probs and entropies of its
    actions, values): what is left is plain tensor arithmetic (`--seeds K` vmaps it)."""
    advantages = batch.advantages
    if cfg.normalize_advantages:
        advantages = nx.standardized(advantages, batch.alive)
    log_ratio = log_probs - batch.log_probs
    value_clip = cfg.clip if cfg.clip_value_loss else None
    terms = (
        nx.clipped_surrogate(log_ratio, advantages, cfg.clip),
        nx.value_loss(values, batch.values, batch.returns, value_clip),
        entropy,
    )
    means = nx.alive_means(terms, batch.alive)
    policy_loss, v_loss, entropy_mean = means
    loss = policy_loss + cfg.vf_coef * v_loss - cfg.ent_coef * entropy_mean
    with torch.no_grad():
        stats = nx.ppo_stats(means, log_ratio, batch.alive, cfg.clip)
    return loss, stats


def flatten_time(batch: Batch) -> Batch:
    """[T, B, ...] -> [1, T*B, ...] so feedforward minibatches mix all steps."""
    t, b = batch.starts.shape
    flat = {k: v.reshape(1, t * b, *v.shape[2:]) for k, v in batch._asdict().items()}
    hidden = batch.hidden.new_zeros(t * b, *batch.hidden.shape[1:])
    return Batch(**{**flat, "hidden": hidden})


def autograd_gradients(
    net: MultiAgentActorCritic, batch: Batch, cfg: PPOConfig
) -> dict[str, Tensor]:
    """Set every parameter's `.grad` to `ppo_loss`'s gradient on `batch` by autograd;
    returns the loss stats."""
    loss, stats = ppo_loss(net, batch, cfg)
    net.zero_grad()
    loss.backward()
    return stats


def update(
    net: MultiAgentActorCritic,
    optimizer: torch.optim.Optimizer,
    batch: Batch,
    cfg: PPOConfig,
    generator: torch.Generator,
) -> dict[str, float]:
    """`epochs` passes of minibatch gradient steps; returns the mean of each loss stat."""
    if not cfg.recurrent:
        batch = flatten_time(batch)
    num = batch.starts.shape[1]
    params = list(net.parameters())
    minibatch_gradients = (
        analytic.minibatch_gradients if analytic.applies(net, cfg) else autograd_gradients
    )
    totals: dict[str, Tensor] = {}
    for _ in range(cfg.epochs):
        order = torch.randperm(num, generator=generator, device=generator.device)
        for idx in torch.tensor_split(order, cfg.minibatches):
            minibatch = Batch(
                *(x[idx] if name == "hidden" else x[:, idx] for name, x in batch._asdict().items())
            )
            stats = minibatch_gradients(net, minibatch, cfg)
            stats["grad_norm"] = torch.nn.utils.clip_grad_norm_(
                params, cfg.max_grad_norm, foreach=True
            )
            optimizer.step()
            for key, value in stats.items():  # summed as tensors: one copy out at the end
                totals[key] = totals[key] + value if key in totals else value
    steps = cfg.epochs * cfg.minibatches
    return {key: value.item() / steps for key, value in totals.items()}


def policy_gradient_loss(
    net: MultiAgentActorCritic, batch: Batch, cfg: Any, value: bool = True
) -> tuple[Tensor, dict[str, Tensor]]:
    """-log pi(a|s) A + vf_coef * 0.5 (V - R)^2 - ent_coef * entropy, over alive agents.

    The vanilla (A2C, REINFORCE) policy gradient: no ratio, no clipping. `value=False`
    leaves the critic out (REINFORCE without a baseline).
    """
    out, _ = net.actor(batch.obs, batch.hidden, batch.starts)
    log_probs, entropy = net.log_prob_entropy(out, batch.action_mask, batch.actions)
    alive, advantages = batch.alive, batch.advantages
    if cfg.normalize_advantages:
        advantages = nx.standardized(advantages, alive)
    policy_loss = nx.masked_mean(-log_probs * advantages.detach(), alive)
    entropy_mean = nx.masked_mean(entropy, alive)
    loss = policy_loss - cfg.ent_coef * entropy_mean
    stats = {"loss/policy": policy_loss.detach(), "entropy": entropy_mean.detach()}
    if value:
        values = net.values(batch.obs, batch.state)
        v_loss = nx.masked_mean(nx.value_loss(values, values, batch.returns, None), alive)
        loss = loss + cfg.vf_coef * v_loss
        stats["loss/value"] = v_loss.detach()
    return loss, stats


def clipped_gradients(
    net: MultiAgentActorCritic, batch: Batch, cfg: Any, value: bool = True
) -> dict[str, float]:
    """Fill `net`'s `.grad` with the clipped gradient of `policy_gradient_loss` over the
    whole (flattened) batch; returns the loss stats (A3C's actors stop here)."""
    loss, stats = policy_gradient_loss(net, flatten_time(batch), cfg, value)
    net.zero_grad()
    loss.backward()
    # actor and critic apart: a large value gradient must not shrink the policy's step
    stats["grad_norm"] = torch.nn.utils.clip_grad_norm_(
        net.actor_parameters(), cfg.max_grad_norm, foreach=True
    )
    torch.nn.utils.clip_grad_norm_(net.critic_parameters(), cfg.max_grad_norm, foreach=True)
    return {key: float(v) for key, v in stats.items()}


def gradient_step(
    net: MultiAgentActorCritic,
    optimizer: torch.optim.Optimizer,
    batch: Batch,
    cfg: Any,
    value: bool = True,
) -> dict[str, float]:
    """One step of `optimizer` on `policy_gradient_loss` over the whole (flattened) batch."""
    stats = clipped_gradients(net, batch, cfg, value)
    optimizer.step()
    return stats
