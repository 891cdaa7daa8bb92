"""REINFORCE: Monte-Carlo policy gradient over whole episodes, with an optional baseline.

What "a batch of whole episodes" is here: each `collect` starts every env on a fresh
episode (reseeded from the acting generator, unless the envs were just reset) and steps
them in lockstep until every env has finished `episodes_per_env` episodes. Every episode
that finished is learned from; the steps an env took after its last finished episode (its
unfinished tail, while slower envs caught up) are dropped, though they count as env steps.
Returns are discounted Monte-Carlo sums cut at termination; a truncated episode is
bootstrapped from V(final obs) with `baseline = "value"` and cut without one. One gradient
step per batch, no clipping. An env whose episodes never end within `max_rollout_len` steps
is an error, not a hang.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from marl.learners.ppo import numerics as nx
from marl.learners.ppo.config import ReinforceConfig
from marl.learners.ppo.learner import Experience, OnPolicyLearner, make_env
from marl.learners.ppo.loss import flatten_time, gradient_step
from marl.learners.ppo.rollout import Batch, Carry, Rollout, collect, rollout_to

CONFIG = ReinforceConfig
ALGOS: dict[str, dict[str, Any]] = {"reinforce": {}}
CHUNK = 32
"""Env steps `collect` takes between checks that every env has finished its episodes."""


def whole_episodes(done: Tensor) -> Tensor:
    """`[T, B]` bool: step t of env b belongs to an episode that finished by the rollout's
    end (t is at or before env b's last `done`)."""
    later = torch.flip(torch.cumsum(torch.flip(done.long(), [0]), 0), [0])
    return later > 0


def join_time(parts: Sequence[Rollout]) -> Rollout:
    """Rollouts of the same envs, one after another: [T_k, B, ...] -> [sum T_k, B, ...]."""
    if len(parts) == 1:
        return parts[0]
    batch = Batch(
        *(xs[0] if name == "hidden" else torch.cat(xs)
          for name, xs in zip(Batch._fields, zip(*(p.batch for p in parts))))
    )  # fmt: skip
    rest = {n: torch.cat([getattr(p, n) for p in parts]) for n in Rollout._fields[1:-1]}
    return Rollout(batch=batch, **rest, last_values=parts[-1].last_values)


def episode_targets(rollout: Rollout, cfg: ReinforceConfig) -> Batch:
    """The rollout's batch with Monte-Carlo returns, advantages (returns minus the baseline)
    and `alive` limited to whole episodes."""
    batch, value = rollout.batch, cfg.baseline == "value"
    values = batch.values if value else torch.zeros_like(batch.values)
    next_values, ends = nx.bootstrap_targets(
        values,
        rollout.last_values if value else torch.zeros_like(rollout.last_values),
        rollout.final_values if value else torch.zeros_like(rollout.final_values),
        rollout.terminated, rollout.truncated, rollout.next_alive,
    )  # fmt: skip
    returns = nx.discounted_returns(rollout.rewards, next_values, ends, cfg.gamma)
    whole = whole_episodes(rollout.terminated | rollout.truncated)
    return batch._replace(
        advantages=returns - values, returns=returns, alive=batch.alive & whole[..., None]
    )


class ReinforceLearner(OnPolicyLearner):
    """REINFORCE on one `VecSpec` (follows `marl.core.learner.Learner`)."""

    def __init__(self, spec: Any, config: ReinforceConfig, seed: int, device: Any = "cpu"):
        super().__init__(spec, config, seed, device)
        self.optimizers["policy"] = torch.optim.Adam(
            self.net.parameters(), lr=config.lr, foreach=True
        )

    def collect(self, env: Any, carry: Carry) -> tuple[Experience, Carry]:
        """Fresh episodes in every env, stepped until each env finished its episodes."""
        cfg = self.config
        if not bool(carry.starts.all()):  # the last batch's unfinished tails: start afresh
            gen = carry.generator
            seed = int(torch.randint(2**31 - 1, (), generator=gen, device=gen.device))
            carry = self.start(env, seed)
        parts, finished, done = [], [], torch.zeros(env.num_envs, device=self.device)
        steps = 0
        while bool((done < cfg.episodes_per_env).any()):
            if steps >= cfg.max_rollout_len:
                raise ValueError(_never_ends_message(done, steps, cfg))
            rollout, carry, returns = collect(
                self.net, env, carry, min(CHUNK, cfg.max_rollout_len - steps)
            )
            parts.append(rollout)
            finished.append(returns)
            done += (rollout.terminated | rollout.truncated).sum(0)
            steps += rollout.rewards.shape[0]
        return Experience(join_time(parts), torch.cat(finished)), carry

    def learn(self, experience: Sequence[Experience]) -> dict[str, float]:
        """Monte-Carlo targets per worker (their lengths differ), then one gradient step."""
        lr = self._set_learning_rate()
        rollouts = [rollout_to(e.rollout, self.device) for e in experience]
        flat = [flatten_time(episode_targets(r, self.config)) for r in rollouts]
        batch = Batch(
            *(torch.cat(xs, dim=0 if name == "hidden" else 1)
              for name, xs in zip(Batch._fields, zip(*flat)))
        )  # fmt: skip
        value = self.config.baseline == "value"
        stats = gradient_step(self.net, self.optimizers["policy"], batch, self.config, value)
        steps = sum(r.rewards.shape[0] * r.rewards.shape[1] for r in rollouts)
        self.env_steps += steps
        used = float(batch.alive.any(-1).sum()) / steps
        return stats | {"lr": lr, "whole_episode_steps": used} | self._episode_stats(experience)


def _never_ends_message(done: Tensor, steps: int, cfg: ReinforceConfig) -> str:
    short = torch.nonzero(done < cfg.episodes_per_env).flatten().tolist()
    return (
        f"reinforce: env(s) {short[:5]} ran {steps} steps without finishing "
        f"{cfg.episodes_per_env} episode(s) (max_rollout_len={cfg.max_rollout_len}). "
        "Monte-Carlo returns need episodes that end: give the env a time limit (e.g. the env "
        "kwarg max_cycles, or a gymnasium id with max_episode_steps), raise max_rollout_len, "
        "or use a2c, trpo or ppo, which bootstrap"
    )


def make_learner(
    spec: Any, config: ReinforceConfig, seed: int, device: Any = "cpu"
) -> ReinforceLearner:
    """A REINFORCE learner for `spec`."""
    return ReinforceLearner(spec, config, seed, device)


__all__ = ["ALGOS", "CONFIG", "ReinforceLearner", "make_env", "make_learner"]
