"""Value-based learners: QMIX, VDN, IQL and DQN as one learner with a switchable mixer.

QMIX (Rashid et al. 2018) mixes per-agent Qs with a monotonic hypernetwork of the global
state, VDN (Sunehag et al. 2018) sums them, IQL trains each agent on its own reward, and DQN
is IQL with one agent, a feed-forward net and transition replay. Double Q, dueling heads,
n-step returns and prioritized replay are options (`ValueConfig`). A team's reward for the
mixed learners is the MEAN of its agents' rewards (so a shared team reward keeps its scale).

One iteration: `rollout_steps` epsilon-greedy vector steps into replay, then
`updates_per_iterate` TD updates, each followed by a target-network sync when due.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from torch import nn

from marl.envs.types import VecEnv, VecStep
from marl.learners.value.acting import ValuePolicy, linear_schedule
from marl.learners.value.collect import SequenceBuilder, as_numpy, segment_to_transitions
from marl.learners.value.config import ALGOS, ValueConfig
from marl.learners.value.loss import (
    TeamQ,
    episodes_to_batch,
    transitions_to_batch,
    value_loss,
)
from marl.learners.value.mixers import make_mixer
from marl.learners.value.networks import AgentQNet
from marl.learners.value.replay import ReplayBuffer, episode_fields, transition_fields
from marl.run.learner import rng_state, set_rng_state

CONFIG = ValueConfig
__all__ = [
    "ALGOS",
    "CONFIG",
    "ValueConfig",
    "ValueLearner",
    "build_team_nets",
    "make_learner",
    "make_replay",
]


def build_team_nets(env: VecEnv, config: ValueConfig, seed: int) -> nn.ModuleList:
    """One TeamQ per team of `env`, initialised from `seed` (global RNG left untouched)."""
    if env.num_actions < 1:
        raise ValueError(
            "value learners (qmix/vdn/iql/dqn) need discrete actions, but this env has "
            f"continuous ones (action_dim={env.action_dim}); use a policy-gradient learner"
        )
    nets = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for members in env.teams.values():
            n = len(members)
            width = env.obs_dim + (n if config.agent_id else 0)
            width += env.num_actions if config.last_action else 0
            agent = AgentQNet(
                width, env.num_actions, config.hidden_sizes, config.recurrent, config.dueling
            )
            mixer = make_mixer(
                config.mixer, n, env.state_dim, config.mixer_embed, config.hypernet_hidden
            )
            nets.append(TeamQ(agent, mixer, env.num_actions, config.agent_id, config.last_action))
    return nn.ModuleList(nets)


def make_replay(config: ValueConfig, env: VecEnv) -> ReplayBuffer:
    """The replay `config` asks for on `env`: episode segments (recurrent) or transitions."""
    n = len(env.agents)
    if config.recurrent:
        fields = episode_fields(config.max_seq_len, n, env.obs_dim, env.state_dim, env.num_actions)
    else:
        fields = transition_fields(n, env.obs_dim, env.state_dim, env.num_actions)
    return ReplayBuffer(
        fields, config.buffer_size, config.prioritized, config.per_alpha, config.per_eps
    )


class ValueLearner:
    """QMIX / VDN / IQL / DQN on one vector env, following marl.run.learner.Learner."""

    def __init__(
        self,
        env: VecEnv,
        config: ValueConfig,
        seed: int,
        device: torch.device | str = "cpu",
        env_id: str = "",
        replay: Any = None,
    ):
        """`replay` replaces the buffer built from `config` (the Ray backend passes a proxy)."""
        config.validate()
        self.env, self.config, self.env_id = env, config, env_id
        self.device = torch.device(device)
        self.team_names = list(env.teams)
        self.teams = [list(members) for members in env.teams.values()]
        self.online = build_team_nets(env, config, seed).to(self.device)
        self.target = copy.deepcopy(self.online).requires_grad_(False)
        self.optimizer = torch.optim.Adam(self.online.parameters(), lr=config.lr)
        self.rng = np.random.default_rng(seed)
        self.replay = make_replay(config, env) if replay is None else replay
        n_agents = len(env.agents)
        self.builder = SequenceBuilder(
            env.num_envs, config.max_seq_len, n_agents, env.obs_dim, env.state_dim, env.num_actions
        )
        self.collector = ValuePolicy(self.online, self.teams, self.device, rng=self.rng)
        self.running_returns = np.zeros((env.num_envs, n_agents))
        self.env_steps = 0
        self.updates = 0
        self._step: VecStep | None = None  # None: the envs must be reset before stepping

    @property
    def epsilon(self) -> float:
        """Exploration rate at the current env step."""
        cfg = self.config
        return linear_schedule(
            cfg.epsilon_start, cfg.epsilon_end, cfg.epsilon_anneal_steps, self.env_steps
        )

    def iterate(self) -> dict[str, float]:
        """Collect `rollout_steps` vector steps, then run the due TD updates."""
        return self.learn(self.collect(self.config.rollout_steps))

    def collect(self, steps: int, epsilon: float | None = None) -> list[np.ndarray]:
        """`steps` epsilon-greedy vector steps into replay (epsilon: the schedule's unless
        given); returns the per-agent returns [N] of the episodes that ended."""
        if self._step is None:
            self._start_episodes()
        finished: list[np.ndarray] = []
        for _ in range(steps):
            finished.extend(self._env_step(epsilon))
        return finished

    def learn(self, finished: list[np.ndarray]) -> dict[str, float]:
        """Run the due TD updates; stats with the mean returns of the `finished` episodes."""
        stats: dict[str, float] = {"epsilon": self.epsilon}
        if (
            self.env_steps >= self.config.learning_starts
            and len(self.replay) >= self.config.batch_size
        ):
            updates = [self._update() for _ in range(self.config.updates_per_iterate)]
            stats.update({k: float(np.mean([u[k] for u in updates])) for k in updates[0]})
        if finished:
            per_agent = np.stack(finished)  # [episodes, N]
            for name, members in zip(self.team_names, self.teams):
                stats[f"return/{name}"] = float(per_agent[:, members].mean())
        return stats

    def _start_episodes(self) -> None:
        self._step = self.env.reset(seed=int(self.rng.integers(2**31 - 1)))
        self.builder.begin(self._step)
        self.collector.reset()
        self.running_returns[:] = 0.0

    def _env_step(self, epsilon: float | None = None) -> list[np.ndarray]:
        """One epsilon-greedy vector step; returns the per-agent returns of ended episodes."""
        self.collector.epsilon = self.epsilon if epsilon is None else epsilon
        step = self._step
        actions = self.collector.act(step.obs, step.action_mask, greedy=False)
        nxt = self.env.step(actions)
        self._store(self.builder.record(actions, nxt))
        done = as_numpy(nxt.done).astype(bool)
        self.running_returns += as_numpy(nxt.reward)
        ended = [self.running_returns[b].copy() for b in np.flatnonzero(done)]
        self.running_returns[done] = 0.0
        self.collector.reset(done)
        self.env_steps += self.env.num_envs
        self._step = nxt
        return ended

    def _store(self, segments: list[dict[str, np.ndarray]]) -> None:
        for segment in segments:
            if self.config.recurrent:
                self.replay.add({k: v[None] for k, v in segment.items()})
            else:
                cfg = self.config
                self.replay.add(segment_to_transitions(segment, cfg.gamma, cfg.n_step))

    def _update(self) -> dict[str, float]:
        """One TD update on a replay batch; returns its stats."""
        cfg = self.config
        beta = linear_schedule(cfg.per_beta, 1.0, cfg.per_beta_anneal_steps, self.env_steps)
        indices, weights, items = self.replay.sample(cfg.batch_size, self.rng, beta)
        if cfg.recurrent:
            batch = episodes_to_batch(items, weights, cfg.gamma, cfg.n_step, self.device)
        else:
            batch = transitions_to_batch(items, weights, self.device)
        loss, priorities, stats = value_loss(
            self.online, self.target, self.teams, batch, cfg.double_q, cfg.loss
        )
        self.optimizer.zero_grad()
        loss.backward()
        stats["grad_norm"] = float(
            nn.utils.clip_grad_norm_(self.online.parameters(), cfg.max_grad_norm)
        )
        self.optimizer.step()
        self.replay.update_priorities(indices, priorities.cpu().numpy())
        self.updates += 1
        self._sync_target()
        return stats

    @torch.no_grad()
    def _sync_target(self) -> None:
        tau = self.config.tau
        if tau > 0:
            for p_target, p_online in zip(self.target.parameters(), self.online.parameters()):
                p_target.lerp_(p_online, tau)
        elif self.updates % self.config.target_update_interval == 0:
            self.target.load_state_dict(self.online.state_dict())

    def policy(self) -> ValuePolicy:
        """Greedy policy over the current online networks (shared, not a copy)."""
        return ValuePolicy(self.online, self.teams, self.device)

    def state_dict(self) -> dict[str, Any]:
        """Weights, target, optimizer, replay, RNG and counters (weights_only-safe)."""
        return {
            "online": self.online.state_dict(),
            "target": self.target.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "replay": self.replay.state_dict(),
            "rng": rng_state(self.rng),
            "env_steps": self.env_steps,
            "updates": self.updates,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore `state_dict()`; the envs restart with fresh episodes on the next iterate."""
        self.online.load_state_dict(state["online"])
        self.target.load_state_dict(state["target"])
        # Adam keeps loaded tensors as they are: copy them, or two learners loaded from one
        # dict would share (and both update) the same moment estimates
        self.optimizer.load_state_dict(copy.deepcopy(state["optimizer"]))
        self.replay.load_state_dict(state["replay"])
        set_rng_state(self.rng, state["rng"])
        self.env_steps, self.updates = int(state["env_steps"]), int(state["updates"])
        self._step = None


def make_learner(
    env_id: str,
    config: ValueConfig,
    seed: int,
    device: torch.device,
    env_kwargs: dict[str, Any] | None = None,
) -> ValueLearner:
    """Build the value learner on `config.num_envs` copies of `env_id`."""
    from marl.envs import make_vec

    env = make_vec(env_id, config.num_envs, seed=seed, backend=config.backend, **(env_kwargs or {}))
    return ValueLearner(env, config, seed, device, env_id=env_id)
