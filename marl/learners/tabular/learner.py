"""Tabular Q-learning and Dyna-Q on marl's vector envs: one independent Q-table per agent.

`TabularLearner` acts epsilon-greedily on the `VecStep` arrays (`collect`), then applies the
Q-updates of the collected transitions in the order they happened, each followed by
`planning_steps` Dyna-Q planning updates from that agent's model (`learn`). With
`num_envs=1, rollout_steps=1` this is exactly Sutton & Barto's tabular Dyna-Q (Q-learning
when `planning_steps=0`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch

from marl.core.config import ConfigError
from marl.core.learner import mean_returns, rng_state, set_rng_state
from marl.core.seeding import LEARN, child_seed
from marl.core.spec import VecSpec
from marl.envs.types import VecEnv, VecStep
from marl.envs.vector import learner_env
from marl.learners.tabular.numerics import TabularModel, epsilon_greedy, plan, q_learning_update
from marl.learners.tabular.states import StateIndex
from marl.learners.value.acting import linear_schedule


@dataclass(frozen=True)
class TabularConfig:
    """Settings of tabular Q-learning / Dyna-Q."""

    alpha: float = 0.1
    """Step size of every Q-update, real and planned (at the start, if annealed)."""
    alpha_end: float | None = None
    """Step size after annealing (None: alpha throughout); stochastic envs need it small."""
    alpha_anneal_steps: int = 0
    """Env steps over which the step size falls linearly from alpha to alpha_end."""
    gamma: float = 0.95
    """Discount factor."""
    epsilon_start: float = 0.1
    """Exploration rate at the start."""
    epsilon_end: float = 0.1
    """Exploration rate after annealing."""
    epsilon_anneal_steps: int = 0
    """Env steps over which epsilon falls linearly from start to end (0: epsilon_end)."""
    planning_steps: int = 0
    """Dyna-Q planning updates after each real transition (0: plain Q-learning)."""
    initial_q: float = 0.0
    """Value every Q-table entry starts from (above the returns: optimistic exploration)."""
    num_envs: int = 1
    """Environments stepped together."""
    rollout_steps: int = 1
    """Vector-env steps per collect (each is num_envs env steps)."""
    max_states: int = 65_536
    """Largest Q-table (rows per agent) to allocate; bigger observation spaces are refused."""

    def validate(self) -> None:
        """Refuse inconsistent settings with a message naming the field."""
        for name in ("num_envs", "rollout_steps", "max_states"):
            if getattr(self, name) < 1:
                raise ConfigError(f"TabularConfig.{name}={getattr(self, name)}: must be >= 1")
        for name in ("planning_steps", "epsilon_anneal_steps", "alpha_anneal_steps"):
            if getattr(self, name) < 0:
                raise ConfigError(f"TabularConfig.{name}={getattr(self, name)}: must be >= 0")
        for name in ("alpha", "gamma", "epsilon_start", "epsilon_end"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"TabularConfig.{name}={getattr(self, name)}: must lie in [0, 1]")
        if self.alpha_end is not None and not 0.0 <= self.alpha_end <= 1.0:
            raise ConfigError(f"TabularConfig.alpha_end={self.alpha_end}: must lie in [0, 1]")


class TabularExperience(NamedTuple):
    """The transitions of `rollout_steps` vector steps and the episodes that ended in them."""

    states: np.ndarray  # [T, B, N] int64, the state each agent acted in
    actions: np.ndarray  # [T, B, N] int64
    rewards: np.ndarray  # [T, B, N] float32
    next_states: np.ndarray  # [T, B, N] int64, from final_obs where the episode ended
    terminated: np.ndarray  # [T, B, N] bool, no bootstrap: env terminated, or the agent left
    acted: np.ndarray  # [T, B, N] bool, the agent was alive and acted
    legal: np.ndarray  # [T, B, N, A] bool, the action mask in `states`
    episode_returns: np.ndarray  # [E, N] per-agent returns of the episodes that ended
    episode_lengths: np.ndarray  # [E] their lengths in env steps


class TabularCarry(NamedTuple):
    """What acting carries from one collect to the next."""

    step: VecStep  # the latest step (obs to act on)
    returns: np.ndarray  # [B, N] float64, running returns of the current episodes
    lengths: np.ndarray  # [B] int64, their lengths so far
    rng: np.random.Generator  # draws the exploration and tie-breaking of acting


def q_rows(q: list[np.ndarray], states: np.ndarray) -> np.ndarray:
    """Each agent's Q-values in its state: tables [S_i, A], states [B, N] -> [B, N, A]."""
    return np.stack([table[states[:, i]] for i, table in enumerate(q)], axis=1)


