"""A team's Q-module, the TD batch both replay layouts turn into, and the TD loss."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from marl.learners.value.distributional import (
    CategoricalSupport,
    categorical_target,
    cross_entropy,
    expected_value,
)
from marl.learners.value.networks import AgentQNet, agent_inputs
from marl.learners.value.targets import greedy_values, nstep_returns, td_loss, weighted_mean

PRIORITY_MAX_WEIGHT = 0.9  # episode priority = 0.9 max |TD| + 0.1 mean |TD| (as in R2D2)


class TeamQ(nn.Module):
    """One team's shared agent Q-network and its mixer (None for independent learners);
    with a C51 `support` the network gives return distributions and Q is their mean."""

    def __init__(
        self,
        agent: AgentQNet,
        mixer: nn.Module | None,
        num_actions: int,
        agent_id: bool,
        last_action: bool,
        support: CategoricalSupport | None = None,
    ):
        super().__init__()
        self.agent = agent
        self.mixer = mixer
        self.num_actions = num_actions
        self.agent_id = agent_id
        self.last_action = last_action
        self.support = support

    def outputs(
        self, obs: Tensor, prev_action: Tensor, hidden: Tensor | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """obs [B, T, n, O], prev_action [B, T, n] -> (Q [B, T, n, A], or C51 logits
        [B, T, n, A, atoms], and the last hidden state)."""
        prev = prev_action if self.last_action else None
        return self.agent(agent_inputs(obs, prev, self.num_actions, self.agent_id), hidden)

    def q_values(
        self, obs: Tensor, prev_action: Tensor, hidden: Tensor | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """obs [B, T, n, O], prev_action [B, T, n] -> (Q [B, T, n, A], last hidden state)."""
        out, hidden = self.outputs(obs, prev_action, hidden)
        if self.support is None:
            return out, hidden
        return expected_value(out.softmax(-1), self.support), hidden


class TDBatch(NamedTuple):
    """Sequences of T steps (T = 1 for transitions) with per-agent n-step returns."""

    obs: Tensor  # [B, T+1, N, O]
    state: Tensor  # [B, T+1, S]
    action_mask: Tensor  # [B, T+1, N, A] bool
    alive: Tensor  # [B, T+1, N] bool
    prev_action: Tensor  # [B, T+1, N] long, -1 at an episode's start
    actions: Tensor  # [B, T, N] long
    returns: Tensor  # [B, T, N] n-step returns of each agent's reward
    boot_index: Tensor  # [B, T] long, which of the T+1 steps each target bootstraps from
    discount: Tensor  # [B, T] gamma^k, 0 after termination
    filled: Tensor  # [B, T] bool, real (not padding) steps
    weights: Tensor  # [B] importance weights


def episodes_to_batch(
    items: dict[str, Tensor], weights: Tensor, gamma: float, n: int, device: torch.device
) -> TDBatch:
    """Sampled episode segments -> TDBatch, cut to the longest filled segment in the batch."""
    horizon = int(items["filled"].sum(dim=1).max())
    x = {k: v[:, : horizon + 1].to(device) for k, v in items.items()}
    returns, boot, discount = nstep_returns(x["rewards"], x["terminated"], x["filled"], gamma, n)
    return TDBatch(
        x["obs"],
        x["state"],
        x["action_mask"],
        x["alive"],
        x["prev_action"],
        x["actions"],
        returns,
        boot,
        discount,
        x["filled"],
        weights.to(device),
    )


def transitions_to_batch(
    items: dict[str, Tensor], weights: Tensor, device: torch.device
) -> TDBatch:
    """Sampled n-step transitions -> TDBatch with T = 1 (step 0 the obs, step 1 the bootstrap)."""
    x = {k: v.to(device) for k, v in items.items()}
    size = x["actions"].shape[0]
    pair = lambda now, nxt: torch.stack([now, nxt], dim=1)  # noqa: E731
    mask = x["next_action_mask"]
    return TDBatch(
        obs=pair(x["obs"], x["next_obs"]),
        state=pair(x["state"], x["next_state"]),
        action_mask=pair(mask, mask),
        alive=pair(x["alive"], x["next_alive"]),
        prev_action=torch.full((size, 2, mask.shape[1]), -1, dtype=torch.long, device=device),
        actions=x["actions"][:, None],
        returns=x["returns"][:, None],
        boot_index=torch.ones(size, 1, dtype=torch.long, device=device),
        discount=x["discount"][:, None],
        filled=torch.ones(size, 1, dtype=torch.bool, device=device),
        weights=weights.to(device),
    )


def _at_boot(x: Tensor, boot_index: Tensor) -> Tensor:
    """x [B, T+1, ...] -> x at each step's bootstrap index [B, T, ...]."""
    flat = x.flatten(2)
    picked = flat.gather(1, boot_index.unsqueeze(-1).expand(-1, -1, flat.shape[-1]))
    return picked.reshape(*boot_index.shape, *x.shape[2:])


