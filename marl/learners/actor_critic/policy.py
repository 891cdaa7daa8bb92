"""Acting with the decentralized actors, and recording one-step transitions for replay."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch

from marl.core.seeding import torch_generator
from marl.envs.types import VecStep
from marl.learners.actor_critic.networks import Actors
from marl.learners.value.collect import as_numpy


class ActorPolicy:
    """The actors as a policy: greedy = tanh(mean) / argmax; sampled = the exploring draw
    (Gaussian noise for DDPG/TD3, the squashed Gaussian for SAC, Gumbel when discrete)."""

    def __init__(self, actor: Actors, config: Any, seed: int = 0):
        self.actor, self.config = actor, config
        self.device = actor.coding.low.device
        self.generator = torch_generator(seed, self.device)  # a worker's carry replaces it

    @torch.no_grad()
    def coded(self, obs: Any, action_mask: Any, *, greedy: bool, uniform: bool = False) -> Any:
        """Coded actions [B, N, D] for obs [B, N, O] (uniformly random when `uniform`)."""
        obs_t = torch.as_tensor(as_numpy(obs), dtype=torch.float32, device=self.device)
        mask = torch.as_tensor(as_numpy(action_mask), dtype=torch.bool, device=self.device)
        if uniform:
            return self.actor.coding.uniform(mask, self.generator)
        cfg = self.config
        sampled = self.actor(
            obs_t, mask, None if greedy else self.generator, noise=cfg.exploration_noise,
            temperature=cfg.gumbel_temperature,
        )  # fmt: skip
        return sampled.actions

    def act(self, obs: Any, action_mask: Any, *, greedy: bool = True) -> np.ndarray:
        """obs [B, N, O], action_mask [B, N, A] -> env actions [B, N] or [B, N, D]."""
        coded = self.coded(obs, action_mask, greedy=greedy)
        return self.actor.coding.to_env(coded).cpu().numpy()


class Carry(NamedTuple):
    """A worker's running episodes: the step to act on, the acting generator, the returns."""

    step: VecStep
    generator: torch.Generator
    returns: np.ndarray  # [B, N] undiscounted returns of the running episodes


class Experience(NamedTuple):
    """One worker's acting: transitions for replay and the returns of the finished episodes."""

    items: dict[str, np.ndarray]  # `replay_fields` layout, each [T * B, ...]
    finished: np.ndarray  # [episodes, N] per-agent returns
    env_steps: int


def transition(step: VecStep, actions: np.ndarray, nxt: VecStep, gamma: float) -> dict:
    """The one-step transitions [B, ...] from `step` under coded `actions` to `nxt`; where
    an episode ended, the next obs is its final one (all actions legal, agents as before)."""
    done = as_numpy(nxt.done).astype(bool)
    d1, d2 = done[:, None], done[:, None, None]
    alive = as_numpy(step.alive)
    return {
        "obs": as_numpy(step.obs),
        "state": as_numpy(step.state),
        "action_mask": as_numpy(step.action_mask),
        "alive": alive,
        "actions": actions,
        "returns": as_numpy(nxt.reward),
        "discount": gamma * (1.0 - as_numpy(nxt.terminated).astype(np.float32)),
        "next_obs": np.where(d2, as_numpy(nxt.final_obs), as_numpy(nxt.obs)),
        "next_state": np.where(d1, as_numpy(nxt.final_state), as_numpy(nxt.state)),
        "next_action_mask": np.where(d2, True, as_numpy(nxt.action_mask)),
        "next_alive": np.where(d1, alive, as_numpy(nxt.alive)),
    }


def collect_steps(
    policy: ActorPolicy, env: Any, carry: Carry, config: Any, warm_up: bool
) -> tuple[Experience, Carry]:
    """`config.rollout_steps` exploring steps of every env (uniform actions when `warm_up`)."""
    policy.generator = carry.generator
    records, finished, step = [], [], carry.step
    for _ in range(config.rollout_steps):
        coded = policy.coded(step.obs, step.action_mask, greedy=False, uniform=warm_up)
        nxt = env.step(policy.actor.coding.to_env(coded).cpu().numpy())
        records.append(transition(step, coded.cpu().numpy(), nxt, config.gamma))
        done = as_numpy(nxt.done).astype(bool)
        carry.returns[:] += as_numpy(nxt.reward)
        finished += [carry.returns[b].copy() for b in np.flatnonzero(done)]
        carry.returns[done] = 0.0
        step = nxt
    items = {k: np.concatenate([r[k] for r in records]) for k in records[0]}
    rows = np.stack(finished) if finished else np.zeros((0, carry.returns.shape[1]))
    steps = config.rollout_steps * len(carry.returns)
    return Experience(items, rows, steps), carry._replace(step=step)
