"""Value-based learners: QMIX, VDN, IQL and DQN as one learner with a switchable mixer.

QMIX (Rashid et al. 2018) mixes per-agent Qs with a monotonic hypernetwork of the global
state, VDN (Sunehag et al. 2018) sums them, IQL trains each agent on its own reward, and DQN
is IQL with one agent, a feed-forward net and transition replay. Double Q, dueling heads,
n-step returns and prioritized replay are options (`ValueConfig`). A team's reward for the
mixed learners is the MEAN of its agents' rewards (so a shared team reward keeps its scale).
Independent learners may also use C51 return distributions (Bellemare et al. 2017) and noisy
nets (Fortunato et al. 2018); with all of these on they are Rainbow (Hessel et al. 2018).

`collect` takes `rollout_steps` epsilon-greedy (or noisy-net) vector steps; `learn` stores
them in replay and runs `updates_per_iterate` TD updates, each drawing fresh weight noise
for noisy nets and followed by a target-network sync when due.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from marl.core.checkpoint import load_optimizer
from marl.core.learner import cpu_state, mean_returns, rng_state, set_rng_state
from marl.core.seeding import (
    INIT,
    LEARN,
    child_seed,
    restore_generator,
    seeded_init,
    torch_generator,
)
from marl.core.spec import VecSpec
from marl.envs.types import VecStep
from marl.envs.vector import learner_env
from marl.learners.value.acting import ValuePolicy, linear_schedule
from marl.learners.value.collect import SequenceBuilder, as_numpy, segment_to_transitions
from marl.learners.value.config import ALGOS, ValueConfig
from marl.learners.value.distributional import CategoricalSupport
from marl.learners.value.loss import (
    TeamQ,
    episodes_to_batch,
    transitions_to_batch,
    value_loss,
)
from marl.learners.value.mixers import make_mixer
from marl.learners.value.networks import AgentQNet
from marl.learners.value.noisy import reset_noise
from marl.learners.value.replay import ReplayBuffer, episode_fields, transition_fields

CONFIG = ValueConfig
__all__ = [
    "ALGOS",
    "CONFIG",
    "ValueConfig",
    "ValueLearner",
    "build_team_nets",
    "make_env",
    "make_learner",
    "make_replay",
]


def build_team_nets(env: VecSpec, config: ValueConfig, seed: int) -> nn.ModuleList:
    """One TeamQ per team of `env`, initialised from `seed` (global RNG left untouched)."""
    if env.num_actions < 1:
        raise ValueError(
            "value learners (qmix/vdn/iql/dqn) need discrete actions, but this env has "
            f"continuous ones (action_dim={env.action_dim}); use a policy-gradient learner"
        )
    support = None
    if config.distributional:
        support = CategoricalSupport(config.v_min, config.v_max, config.atoms)
    nets = []
    with seeded_init(seed):
        for members in env.teams.values():
            n = len(members)
            width = env.obs_dim + (n if config.agent_id else 0)
            width += env.num_actions if config.last_action else 0
            agent = AgentQNet(
                width,
                env.num_actions,
                config.hidden,
                config.recurrent,
                config.dueling,
                atoms=None if support is None else support.atoms,
                noisy_sigma0=config.noisy_sigma0 if config.noisy else None,
            )
            mixer = make_mixer(
                config.mixer, n, env.state_dim, config.mixer_embed, config.hypernet_hidden
            )
            nets.append(
                TeamQ(agent, mixer, env.num_actions, config.agent_id, config.last_action, support)
            )
    return nn.ModuleList(nets)


def make_replay(config: ValueConfig, env: VecSpec) -> ReplayBuffer:
    """The replay `config` asks for on `env`: episode segments (recurrent) or transitions."""
    n = len(env.agents)
    if config.recurrent:
        fields = episode_fields(config.max_seq_len, n, env.obs_dim, env.state_dim, env.num_actions)
    else:
        fields = transition_fields(n, env.obs_dim, env.state_dim, env.num_actions)
    return ReplayBuffer(
        fields, config.buffer_size, config.prioritized, config.per_alpha, config.per_eps
    )


class Carry(NamedTuple):
    """A worker's running episodes: the step to act on, segments being recorded, and the
    acting policy (its recurrent state and its generators: epsilon and weight noise)."""

    step: VecStep
    builder: SequenceBuilder
    actor: ValuePolicy
    returns: np.ndarray  # [B, N] undiscounted return so far of the running episodes


class Experience(NamedTuple):
    """One worker's acting: replay items and the returns of the episodes that ended."""

    items: list[dict[str, Any]]  # as `ReplayBuffer.add` takes them
    finished: np.ndarray  # [episodes, N] per-agent returns
    env_steps: int  # env steps taken