class TabularPolicy:
    """Acts from a snapshot of the Q-tables: greedy, or epsilon-greedy with `epsilon`."""

    def __init__(self, q: list[np.ndarray], index: StateIndex, epsilon: float, seed: int = 0):
        self.q = [table.copy() for table in q]
        self.index = index
        self.epsilon = epsilon
        self.rng = np.random.default_rng(seed)

    def act(self, obs: Any, action_mask: Any, greedy: bool = True) -> np.ndarray:
        """Actions [B, N] for obs [B, N, O] and action_mask [B, N, A] (ties broken at random)."""
        epsilon = 0.0 if greedy else self.epsilon
        rows = q_rows(self.q, self.index(obs))
        return epsilon_greedy(rows, np.asarray(action_mask, bool), epsilon, self.rng)


class TabularLearner:
    """Independent tabular Q-learners (one Q-table, model and legal-action table per agent),
    following `marl.core.learner.Learner`."""

    def __init__(self, spec: VecSpec, config: TabularConfig, seed: int = 0):
        config.validate()
        env_id = spec.env_id or "the env"
        if spec.num_actions < 1:
            raise ValueError(f"tabular learning needs Discrete actions; {env_id} has none")
        self.spec, self.config = spec, config
        self.index = StateIndex(
            list(spec.observation_spaces), list(spec.agents), env_id, config.max_states
        )
        self.teams = {team: list(members) for team, members in spec.teams.items()}
        actions = spec.num_actions
        self.q = [np.full((n, actions), config.initial_q) for n in self.index.sizes]
        self.legal = [np.ones((n, actions), bool) for n in self.index.sizes]
        self.models = [TabularModel.empty(n, actions) for n in self.index.sizes]
        self.plan_rng = np.random.default_rng(child_seed(seed, LEARN))
        self.env_steps = 0

    def epsilon(self, env_steps: int | None = None) -> float:
        """Exploration rate after `env_steps` env steps (default: those learned from)."""
        cfg = self.config
        steps = self.env_steps if env_steps is None else env_steps
        return linear_schedule(cfg.epsilon_start, cfg.epsilon_end, cfg.epsilon_anneal_steps, steps)

    def alpha(self, env_steps: int | None = None) -> float:
        """Step size after `env_steps` env steps (default: those learned from)."""
        cfg = self.config
        if cfg.alpha_end is None:
            return cfg.alpha
        steps = self.env_steps if env_steps is None else env_steps
        return linear_schedule(cfg.alpha, cfg.alpha_end, cfg.alpha_anneal_steps, steps)

    def start(self, env: VecEnv, seed: int) -> TabularCarry:
        """Reset the envs (env b with `seed + b`) and begin acting with a generator seeded
        `seed`."""
        step = env.reset(seed)
        returns, lengths = np.zeros((env.num_envs, len(self.q))), np.zeros(env.num_envs, int)
        return TabularCarry(step, returns, lengths, np.random.default_rng(seed))

    def collect(self, env: VecEnv, carry: TabularCarry) -> tuple[TabularExperience, TabularCarry]:
        """Step the envs `rollout_steps` times epsilon-greedily; the transitions and carry."""
        step, returns, lengths = carry.step, carry.returns.copy(), carry.lengths.copy()
        rows: list[tuple] = []
        finished_returns, finished_lengths = [], []
        for t in range(self.config.rollout_steps):
            states = self.index(step.obs)
            mask = np.asarray(step.action_mask, bool)
            epsilon = self.epsilon(self.env_steps + t * env.num_envs)
            actions = epsilon_greedy(q_rows(self.q, states), mask, epsilon, carry.rng)
            nxt = env.step(actions)
            done = np.asarray(nxt.done, bool)
            next_obs = np.where(done[:, None, None], nxt.final_obs, nxt.obs)
            left = ~done[:, None] & ~np.asarray(nxt.alive, bool)
            terminated = np.asarray(nxt.terminated, bool)[:, None] | left
            reward = np.asarray(nxt.reward, np.float32)
            acted = np.asarray(step.alive, bool)
            rows.append((states, actions, reward, self.index(next_obs), terminated, acted, mask))
            returns += reward * acted
            lengths += 1
            for b in np.flatnonzero(done):
                finished_returns.append(returns[b].copy())
                finished_lengths.append(lengths[b])
                returns[b], lengths[b] = 0.0, 0
            step = nxt
        fields = [np.stack(column) for column in zip(*rows)]
        num_agents = len(self.q)
        experience = TabularExperience(
            *fields,
            episode_returns=np.array(finished_returns).reshape(-1, num_agents),
            episode_lengths=np.array(finished_lengths, np.int64),
        )
        return experience, TabularCarry(step, returns, lengths, carry.rng)

    def weights(self) -> dict[str, Any]:
        """The Q-tables and the env-step count that sets epsilon (for acting copies)."""
        return {"q": [torch.from_numpy(t.copy()) for t in self.q], "env_steps": self.env_steps}

    def load_weights(self, weights: dict[str, Any]) -> None:
        """Act with the learner's `weights()` from now on."""
        self.q = [t.numpy().astype(np.float64) for t in weights["q"]]
        self.env_steps = int(weights["env_steps"])

    def _update_agent(self, i: int, transition: tuple, alpha: float) -> tuple[float, float]:
        """One real Q-update of agent i, then its Dyna step; (|TD|, mean planned |TD|)."""
        cfg = self.config
        s, a, r, s2, terminated = transition
        td = q_learning_update(self.q[i], s, a, r, s2, terminated, alpha, cfg.gamma, self.legal[i])
        if not cfg.planning_steps:
            return abs(td), 0.0
        self.models[i].record(s, a, r, s2, terminated)
        model, steps = self.models[i], cfg.planning_steps
        planned = plan(self.q[i], model, steps, alpha, cfg.gamma, self.plan_rng, self.legal[i])
        return abs(td), planned

    def _learn_one(self, exp: TabularExperience) -> tuple[float, float, int]:
        """Apply one experience's updates in time order; (sum |TD|, sum planned |TD|, count)."""
        acted = exp.acted
        alpha = self.alpha()  # one step size per experience
        agents = np.argwhere(acted)[:, 2].tolist()  # C order: time, then env, then agent
        columns = (exp.states, exp.actions, exp.rewards, exp.next_states, exp.terminated)
        transitions = zip(*(column[acted].tolist() for column in columns))
        legal = exp.legal[acted]
        td_sum = planned_sum = 0.0
        for k, (i, transition) in enumerate(zip(agents, transitions)):
            self.legal[i][transition[0]] = legal[k]
            td, planned = self._update_agent(i, transition, alpha)
            td_sum, planned_sum = td_sum + td, planned_sum + planned
        self.env_steps += acted.shape[0] * acted.shape[1]
        return td_sum, planned_sum, len(agents)

    def learn(self, experiences: list[TabularExperience]) -> dict[str, float]:
        """Apply the Q-updates (and Dyna planning) of `experiences` in order; the stats."""
        td_sum, planned_sum, count = 0.0, 0.0, 0
        for exp in experiences:
            parts = self._learn_one(exp)
            td_sum, planned_sum, count = td_sum + parts[0], planned_sum + parts[1], count + parts[2]
        stats = {
            "td_error": td_sum / max(count, 1),
            "epsilon": self.epsilon(),
            "alpha": self.alpha(),
            "env_steps": float(self.env_steps),
        }
        if self.config.planning_steps:
            stats["planned_td_error"] = planned_sum / max(count, 1)
        lengths = np.concatenate([exp.episode_lengths for exp in experiences])
        stats["episodes"] = float(len(lengths))
        if len(lengths):
            stats["episode_length"] = float(lengths.mean())
            finished = np.concatenate([exp.episode_returns for exp in experiences])  # [E, N]
            stats |= mean_returns(finished, self.teams)
        return stats

    def policy(self, seed: int = 0) -> TabularPolicy:
        """A snapshot policy: `act(obs, mask, greedy=True)`; epsilon-greedy at the current
        epsilon when greedy=False. `seed` seeds its tie-breaking and exploration draws."""
        return TabularPolicy(self.q, self.index, self.epsilon(), seed)

    def state_dict(self) -> dict[str, Any]:
        """Q-tables, legal-action tables, models, step count and generator states, as tensors
        and plain values (readable with `torch.load(weights_only=True)`)."""
        return {
            "q": [torch.from_numpy(table.copy()) for table in self.q],
            "legal": [torch.from_numpy(table.copy()) for table in self.legal],
            "models": [
                {
                    "next_state": torch.from_numpy(m.next_state.copy()),
                    "reward": torch.from_numpy(m.reward.copy()),
                    "terminated": torch.from_numpy(m.terminated.copy()),
                    "seen": torch.tensor(m.seen, dtype=torch.int64),
                }
                for m in self.models
            ],
            "env_steps": self.env_steps,
            "plan_rng": rng_state(self.plan_rng),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` saved (tables must match this env's sizes)."""
        shapes = [tuple(t.shape) for t in state["q"]]
        if shapes != [table.shape for table in self.q]:
            raise ValueError(
                f"Q-tables of shapes {shapes} do not fit this env's {[t.shape for t in self.q]}"
            )
        self.q = [t.numpy().astype(np.float64) for t in state["q"]]
        self.legal = [t.numpy().astype(bool) for t in state["legal"]]
        self.models = [
            TabularModel(
                m["next_state"].numpy().astype(np.int64),
                m["reward"].numpy().astype(np.float64),
                m["terminated"].numpy().astype(bool),
                [int(x) for x in m["seen"].tolist()],
            )
            for m in state["models"]
        ]
        self.env_steps = int(state["env_steps"])
        set_rng_state(self.plan_rng, state["plan_rng"])

    def close(self) -> None:
        """Nothing to free."""


CONFIG = TabularConfig
ALGOS: dict[str, dict[str, Any]] = {
    "qlearning": {"planning_steps": 0},
    "dynaq": {"planning_steps": 50},
}


def make_learner(
    spec: VecSpec, config: TabularConfig, seed: int, device: Any = "cpu"
) -> TabularLearner:
    """Tabular Q-learning (or Dyna-Q, with planning steps) for `spec` (tables live on the CPU)."""
    return TabularLearner(spec, config, seed)


make_env = learner_env
"""The vector env a worker steps (`marl.envs.vector.learner_env`)."""
