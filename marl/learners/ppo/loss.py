"""The PPO update: the pure clipped-surrogate loss and `epochs` passes of minibatch SGD."""

from __future__ import annotations

import torch
from torch import Tensor

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
    alive, advantages = batch.alive, batch.advantages
    if cfg.normalize_advantages:
        mean = nx.masked_mean(advantages, alive)
        std = nx.masked_mean((advantages - mean) ** 2, alive).sqrt()
        advantages = (advantages - mean) / (std + 1e-8)
    log_ratio = log_probs - batch.log_probs
    policy_loss = nx.masked_mean(nx.clipped_surrogate(log_ratio, advantages, cfg.clip), alive)
    value_clip = cfg.clip if cfg.clip_value_loss else None
    v_loss = nx.masked_mean(nx.value_loss(values, batch.values, batch.returns, value_clip), alive)
    entropy_mean = nx.masked_mean(entropy, alive)
    loss = policy_loss + cfg.vf_coef * v_loss - cfg.ent_coef * entropy_mean
    with torch.no_grad():
        ratio = log_ratio.exp()
        stats = {
            "loss/policy": policy_loss.detach(),
            "loss/value": v_loss.detach(),
            "entropy": entropy_mean.detach(),
            "approx_kl": nx.masked_mean((ratio - 1) - log_ratio, alive),
            "clip_frac": nx.masked_mean(((ratio - 1).abs() > cfg.clip).float(), alive),
        }
    return loss, stats


def _flatten_time(batch: Batch) -> Batch:
    """[T, B, ...] -> [1, T*B, ...] so feedforward minibatches mix all steps."""
    t, b = batch.starts.shape
    flat = {k: v.reshape(1, t * b, *v.shape[2:]) for k, v in batch._asdict().items()}
    hidden = batch.hidden.new_zeros(t * b, *batch.hidden.shape[1:])
    return Batch(**{**flat, "hidden": hidden})


def update(
    net: MultiAgentActorCritic,
    optimizer: torch.optim.Optimizer,
    batch: Batch,
    cfg: PPOConfig,
    generator: torch.Generator,
) -> dict[str, float]:
    """`epochs` passes of minibatch gradient steps; returns the mean of each loss stat."""
    if not cfg.recurrent:
        batch = _flatten_time(batch)
    num = batch.starts.shape[1]
    totals: dict[str, float] = {}
    steps = 0
    for _ in range(cfg.epochs):
        order = torch.randperm(num, generator=generator, device=generator.device)
        for idx in torch.tensor_split(order, cfg.minibatches):
            minibatch = Batch(
                *(x[idx] if name == "hidden" else x[:, idx] for name, x in batch._asdict().items())
            )
            loss, stats = ppo_loss(net, minibatch, cfg)
            optimizer.zero_grad()
            loss.backward()
            stats["grad_norm"] = torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.max_grad_norm)
            optimizer.step()
            for key, value in stats.items():
                totals[key] = totals.get(key, 0.0) + float(value)
            steps += 1
    return {key: value / steps for key, value in totals.items()}