class ValueLearner:
    """QMIX / VDN / IQL / DQN (and C51 / Rainbow) on one `VecSpec` (follows
    `marl.core.learner.Learner`)."""

    def __init__(self, spec: VecSpec, config: ValueConfig, seed: int, device: Any = "cpu"):
        config.validate()
        self.spec, self.config = spec, config
        self.device = torch.device(device)
        self.team_names = list(spec.teams)
        self.teams = [list(members) for members in spec.teams.values()]
        self.online = build_team_nets(spec, config, child_seed(seed, INIT)).to(self.device)
        self.target = copy.deepcopy(self.online).requires_grad_(False)
        self.optimizer = torch.optim.Adam(self.online.parameters(), lr=config.lr, foreach=True)
        self.rng = np.random.default_rng(child_seed(seed, LEARN))
        self.noise = torch_generator(child_seed(seed, LEARN, 0), self.device)
        self._replay: ReplayBuffer | None = None  # made on first use: acting copies need none
        self.env_steps = 0
        self.updates = 0

    @property
    def replay(self) -> ReplayBuffer:
        """The replay buffer (allocated when first needed)."""
        if self._replay is None:
            self._replay = make_replay(self.config, self.spec)
        return self._replay

    @property
    def epsilon(self) -> float:
        """Exploration rate at the current env step."""
        cfg = self.config
        return linear_schedule(
            cfg.epsilon_start, cfg.epsilon_end, cfg.epsilon_anneal_steps, self.env_steps
        )

    # -- acting ---------------------------------------------------------------------------
    def start(self, env: Any, seed: int) -> Carry:
        """Reset `env` with `seed`; the acting policy draws from generators seeded `seed`."""
        step = env.reset(seed=seed)
        spec = self.spec
        builder = SequenceBuilder(env.num_envs, self.config.max_seq_len, spec.n_agents,
                                  spec.obs_dim, spec.state_dim, spec.num_actions)  # fmt: skip
        builder.begin(step)
        noise = torch_generator(seed, self.device) if self.config.noisy else None
        rng = np.random.default_rng(seed)
        actor = ValuePolicy(self.online, self.teams, self.device, rng=rng, noise=noise)
        return Carry(step, builder, actor, np.zeros((env.num_envs, spec.n_agents)))

    def collect(self, env: Any, carry: Carry) -> tuple[Experience, Carry]:
        """`rollout_steps` vector steps, epsilon-greedy (epsilon of the learner's schedule) or
        with fresh weight noise each step (noisy nets)."""
        items: list[dict[str, Any]] = []
        finished: list[np.ndarray] = []
        carry.actor.epsilon = self.epsilon
        step = carry.step
        for _ in range(self.config.rollout_steps):
            actions = carry.actor.act(step.obs, step.action_mask, greedy=False)
            step = env.step(actions)
            items += [self._item(segment) for segment in carry.builder.record(actions, step)]
            done = as_numpy(step.done).astype(bool)
            carry.returns[:] += as_numpy(step.reward)
            finished += [carry.returns[b].copy() for b in np.flatnonzero(done)]
            carry.returns[done] = 0.0
            carry.actor.reset(done)
        rows = np.stack(finished) if finished else np.zeros((0, self.spec.n_agents))
        steps = self.config.rollout_steps * env.num_envs
        return Experience(items, rows, steps), carry._replace(step=step)

    def _item(self, segment: dict[str, np.ndarray]) -> dict[str, Any]:
        """A finished segment as replay stores it: whole (recurrent) or as transitions."""
        if self.config.recurrent:
            return {k: v[None] for k, v in segment.items()}
        return segment_to_transitions(segment, self.config.gamma, self.config.n_step)

    def weights(self) -> dict[str, Any]:
        """The online nets' weights (CPU) and the env-step count that sets epsilon."""
        online = cpu_state(self.online)
        return {"online": online, "env_steps": self.env_steps}

    def load_weights(self, weights: dict[str, Any]) -> None:
        """Act with the learner's `weights()` (and its epsilon) from now on."""
        self.online.load_state_dict(weights["online"])
        self.env_steps = int(weights["env_steps"])

    # -- learning -------------------------------------------------------------------------
    def learn(self, experience: Sequence[Experience]) -> dict[str, float]:
        """Store the workers' items, then run the due TD updates."""
        for part in experience:
            for items in part.items:
                self.replay.add(items)
            self.env_steps += part.env_steps
        stats: dict[str, float] = {"epsilon": self.epsilon, "replay_size": float(len(self.replay))}
        cfg = self.config
        if self.env_steps >= cfg.learning_starts and len(self.replay) >= cfg.batch_size:
            updates = [self._update() for _ in range(cfg.updates_per_iterate)]
            stats.update({k: float(np.mean([u[k] for u in updates])) for k in updates[0]})
        finished = np.concatenate([e.finished for e in experience])
        return stats | mean_returns(finished, self.spec.teams)

    def _update(self) -> dict[str, float]:
        """One TD update on a replay batch; returns its stats."""
        cfg = self.config
        beta = linear_schedule(cfg.per_beta, 1.0, cfg.per_beta_anneal_steps, self.env_steps)
        indices, weights, items = self.replay.sample(cfg.batch_size, self.rng, beta)
        if cfg.noisy:  # independent noise for the online and the target net, every update
            reset_noise(self.online, self.noise)
            reset_noise(self.target, self.noise)
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
            nn.utils.clip_grad_norm_(self.online.parameters(), cfg.max_grad_norm, foreach=True)
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
            "noise": self.noise.get_state(),
            "env_steps": self.env_steps,
            "updates": self.updates,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore `state_dict()`."""
        self.online.load_state_dict(state["online"])
        self.target.load_state_dict(state["target"])
        # Adam keeps loaded tensors as they are: copy them, or two learners loaded from one
        # dict would share (and both update) the same moment estimates
        load_optimizer(self.optimizer, copy.deepcopy(state["optimizer"]))
        self.replay.load_state_dict(state["replay"])
        set_rng_state(self.rng, state["rng"])
        if "noise" in state:  # checkpoints from before noisy nets lack it
            restore_generator(self.noise, state["noise"])
        self.env_steps, self.updates = int(state["env_steps"]), int(state["updates"])

    def close(self) -> None:
        """Nothing to free."""


def make_learner(
    spec: VecSpec, config: ValueConfig, seed: int, device: Any = "cpu"
) -> ValueLearner:
    """The value learner for `spec`."""
    return ValueLearner(spec, config, seed, device)


make_env = learner_env
"""The vector env a worker steps (`marl.envs.vector.learner_env`)."""