def team_td_terms(
    online: TeamQ, target: TeamQ, members: list[int], batch: TDBatch, double_q: bool
) -> tuple[Tensor, Tensor, Tensor]:
    """(predicted, target, mask) of one team: [B, T] with a mixer, [B, T, n] without."""
    horizon = batch.actions.shape[1]
    obs, prev = batch.obs[:, :, members], batch.prev_action[:, :, members]
    q_online, _ = online.q_values(obs, prev)
    with torch.no_grad():
        q_target, _ = target.q_values(obs, prev)
        picker = q_online.detach() if double_q else None
        next_values = greedy_values(q_target, batch.action_mask[:, :, members], picker)
        alive = batch.alive[:, :, members].float()
        boot_values = _at_boot(next_values * alive, batch.boot_index)
    chosen = q_online[:, :horizon].gather(-1, batch.actions[:, :, members, None]).squeeze(-1)
    alive_now = alive[:, :horizon]
    returns = batch.returns[:, :, members]
    if online.mixer is None:
        mask = batch.filled.unsqueeze(-1).float() * alive_now
        return chosen, returns + batch.discount.unsqueeze(-1) * boot_values, mask
    q_tot = online.mixer(chosen * alive_now, batch.state[:, :horizon])
    with torch.no_grad():
        v_tot = target.mixer(boot_values, _at_boot(batch.state, batch.boot_index))
    return q_tot, returns.mean(dim=-1) + batch.discount * v_tot, batch.filled.float()


def team_categorical_terms(
    online: TeamQ, target: TeamQ, members: list[int], batch: TDBatch, double_q: bool
) -> tuple[Tensor, Tensor, Tensor]:
    """(cross-entropy, expected Q of the taken action, mask) of an independent C51 team, each
    [B, T, n]: the online distribution of the taken action against the projected n-step
    target (bootstrap action picked by the online net's means when double, else the target's)."""
    support = online.support
    horizon = batch.actions.shape[1]
    obs, prev = batch.obs[:, :, members], batch.prev_action[:, :, members]
    logits, _ = online.outputs(obs, prev)
    log_probs = logits.log_softmax(-1)  # [B, T+1, n, A, atoms]
    with torch.no_grad():
        target_probs = target.outputs(obs, prev)[0].softmax(-1)
        picker = log_probs.exp() if double_q else target_probs
        alive = batch.alive[:, :, members]
        targets = categorical_target(
            _at_boot(target_probs, batch.boot_index),
            _at_boot(expected_value(picker, support), batch.boot_index),
            _at_boot(batch.action_mask[:, :, members], batch.boot_index),
            batch.returns[:, :, members],
            batch.discount.unsqueeze(-1) * _at_boot(alive, batch.boot_index),
            support,
        )
    index = batch.actions[:, :, members, None, None].expand(*targets.shape[:-1], 1, support.atoms)
    chosen = log_probs[:, :horizon].gather(-2, index).squeeze(-2)  # [B, T, n, atoms]
    mask = batch.filled.unsqueeze(-1).float() * alive[:, :horizon].float()
    chosen_q = expected_value(chosen.detach().exp(), support)
    return cross_entropy(chosen, targets), chosen_q, mask


def value_loss(
    online: nn.ModuleList,
    target: nn.ModuleList,
    teams: list[list[int]],
    batch: TDBatch,
    double_q: bool,
    kind: str,
) -> tuple[Tensor, Tensor, dict[str, float]]:
    """Sum of the teams' TD losses, each item's priority [B] (from |TD|, or from the C51
    cross-entropy), and stats."""
    total = torch.zeros((), device=batch.obs.device)
    priorities = torch.zeros(batch.actions.shape[0], device=batch.obs.device)
    q_sum, count = 0.0, 0.0
    for team_online, team_target, members in zip(online, target, teams):
        if team_online.support is None:
            predicted, targets, mask = team_td_terms(
                team_online, team_target, members, batch, double_q
            )
            loss, errors = td_loss(predicted, targets, mask, batch.weights, kind)
            errors = errors.abs()
        else:
            errors, predicted, mask = team_categorical_terms(
                team_online, team_target, members, batch, double_q
            )
            loss = weighted_mean(errors, mask, batch.weights)
        total = total + loss
        priorities = torch.maximum(priorities, item_priority(errors.detach(), mask))
        q_sum += float((predicted.detach() * mask).sum())
        count += float(mask.sum())
    stats = {"loss": float(total.detach()), "q_mean": q_sum / max(count, 1.0)}
    return total, priorities, stats


def item_priority(td_abs: Tensor, mask: Tensor) -> Tensor:
    """Per item [B]: 0.9 * max + 0.1 * mean of |TD| over the item's unmasked entries."""
    flat, weight = td_abs.reshape(len(td_abs), -1), mask.reshape(len(mask), -1)
    mean = (flat * weight).sum(1) / weight.sum(1).clamp(min=1.0)
    peak = (flat * weight).max(dim=1).values
    return PRIORITY_MAX_WEIGHT * peak + (1 - PRIORITY_MAX_WEIGHT) * mean
