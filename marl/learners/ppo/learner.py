"""PPO for one or many agents: single-agent PPO, IPPO and MAPPO are one learner.

Two switches make the family: `share_parameters` (one network per team, with a one-hot
agent id, or one per agent) and `critic` (own observation = IPPO, global state = MAPPO,
state plus own observation and id). PPO is IPPO with one agent.

`collect` steps the vector env for `rollout_len` steps with the sampled policy; `learn`
turns the workers' rollouts into advantages and value targets (GAE with correct
bootstrapping) and runs `epochs` passes of minibatch SGD on the pure `ppo_loss`.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor

from marl.core.checkpoint import load_optimizer
from marl.core.config import config_to_dict
from marl.core.learner import cpu_state, mean_returns
from marl.core.seeding import (
    INIT,
    LEARN,
    child_seed,
    restore_generator,
    seeded_init,
    torch_generator,
)
from marl.core.spec import VecSpec
from marl.envs.vector import learner_env
from marl.learners.ppo import numerics as nx
from marl.learners.ppo.config import PPOConfig
from marl.learners.ppo.loss import update
from marl.learners.ppo.nets import ActorPolicy, AgentGroups, MultiAgentActorCritic
from marl.learners.ppo.rollout import (
    Carry,
    Rollout,
    collect,
    concat_rollouts,
    fresh_carry,
    make_batch,
    rollout_to,
)


class Experience(NamedTuple):
    """One worker's rollout, and the returns of the episodes that ended in it."""

    rollout: Rollout  # [T, b, ...]: b = the worker's envs
    finished: Tensor  # [episodes, N] per-agent undiscounted returns


class OnPolicyLearner:
    """What every on-policy learner of the family shares: the actor-critic for the spec's
    agent groups, acting (`start`, weights), value-norm moments, counters and state.

    PPO, A2C, REINFORCE and TRPO add their `collect` and `learn` (and their optimizers in
    `self.optimizers`, saved and restored with the rest).
    """

    def __init__(self, spec: VecSpec, config: Any, seed: int, device: Any = "cpu"):
        config.validate()
        self.spec, self.config, self.seed = spec, config, seed
        self.device = torch.device(device)
        teams = [list(members) for members in spec.teams.values()]
        groups = teams if config.share_parameters else [[i] for i in range(spec.n_agents)]
        self.groups = AgentGroups(groups, spec.n_agents, agent_ids=config.share_parameters)
        init = child_seed(seed, INIT)
        with seeded_init(init):  # torch's layers draw default weights before ours replace them
            self.net = MultiAgentActorCritic(
                self.groups, spec.obs_dim, spec.state_dim, list(spec.action_spaces),
                config.hidden, config.critic, getattr(config, "recurrent", False),
                torch_generator(init),
            ).to(self.device)  # fmt: skip
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.generator = torch_generator(child_seed(seed, LEARN), self.device)
        self.moments = [nx.init_moments() for _ in groups]
        self.env_steps = 0

    # -- acting ---------------------------------------------------------------------------
    def start(self, env: Any, seed: int) -> Carry:
        """Reset `env` with `seed`; the carry's generator (same seed) draws the actions."""
        generator = torch_generator(seed, self.device)
        return fresh_carry(
            env.reset(seed=seed), self.net, self.spec.n_agents, self.device, generator
        )

    def collect(self, env: Any, carry: Carry) -> tuple[Experience, Carry]:
        """`rollout_len` steps of every env with the sampled policy."""
        rollout, carry, finished = collect(self.net, env, carry, self.config.rollout_len)
        return Experience(rollout, finished), carry

    def weights(self) -> dict[str, Tensor]:
        """The network's weights, on the CPU."""
        return cpu_state(self.net)

    def load_weights(self, weights: dict[str, Tensor]) -> None:
        """Act with the learner's `weights()` from now on."""
        self.net.load_state_dict(weights)

    # -- learning helpers -------------------------------------------------------------------
    def _set_learning_rate(self) -> float:
        """Set (and return) the learning rate: `lr`, linearly annealed with `anneal_lr`."""
        cfg = self.config
        lr = cfg.lr * max(0.0, 1.0 - self.env_steps / cfg.total_steps) if cfg.anneal_lr else cfg.lr
        for optimizer in self.optimizers.values():
            for group in optimizer.param_groups:
                group["lr"] = lr
        return lr

    def _episode_stats(self, experience: Sequence[Experience]) -> dict[str, float]:
        """Episodes finished in `experience` and their mean returns per team."""
        finished = torch.cat([e.finished.cpu() for e in experience])
        return {"episodes": float(finished.shape[0])} | mean_returns(finished, self.spec.teams)

    # -- state ----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Weights, optimizers, value-norm moments, update RNG and counters (tensors/plain)."""
        return {
            "net": self.net.state_dict(),
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "moments": [list(m) for m in self.moments],
            "generator": self.generator.get_state(),
            "env_steps": self.env_steps,
            "config": config_to_dict(self.config),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore `state_dict()`'s output."""
        self.net.load_state_dict(state["net"])
        optimizers = state.get("optimizers") or {"policy": state["optimizer"]}  # older PPO
        for name, optimizer in self.optimizers.items():
            load_optimizer(optimizer, copy.deepcopy(optimizers[name]))  # not the caller's
        self.moments = [nx.Moments(*m) for m in state["moments"]]
        restore_generator(self.generator, state["generator"])
        self.env_steps = int(state["env_steps"])

    def policy(self) -> ActorPolicy:
        """The current network as a policy (shares weights with the learner)."""
        return ActorPolicy(self.net, seed=self.seed)

    def close(self) -> None:
        """Nothing to free."""


class PPOLearner(OnPolicyLearner):
    """PPO / IPPO / MAPPO on one `VecSpec` (follows `marl.core.learner.Learner`)."""

    def __init__(self, spec: VecSpec, config: PPOConfig, seed: int, device: Any = "cpu"):
        super().__init__(spec, config, seed, device)
        self.optimizers["policy"] = torch.optim.Adam(
            self.net.parameters(), lr=config.lr, eps=1e-5, foreach=True
        )

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        """The Adam optimizer of actor and critic."""
        return self.optimizers["policy"]

    def learn(self, experience: Sequence[Experience]) -> dict[str, float]:
        """GAE targets for the joined rollouts, then the PPO update."""
        lr = self._set_learning_rate()
        rollout = rollout_to(concat_rollouts([e.rollout for e in experience]), self.device)
        batch, self.moments, stats = make_batch(rollout, self.config, self.groups, self.moments)
        stats |= update(self.net, self.optimizer, batch, self.config, self.generator)
        self.env_steps += rollout.rewards.shape[0] * rollout.rewards.shape[1]
        return stats | {"lr": lr} | self._episode_stats(experience)


def make_learner(spec: VecSpec, config: PPOConfig, seed: int, device: Any = "cpu") -> PPOLearner:
    """A PPO-family learner for `spec`."""
    return PPOLearner(spec, config, seed, device)


make_env = learner_env
"""The vector env a worker steps (`marl.envs.vector.learner_env`)."""
