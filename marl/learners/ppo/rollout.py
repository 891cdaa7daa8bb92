"""On-policy rollouts: step the vector env with the sampled policy, then GAE targets.

`collect` records `rollout_len` steps of B envs (with what bootstrapping needs: values of
`final_obs` where an episode was truncated, of the next obs after the rollout); `make_batch`
turns a `Rollout` into advantages and value targets. The learner's `collect` runs it,
wherever its worker runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor

from marl.envs.types import VecEnv, VecStep
from marl.learners.ppo import numerics as nx
from marl.learners.ppo.nets import AgentGroups, MultiAgentActorCritic, check_finite


class Batch(NamedTuple):
    """One rollout with its targets (feedforward updates flatten it to T=1, B=T*B)."""

    obs: Tensor  # [T, B, N, O]
    state: Tensor  # [T, B, S]
    action_mask: Tensor  # [T, B, N, A] bool (A = 0 for continuous actions)
    actions: Tensor  # [T, B, N] long, or [T, B, N, D] float (unclipped samples)
    log_probs: Tensor  # [T, B, N] log-prob of `actions` under the collecting policy
    values: Tensor  # [T, B, N] critic output at collection (normalized with value_norm)
    advantages: Tensor  # [T, B, N] GAE advantages
    returns: Tensor  # [T, B, N] value targets, in the critic's (normalized) space
    alive: Tensor  # [T, B, N] bool, the agent acted at t (loss mask)
    starts: Tensor  # [T, B] bool, obs[t] is the first of an episode (GRU reset)
    hidden: Tensor  # [B, N, H] GRU state before obs[0] (H = 0 when feedforward)


class Rollout(NamedTuple):
    """What `collect` records; `make_batch` turns it into a `Batch`."""

    batch: Batch  # advantages and returns still zero
    rewards: Tensor  # [T, B, N]
    terminated: Tensor  # [T, B] bool
    truncated: Tensor  # [T, B] bool
    next_alive: Tensor  # [T, B, N] bool
    final_values: Tensor  # [T, B, N] critic output for final_obs where truncated
    last_values: Tensor  # [B, N] critic output for the obs after the rollout


class Carry(NamedTuple):
    """Env-side state carried between iterations."""

    step: VecStep  # the latest step (its obs is the next to act on)
    hidden: Tensor  # [B, N, H] GRU state
    starts: Tensor  # [B] bool, step.obs starts an episode
    episode_returns: Tensor  # [B, N] undiscounted return so far of the running episodes
    generator: torch.Generator  # draws the sampled actions (`--seeds K`: one per seed block)


def fresh_carry(step: VecStep, net: Any, n_agents: int, device: torch.device,
                generator: Any) -> Carry:  # fmt: skip
    """The carry of episodes that all start at `step` (zero GRU state and returns)."""
    b = step.obs.shape[0]
    return Carry(
        step,
        net.initial_hidden(b).to(device),
        torch.ones(b, dtype=torch.bool, device=device),
        torch.zeros(b, n_agents, device=device),
        generator,
    )


def _inputs(step: VecStep, device: torch.device) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """obs, state (float32), action mask and alive (bool) of a step as tensors."""
    f32 = torch.float32
    return (
        torch.as_tensor(step.obs, dtype=f32, device=device),
        torch.as_tensor(step.state, dtype=f32, device=device),
        torch.as_tensor(step.action_mask, dtype=torch.bool, device=device),
        torch.as_tensor(step.alive, dtype=torch.bool, device=device),
    )


def _env_step(
    net: MultiAgentActorCritic,
    env: VecEnv,
    carry: Carry,
) -> tuple[dict[str, Tensor], Carry, Tensor]:
    """Act once in every env: (the step's record, the new carry, the returns [B, N] of the
    episodes so far, whole where the step ended one)."""
    device = carry.hidden.device
    obs, state, mask, alive = _inputs(carry.step, device)
    actions, env_actions, log_probs, hidden = net.act(
        obs, mask, carry.hidden, carry.starts, carry.generator, greedy=False
    )
    native = isinstance(carry.step.obs, Tensor)  # a torch env takes tensors where they are
    step = env.step(env_actions if native else env_actions.cpu().numpy())
    reward = torch.as_tensor(step.reward, dtype=torch.float32, device=device)
    terminated = torch.as_tensor(step.terminated, dtype=torch.bool, device=device)
    truncated = torch.as_tensor(step.truncated, dtype=torch.bool, device=device)
    final_values = reward.new_zeros(reward.shape)
    if truncated.any():
        final_obs, final_state = _inputs(
            step._replace(obs=step.final_obs, state=step.final_state), device
        )[:2]
        final_values = net.values(final_obs, final_state)
    done = terminated | truncated
    returns = carry.episode_returns + reward
    record = dict(
        obs=obs, state=state, action_mask=mask, actions=actions, log_probs=log_probs,
        alive=alive, starts=carry.starts, rewards=reward,
        terminated=terminated, truncated=truncated, final_values=final_values,
        next_alive=torch.as_tensor(step.alive, dtype=torch.bool, device=device),
    )  # fmt: skip
    carry = Carry(step, hidden, done, returns * ~done[:, None], carry.generator)
    return record, carry, returns


def _values(net: MultiAgentActorCritic, obs: Tensor, state: Tensor) -> Tensor:
    """The critic's values `[T, B, N]` of a rollout's obs `[T, B, N, O]` and states `[T, B, S]`
    in one forward (env-major inside, as `--seeds`' stacked net takes its blocks)."""
    return net.values(obs.transpose(0, 1), state.transpose(0, 1)).transpose(0, 1)


def collect(
    net: MultiAgentActorCritic,
    env: VecEnv,
    carry: Carry,
    rollout_len: int,
) -> tuple[Rollout, Carry, Tensor]:
    """Step the envs `rollout_len` times with the sampled policy (drawn by the carry's generator).

    Returns the rollout, the carry for the next call, and the per-agent undiscounted returns
    `[episodes, N]` of the episodes that finished.
    """
    hidden0, records, finished = carry.hidden, [], []
    with torch.no_grad():
        for _ in range(rollout_len):
            record, carry, returns = _env_step(net, env, carry)
            records.append(record)
            finished.append(returns)
        obs, state = _inputs(carry.step, carry.hidden.device)[:2]
        cols = {key: torch.stack([r[key] for r in records]) for key in records[0]}
        check_finite(cols["log_probs"])
        values = _values(
            net, torch.cat([cols["obs"], obs[None]]), torch.cat([cols["state"], state[None]])
        )
    cols["values"], last_values = values[:-1], values[-1]
    zeros = torch.zeros_like(cols["values"])
    batch = Batch(
        **{k: cols[k] for k in Batch._fields if k in cols},
        advantages=zeros, returns=zeros, hidden=hidden0,
    )  # fmt: skip
    rollout = Rollout(
        batch, cols["rewards"], cols["terminated"], cols["truncated"],
        cols["next_alive"], cols["final_values"], last_values,
    )  # fmt: skip
    ended = cols["terminated"] | cols["truncated"]  # rows in (t, env) order
    return rollout, carry, torch.stack(finished)[ended]


def per_group(groups: AgentGroups, x: Tensor, fn: Any, moments: list[nx.Moments]) -> Tensor:
    """Apply `fn(x_group, moments_group)` to each group's agents of `x` `[..., N]`."""
    parts = [fn(x[..., idx], m) for idx, m in zip(groups.groups, moments)]
    return groups.scatter(parts, dim=-1)


def gae_targets(
    rollout: Rollout, cfg: Any, groups: AgentGroups, moments: list[nx.Moments]
) -> tuple[Tensor, Tensor, Tensor]:
    """(values, GAE advantages, returns), values and returns in raw (not normalized) units.

    Elementwise over everything but time, so any layout `[T, ...]` works, and moments whose
    fields broadcast against it (one set per seed block with `--seeds K`)."""
    batch, running = rollout.batch, cfg.value_norm == "running"

    def raw(x: Tensor) -> Tensor:
        return per_group(groups, x, nx.denormalize, moments) if running else x

    values = raw(batch.values)
    next_values, ends = nx.bootstrap_targets(
        values, raw(rollout.last_values), raw(rollout.final_values),
        rollout.terminated, rollout.truncated, rollout.next_alive,
    )  # fmt: skip
    advantages = nx.gae(rollout.rewards, values, next_values, ends, cfg.gamma, cfg.gae_lambda)
    return values, advantages, advantages + values


def make_batch(
    rollout: Rollout, cfg: Any, groups: AgentGroups, moments: list[nx.Moments]
) -> tuple[Batch, list[nx.Moments], dict[str, float]]:
    """GAE advantages and value targets; with value_norm, update and apply running moments."""
    batch, running = rollout.batch, cfg.value_norm == "running"
    values, advantages, returns = gae_targets(rollout, cfg, groups, moments)
    stats = {"explained_variance": nx.explained_variance(values, returns, batch.alive)}
    if running:
        moments = [
            nx.update_moments(m, returns[..., idx][batch.alive[..., idx]])
            for m, idx in zip(moments, groups.groups)
        ]
        returns = per_group(groups, returns, nx.normalize, moments)
    return batch._replace(advantages=advantages, returns=returns), moments, stats


def concat_rollouts(parts: Sequence[Rollout]) -> Rollout:
    """Join rollouts of the same length along the env axis: [T, b_k, ...] -> [T, sum b, ...]."""
    if len(parts) == 1:
        return parts[0]
    if len({p.rewards.shape[0] for p in parts}) != 1:
        raise ValueError(f"rollout lengths differ: {[p.rewards.shape[0] for p in parts]}")

    def join(xs: Sequence[Tensor], name: str) -> Tensor:
        env_dim = 0 if name in ("hidden", "last_values") else 1
        return torch.cat(list(xs), dim=env_dim)

    batch = Batch(*(join(xs, n) for n, xs in zip(Batch._fields, zip(*(p.batch for p in parts)))))
    rest = {n: join([getattr(p, n) for p in parts], n) for n in Rollout._fields if n != "batch"}
    return Rollout(batch=batch, **rest)


def rollout_to(rollout: Rollout, device: torch.device) -> Rollout:
    """The rollout with every tensor on `device`."""
    batch = Batch(*(x.to(device) for x in rollout.batch))
    return Rollout(batch, *(x.to(device) for x in rollout[1:]))
