"""Off-policy actor-critic for one or many agents: DDPG, TD3, SAC and MADDPG, MATD3, MASAC.

Two switches make the family: `algorithm` (ddpg, td3, sac: how actions are drawn and how the
critic's target is formed, see `loss.py`) and `critic` (local: each agent's Q sees its own
observation and action; central: each agent's Q sees the global state and all actions, the
MADDPG recipe). `share_parameters` gives each team one actor and one critic.

`collect` takes `rollout_steps` vector steps with the exploring policy (uniform random
actions for the first `learning_starts` env steps); `learn` stores the one-step transitions
in the value family's `ReplayBuffer` and runs `updates_per_step` updates per new env step.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from marl.core.checkpoint import load_optimizer
from marl.core.config import config_to_dict
from marl.core.learner import (
    cpu_state,
    load_replay_progress,
    mean_returns,
    replay_progress,
)
from marl.core.seeding import INIT, LEARN, child_seed, seeded_init, torch_generator
from marl.core.spec import VecSpec
from marl.envs.vector import learner_env
from marl.learners.actor_critic.config import ActorCriticConfig
from marl.learners.actor_critic.loss import (
    Batch,
    Nets,
    actor_loss,
    critic_loss,
    soft_update,
    temperature_loss,
)
from marl.learners.actor_critic.networks import ActionCoding, Actors, Critics
from marl.learners.actor_critic.policy import ActorPolicy, Carry, Experience, collect_steps
from marl.learners.ppo.nets import AgentGroups
from marl.learners.value.replay import FieldSpec, ReplayBuffer, transition_fields


def replay_fields(spec: VecSpec, width: int) -> FieldSpec:
    """The value family's transition layout, with coded float actions [N, D] and the mask of
    the acting step (discrete actors need it to sample their own action again)."""
    n = spec.n_agents
    fields = transition_fields(n, spec.obs_dim, spec.state_dim, spec.num_actions)
    fields["actions"] = ((n, width), torch.float32)
    fields["action_mask"] = ((n, spec.num_actions), torch.bool)
    return fields


def build_nets(spec: VecSpec, config: ActorCriticConfig, seed: int) -> Nets:
    """Actors, critics and targets for `spec`, initialised from `seed`."""
    teams = [list(members) for members in spec.teams.values()]
    groups = teams if config.share_parameters else [[i] for i in range(spec.n_agents)]
    agent_groups = AgentGroups(groups, spec.n_agents, agent_ids=config.share_parameters)
    coding = ActionCoding(list(spec.action_spaces))
    generator = torch_generator(seed)
    with seeded_init(seed):  # torch's layers draw default weights before ours replace them
        actor = Actors(agent_groups, spec.obs_dim, coding, config.hidden, config.algorithm,
                       generator)  # fmt: skip
        critic = Critics(
            agent_groups, spec.obs_dim, spec.state_dim, coding.width, config.critic == "central",
            config.hidden, 2 if config.twin_critics else 1, generator,
        )  # fmt: skip
    actor_target = None if config.algorithm == "sac" else copy.deepcopy(actor)
    log_alpha = torch.full((spec.n_agents,), float(np.log(max(config.alpha, 1e-8))))
    return Nets(actor, critic, actor_target, copy.deepcopy(critic), log_alpha)


def batch_of(items: dict[str, Tensor], device: torch.device) -> Batch:
    """The losses' `Batch` from replayed `replay_fields` items, moved to `device`."""
    d = {k: v.to(device) for k, v in items.items()}
    return Batch(
        d["obs"], d["state"], d["action_mask"], d["actions"], d["returns"], d["discount"],
        d["next_obs"], d["next_state"], d["next_action_mask"], d["alive"], d["next_alive"],
    )  # fmt: skip


