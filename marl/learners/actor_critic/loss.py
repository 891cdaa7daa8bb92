"""The off-policy actor-critic losses: critic TD regression, actor, entropy temperature.

The pure numerics (`td_target`, `temperature_loss`) are tested by hand; `critic_loss` and
`actor_loss` compose them with the networks for DDPG, TD3 and SAC alike:

- DDPG (Lillicrap et al. 2016): y = r + gamma Q'(s', mu'(s')); the actor ascends Q(s, mu(s)).
- TD3 (Fujimoto et al. 2018): twin critics, y bootstraps from the smaller target Q at the
  target action plus clipped noise; the actor (and the targets) update every `policy_delay`.
- SAC (Haarnoja et al. 2018): y = r + gamma (min_k Q'_k(s', a') - alpha log pi(a'|s')) with
  a' ~ pi; the actor minimises alpha log pi - min_k Q_k; alpha is tuned so that the policy's
  entropy stays near a target.

The team forms (MADDPG, MATD3, MASAC; Lowe et al. 2017) differ only in the critic's input:
each agent's critic sees the global state and every agent's action (`Critics(central=True)`).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from marl.learners.actor_critic.networks import Actors, Critics, joint_actions


class Batch(NamedTuple):
    """Replayed one-step transitions of all N agents."""

    obs: Tensor  # [B, N, O]
    state: Tensor  # [B, S]
    action_mask: Tensor  # [B, N, A] bool (A = 0 for Box actions)
    actions: Tensor  # [B, N, D] coded actions (Box in [-1, 1], one-hot when discrete)
    rewards: Tensor  # [B, N]
    discount: Tensor  # [B] gamma, or 0 where the episode terminated
    next_obs: Tensor  # [B, N, O]
    next_state: Tensor  # [B, S]
    next_action_mask: Tensor  # [B, N, A] bool
    alive: Tensor  # [B, N] bool: the agent acted (loss mask)
    next_alive: Tensor  # [B, N] bool: the agent is still in the episode after the step


class Nets(NamedTuple):
    """The learned modules: actors, critics, their targets (no target actor for SAC) and
    the log entropy temperature per agent."""

    actor: Actors
    critic: Critics
    actor_target: Actors | None
    critic_target: Critics
    log_alpha: Tensor  # [N]


def td_target(
    rewards: Tensor, discount: Tensor, next_q: Tensor, next_log_probs: Tensor, alpha: Tensor
) -> Tensor:
    """r + discount * (min_k Q'_k - alpha * log pi): rewards, next_log_probs [B, N];
    discount [B, 1] or [B, N]; next_q [K, B, N] (K target critics); alpha [N] or scalar."""
    return rewards + discount * (next_q.min(dim=0).values - alpha * next_log_probs)


def temperature_loss(
    log_alpha: Tensor, log_probs: Tensor, target_entropy: Tensor, alive: Tensor
) -> Tensor:
    """SAC's temperature loss -log_alpha (log pi + target entropy), averaged over alive
    agents: it raises alpha while the entropy -log pi is below the target, lowers it above."""
    per_agent = -log_alpha * (log_probs.detach() + target_entropy)
    return masked_mean(per_agent, alive)


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Mean of `x` over the entries where `mask` is true."""
    mask = mask.to(x.dtype)
    return (x * mask).sum() / mask.sum().clamp(min=1.0)


def next_actions(nets: Nets, batch: Batch, cfg: Any, generator: torch.Generator) -> Any:
    """The bootstrap actions a' and their log-probs: SAC samples the current actor; TD3 adds
    clipped noise to the target actor's; DDPG takes the target actor's (Gumbel when discrete)."""
    if cfg.algorithm == "sac":
        return nets.actor(batch.next_obs, batch.next_action_mask, generator,
                          temperature=cfg.gumbel_temperature)  # fmt: skip
    assert nets.actor_target is not None
    smoothing = cfg.policy_noise if cfg.algorithm == "td3" else 0.0
    sample = generator if smoothing > 0 or not nets.actor.coding.continuous else None
    return nets.actor_target(
        batch.next_obs, batch.next_action_mask, sample, noise=smoothing,
        noise_clip=cfg.noise_clip, temperature=cfg.gumbel_temperature,
    )  # fmt: skip


def critic_loss(
    nets: Nets, batch: Batch, cfg: Any, generator: torch.Generator
) -> tuple[Tensor, dict[str, float]]:
    """Squared TD errors of every critic head against the shared target y."""
    with torch.no_grad():
        nxt = next_actions(nets, batch, cfg, generator)
        next_q = nets.critic_target(batch.next_obs, batch.next_state, joint_actions(nxt.actions))
        discount = batch.discount[:, None] * batch.next_alive  # no bootstrap past an exit
        alpha = nets.log_alpha.exp() if cfg.algorithm == "sac" else torch.zeros(())
        target = td_target(batch.rewards, discount, next_q, nxt.log_probs, alpha)
    q = nets.critic(batch.obs, batch.state, joint_actions(batch.actions))
    loss = sum(masked_mean((head - target) ** 2, batch.alive) for head in q)
    return loss, {
        "critic_loss": float(loss.detach()),
        "q": float(masked_mean(q[0].detach(), batch.alive)),
    }


def actor_loss(
    nets: Nets, batch: Batch, cfg: Any, generator: torch.Generator
) -> tuple[Tensor, Tensor, dict[str, float]]:
    """The actor's loss (alpha log pi - Q at its own action, the other agents' actions as
    replayed), and its actions' log-probs [B, N] for the temperature update."""
    deterministic = cfg.algorithm != "sac" and nets.actor.coding.continuous
    own = nets.actor(batch.obs, batch.action_mask, None if deterministic else generator,
                     temperature=cfg.gumbel_temperature)  # fmt: skip
    q = nets.critic(batch.obs, batch.state, joint_actions(batch.actions, own.actions))
    if cfg.algorithm == "sac":
        alpha = nets.log_alpha.exp().detach()
        loss = masked_mean(alpha * own.log_probs - q.min(dim=0).values, batch.alive)
    else:
        loss = masked_mean(-q[0], batch.alive)
    entropy = -masked_mean(own.log_probs.detach(), batch.alive)
    return loss, own.log_probs, {"actor_loss": float(loss.detach()), "entropy": float(entropy)}


def soft_update(target: nn.Module, online: nn.Module, tau: float) -> None:
    """Polyak averaging: target <- (1 - tau) target + tau online."""
    with torch.no_grad():
        for p_target, p_online in zip(target.parameters(), online.parameters()):
            p_target.lerp_(p_online, tau)