class ActorCriticLearner:
    """DDPG / TD3 / SAC and their team forms on one `VecSpec` (a `marl.core.learner.Learner`)."""

    def __init__(self, spec: VecSpec, config: ActorCriticConfig, seed: int, device: Any = "cpu"):
        config.validate()
        self.spec, self.config, self.seed = spec, config, seed
        self.device = torch.device(device)
        nets = build_nets(spec, config, child_seed(seed, INIT))
        self.actor = nets.actor.to(self.device)
        self.critic = nets.critic.to(self.device)
        self.actor_target = nets.actor_target and nets.actor_target.to(self.device)
        self.critic_target = nets.critic_target.to(self.device).requires_grad_(False)
        if self.actor_target is not None:
            self.actor_target.requires_grad_(False)
        self.log_alpha = nn.Parameter(nets.log_alpha.to(self.device))
        self.target_entropy = self.actor.coding.target_entropy(config.target_entropy_scale)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=config.actor_lr, foreach=True)
        self.critic_opt = torch.optim.Adam(
            self.critic.parameters(), lr=config.critic_lr, foreach=True
        )
        self.alpha_opt = torch.optim.Adam([self.log_alpha], lr=config.actor_lr, foreach=True)
        self.generator = torch_generator(child_seed(seed, LEARN), self.device)
        self.rng = np.random.default_rng(child_seed(seed, LEARN))
        self._replay: ReplayBuffer | None = None  # made on first use: acting copies need none
        self.env_steps, self.updates, self.owed_updates = 0, 0, 0.0

    @property
    def nets(self) -> Nets:
        """The learned modules as the losses take them."""
        return Nets(self.actor, self.critic, self.actor_target, self.critic_target, self.log_alpha)

    @property
    def replay(self) -> ReplayBuffer:
        """The transition replay (allocated when first needed)."""
        if self._replay is None:
            fields = replay_fields(self.spec, self.actor.coding.width)
            self._replay = ReplayBuffer(fields, self.config.buffer_size)
        return self._replay

    # -- acting ---------------------------------------------------------------------------
    def start(self, env: Any, seed: int) -> Carry:
        """Reset `env` with `seed`; the carry's generator (same seed) draws the actions."""
        step = env.reset(seed=seed)
        returns = np.zeros((env.num_envs, self.spec.n_agents))
        return Carry(step, torch_generator(seed, self.device), returns)

    def collect(self, env: Any, carry: Carry) -> tuple[Experience, Carry]:
        """`rollout_steps` vector steps with the exploring policy (random while warming up)."""
        warm_up = self.env_steps < self.config.learning_starts
        return collect_steps(self.acting_policy(), env, carry, self.config, warm_up)

    def acting_policy(self) -> ActorPolicy:
        """The current actor as a policy acting with the config's exploration."""
        return ActorPolicy(self.actor, self.config, self.seed)

    def weights(self) -> dict[str, Any]:
        """The actor's weights (CPU) and the env-step count that ends the warm-up."""
        actor = cpu_state(self.actor)
        return {"actor": actor, "env_steps": self.env_steps}

    def load_weights(self, weights: dict[str, Any]) -> None:
        """Act with the learner's `weights()` from now on."""
        self.actor.load_state_dict(weights["actor"])
        self.env_steps = int(weights["env_steps"])

    # -- learning -------------------------------------------------------------------------
    def learn(self, experience: Sequence[Experience]) -> dict[str, float]:
        """Store the workers' transitions, then run the updates due for the new env steps."""
        new_steps = 0
        for part in experience:
            self.replay.add(part.items)
            new_steps += part.env_steps
        self.env_steps += new_steps
        stats: dict[str, float] = {"replay_size": float(len(self.replay))}
        cfg = self.config
        if self.env_steps >= cfg.learning_starts and len(self.replay) >= cfg.batch_size:
            self.owed_updates += cfg.updates_per_step * new_steps
            count = int(self.owed_updates)
            self.owed_updates -= count
            updates = [self._update() for _ in range(count)]
            for key in {k for u in updates for k in u}:
                stats[key] = float(np.mean([u[key] for u in updates if key in u]))
        finished = np.concatenate([e.finished for e in experience])
        stats["episodes"] = float(len(finished))
        return stats | mean_returns(finished, self.spec.teams)

    def _sample(self) -> Batch:
        _, _, items = self.replay.sample(self.config.batch_size, self.rng)
        return batch_of(items, self.device)

    def _update(self) -> dict[str, float]:
        """One critic update; every `policy_delay`-th also updates actor, alpha and targets."""
        cfg, batch = self.config, self._sample()
        loss, stats = critic_loss(self.nets, batch, cfg, self.generator)
        stats["critic_grad_norm"] = _step(self.critic_opt, loss, self.critic, cfg.max_grad_norm)
        self.updates += 1
        if self.updates % cfg.policy_delay == 0:
            loss, log_probs, actor_stats = actor_loss(self.nets, batch, cfg, self.generator)
            stats |= actor_stats
            stats["actor_grad_norm"] = _step(self.actor_opt, loss, self.actor, cfg.max_grad_norm)
            if cfg.algorithm == "sac" and cfg.autotune:
                alpha_loss = temperature_loss(
                    self.log_alpha, log_probs, self.target_entropy, batch.alive
                )
                _step(self.alpha_opt, alpha_loss, None, 0.0)
            if self.actor_target is not None:
                soft_update(self.actor_target, self.actor, cfg.tau)
        if cfg.algorithm == "sac" or self.updates % cfg.policy_delay == 0:
            soft_update(self.critic_target, self.critic, cfg.tau)
        stats["alpha"] = float(self.log_alpha.detach().exp().mean())
        return stats

    # -- state ----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Nets, targets, optimizers, temperature, replay, RNGs and counters."""
        names = ("actor", "critic", "critic_target", "actor_opt", "critic_opt", "alpha_opt")
        state = {name: getattr(self, name).state_dict() for name in names}
        if self.actor_target is not None:
            state["actor_target"] = self.actor_target.state_dict()
        return state | {
            "log_alpha": self.log_alpha.detach().clone(),
            "replay": self.replay.state_dict(),
            **replay_progress(self),
            "config": config_to_dict(self.config),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore `state_dict()`'s output."""
        for name in ("actor", "critic", "critic_target"):
            getattr(self, name).load_state_dict(state[name])
        if self.actor_target is not None:
            self.actor_target.load_state_dict(state["actor_target"])
        # Adam keeps loaded tensors as they are: copy them, so two learners loaded from one
        # dict do not share (and both update) the same moment estimates
        for name in ("actor_opt", "critic_opt", "alpha_opt"):
            load_optimizer(getattr(self, name), copy.deepcopy(state[name]))
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])
        self.replay.load_state_dict(state["replay"])
        load_replay_progress(self, state)

    def policy(self) -> ActorPolicy:
        """The current actor as a policy (shares weights with the learner)."""
        return ActorPolicy(self.actor, self.config, self.seed)

    def close(self) -> None:
        """Nothing to free."""


def _step(optimizer: torch.optim.Optimizer, loss: Tensor, net: nn.Module | None,
          max_grad_norm: float) -> float:  # fmt: skip
    """Backpropagate `loss`, clip `net`'s gradient norm (if > 0) and step; the norm or 0."""
    optimizer.zero_grad()
    loss.backward()
    norm = 0.0
    if net is not None and max_grad_norm > 0:
        norm = float(nn.utils.clip_grad_norm_(net.parameters(), max_grad_norm, foreach=True))
    optimizer.step()
    return norm


def make_learner(
    spec: VecSpec, config: ActorCriticConfig, seed: int, device: Any = "cpu"
) -> ActorCriticLearner:
    """An off-policy actor-critic learner for `spec`."""
    return ActorCriticLearner(spec, config, seed, device)


make_env = learner_env
"""The vector env a worker steps (`marl.envs.vector.learner_env`)."""
