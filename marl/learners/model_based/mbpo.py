"""MBPO (Janner et al. 2019): SAC trained on short rollouts of a learned dynamics ensemble.

The learner IS the off-policy actor-critic learner (`ActorCriticLearner`, SAC preset) with
three additions:

- every `model_train_every` real env steps, the `GaussianEnsemble` is refit on the real
  replay (`fit_ensemble`: bootstrap per member, held-out elites);
- after every collection, `rollout_batch` real states start branched rollouts of length k
  under the current (exploring) actor; k grows linearly with the real env steps
  (`rollout_schedule` = (from step, to step, k at start, k at end), MBPO's schedule);
  the model transitions go to a FIFO model replay;
- every SAC update samples `real_ratio` of its batch from the real replay and the rest
  from the model replay.

Rewards are PREDICTED: the ensemble's last output is the reward of the step. Termination is
GIVEN: a known rule per env id (`TERMINATIONS`; Pendulum never terminates, its episodes
are only truncated at 200 steps), or `termination="never"` for any env where that holds.
One agent with Box actions only (gymnasium control tasks); a team is refused.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor

from marl.core.checkpoint import load_optimizer
from marl.core.config import ConfigError, check_fields
from marl.core.seeding import INIT, child_seed, seeded_init, torch_generator
from marl.core.spec import VecSpec
from marl.envs.vector import learner_env
from marl.learners.actor_critic.config import ActorCriticConfig
from marl.learners.actor_critic.learner import ActorCriticLearner, batch_of, replay_fields
from marl.learners.actor_critic.loss import Batch
from marl.learners.model_based.ensemble import GaussianEnsemble, fit_ensemble
from marl.learners.value.replay import ReplayBuffer

Termination = Callable[[Tensor], Tensor]
"""next_obs [B, O] -> terminated [B] bool."""


def never(next_obs: Tensor) -> Tensor:
    """Episodes that only end by truncation (Pendulum)."""
    return torch.zeros(len(next_obs), dtype=torch.bool, device=next_obs.device)


def mountain_car_goal(next_obs: Tensor) -> Tensor:
    """MountainCarContinuous terminates when the car's position reaches 0.45."""
    return next_obs[:, 0] >= 0.45


TERMINATIONS: dict[str, Termination] = {
    "gym/Pendulum-v1": never,
    "gym/MountainCarContinuous-v0": mountain_car_goal,
}
"""Known termination rules of env ids (`termination="auto"` looks the env up here)."""


@dataclass(frozen=True)
class MBPOConfig(ActorCriticConfig):
    """The SAC learner's settings plus the dynamics ensemble and the model rollouts."""

    ensemble_size: int = 7
    """Members of the dynamics ensemble."""
    elites: int = 5
    """Members with the smallest held-out error that make the predictions."""
    model_hidden: tuple[int, ...] = (200, 200, 200)
    """Hidden widths of each member's MLP (SiLU)."""
    model_lr: float = 1e-3
    """Adam learning rate of the ensemble."""
    model_weight_decay: float = 5e-5
    """L2 weight decay of the ensemble."""
    model_train_every: int = 250
    """Real env steps between refits of the ensemble."""
    model_train_steps: int = 200
    """Minibatch steps of one refit (each member on its own bootstrap)."""
    model_batch_size: int = 256
    """Transitions per member per minibatch step."""
    holdout: float = 0.1
    """Share of the real data held out to rank the members (elites)."""
    rollout_batch: int = 400
    """Real states that start branched model rollouts after each collection."""
    rollout_schedule: tuple[int, int, int, int] = (1000, 4000, 1, 5)
    """(from env step, to env step, k at start, k at end): the rollout length k grows
    linearly between the two env steps."""
    model_buffer_size: int = 40_000
    """Capacity of the model replay (FIFO)."""
    real_ratio: float = 0.05
    """Share of each SAC batch drawn from real transitions (the rest from model rollouts)."""
    termination: Literal["auto", "never"] = "auto"
    """auto: the env id's known rule (`TERMINATIONS`); never: episodes only truncate."""

    def validate(self) -> None:
        """The actor-critic checks, then the model's."""
        super().validate()
        a, b, k0, k1 = self.rollout_schedule
        checks = [
            ("ensemble_size", self.ensemble_size >= 1, ">= 1"),
            ("elites", 1 <= self.elites <= self.ensemble_size, "in [1, ensemble_size]"),
            (
                "model_hidden",
                len(self.model_hidden) > 0 and min(self.model_hidden) > 0,
                "positive sizes",
            ),  # fmt: skip
            ("model_lr", self.model_lr > 0, "> 0"),
            ("model_weight_decay", self.model_weight_decay >= 0, ">= 0"),
            ("model_train_every", self.model_train_every >= 1, ">= 1"),
            ("model_train_steps", self.model_train_steps >= 1, ">= 1"),
            ("model_batch_size", self.model_batch_size >= 1, ">= 1"),
            ("holdout", 0 < self.holdout < 1, "in (0, 1)"),
            ("rollout_batch", self.rollout_batch >= 1, ">= 1"),
            (
                "rollout_schedule",
                0 <= a <= b and k0 >= 1 and k1 >= 1,
                "(from step <= to step, k at start >= 1, k at end >= 1)",
            ),  # fmt: skip
            ("model_buffer_size", self.model_buffer_size >= 1, ">= 1"),
            ("real_ratio", 0 <= self.real_ratio <= 1, "in [0, 1]"),
            ("termination", self.termination in ("auto", "never"), "auto|never"),
        ]
        check_fields(self, checks)


def rollout_length(schedule: Sequence[int], env_steps: int) -> int:
    """MBPO's k: linear from k0 at env step a to k1 at env step b, constant outside."""
    a, b, k0, k1 = schedule
    frac = 1.0 if b == a else min(max((env_steps - a) / (b - a), 0.0), 1.0)
    return int(k0 + frac * (k1 - k0))


def termination_rule(spec: VecSpec, config: MBPOConfig) -> Termination:
    """The termination function the model rollouts use (clear error when none is known)."""
    if config.termination == "never":
        return never
    rule = TERMINATIONS.get(spec.env_id)
    if rule is None:
        raise ConfigError(
            f"mbpo needs the termination rule of {spec.env_id or 'this env'}; known: "
            f"{', '.join(TERMINATIONS)}. Pass --set termination=never if its episodes only "
            "end by truncation"
        )
    return rule


class MBPOLearner(ActorCriticLearner):
    """SAC on a mix of real and model transitions (a `marl.core.learner.Learner`)."""

    def __init__(self, spec: VecSpec, config: MBPOConfig, seed: int, device: Any = "cpu"):
        if spec.n_agents != 1 or spec.action_dim == 0:
            raise ConfigError(
                f"mbpo learns one agent with Box actions; {spec.env_id or 'this env'} has "
                f"{spec.n_agents} agents and {'Box' if spec.action_dim else 'discrete'} actions"
            )
        super().__init__(spec, config, seed, device)
        self.terminated = termination_rule(spec, config)
        with seeded_init(child_seed(seed, INIT, 1)):
            self.model = GaussianEnsemble(
                spec.obs_dim, self.actor.coding.width, config.ensemble_size, config.elites,
                config.model_hidden, torch_generator(child_seed(seed, INIT, 1)),
            ).to(self.device)  # fmt: skip
        self.model_opt = torch.optim.Adam(
            self.model.parameters(),
            lr=config.model_lr,
            weight_decay=config.model_weight_decay,
            foreach=True,
        )
        self._model_replay: ReplayBuffer | None = None
        self.model_fits = 0

    @property
    def model_replay(self) -> ReplayBuffer:
        """The FIFO of model transitions (allocated when first needed)."""
        if self._model_replay is None:
            fields = replay_fields(self.spec, self.actor.coding.width)
            self._model_replay = ReplayBuffer(fields, self.config.model_buffer_size)
        return self._model_replay

    def learn(self, experience: Sequence[Any]) -> dict[str, float]:
        """SAC's learn on the mixed batches, then refit the model when due and roll it out."""
        stats = super().learn(experience)
        cfg = self.config
        if self.env_steps < cfg.learning_starts or len(self.replay) < 2:
            return stats
        due = self.env_steps // cfg.model_train_every
        if due > self.model_fits or self.model_fits == 0:
            stats |= self.fit_model()
            self.model_fits = max(due, 1)
        return stats | self.rollout()

    def fit_model(self) -> dict[str, float]:
        """Refit the ensemble on every real transition in the replay."""
        cfg, data, size = self.config, self.replay.data, len(self.replay)
        obs, actions = data["obs"][:size, 0], data["actions"][:size, 0]
        inputs = torch.cat([obs, actions], dim=-1).to(self.device)
        delta = data["next_obs"][:size, 0] - obs
        targets = torch.cat([delta, data["returns"][:size, :1]], dim=-1).to(self.device)
        return fit_ensemble(
            self.model, self.model_opt, inputs, targets, cfg.model_train_steps,
            cfg.model_batch_size, cfg.holdout, self.rng,
        )  # fmt: skip

    @torch.no_grad()
    def rollout(self) -> dict[str, float]:
        """Branched rollouts of length k from `rollout_batch` real states into the model
        replay; a rollout stops where the termination rule says its episode ended."""
        cfg = self.config
        k = rollout_length(cfg.rollout_schedule, self.env_steps)
        _, _, start = self.replay.sample(cfg.rollout_batch, self.rng)
        obs = start["obs"][:, 0].to(self.device)
        no_mask = torch.zeros((len(obs), 1, 0), dtype=torch.bool, device=self.device)
        added, rewards = 0, []
        for _ in range(k):
            sampled = self.actor(obs[:, None], no_mask[: len(obs)], self.generator)
            actions = sampled.actions[:, 0]
            step = self.model.sample(obs, actions, self.generator)
            done = self.terminated(step.next_obs)
            self.model_replay.add(self._items(obs, actions, step.next_obs, step.rewards, done))
            added += len(obs)
            rewards.append(step.rewards)
            obs = step.next_obs[~done]
            if not len(obs):
                break
        return {
            "model/rollout_length": float(k),
            "model/rollout_reward": float(torch.cat(rewards).mean()),
            "model/replay_size": float(len(self.model_replay)),
            "model/transitions_added": float(added),
        }

    def _items(self, obs: Tensor, actions: Tensor, next_obs: Tensor, rewards: Tensor,
               done: Tensor) -> dict[str, Tensor]:  # fmt: skip
        """Model steps [B] in the real replay's layout (one agent; state = obs, as gym's)."""
        count = len(obs)
        ones = torch.ones((count, 1), dtype=torch.bool)
        mask = torch.zeros((count, 1, 0), dtype=torch.bool)
        return {
            "obs": obs[:, None].cpu(), "state": obs.cpu(), "action_mask": mask, "alive": ones,
            "actions": actions[:, None].cpu(), "returns": rewards[:, None].cpu(),
            "discount": self.config.gamma * (~done).float().cpu(),
            "next_obs": next_obs[:, None].cpu(), "next_state": next_obs.cpu(),
            "next_action_mask": mask, "next_alive": ones,
        }  # fmt: skip

    def _sample(self) -> Batch:
        """`real_ratio` of the batch from real transitions, the rest from model ones (all
        real until the model has rolled out)."""
        cfg = self.config
        model = 0 if self._model_replay is None or not len(self.model_replay) else (
            cfg.batch_size - round(cfg.batch_size * cfg.real_ratio))  # fmt: skip
        _, _, items = self.replay.sample(cfg.batch_size - model, self.rng)
        if model:
            _, _, fake = self.model_replay.sample(model, self.rng)
            items = {key: torch.cat([value, fake[key]]) for key, value in items.items()}
        return batch_of(items, self.device)

    def state_dict(self) -> dict[str, Any]:
        """SAC's state plus the ensemble, its optimizer and the model replay."""
        return super().state_dict() | {
            "model": self.model.state_dict(),
            "model_opt": self.model_opt.state_dict(),
            "model_replay": self.model_replay.state_dict(),
            "model_fits": self.model_fits,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore `state_dict()`'s output."""
        super().load_state_dict(state)
        self.model.load_state_dict(state["model"])
        load_optimizer(self.model_opt, copy.deepcopy(state["model_opt"]))
        self.model_replay.load_state_dict(state["model_replay"])
        self.model_fits = int(state["model_fits"])


CONFIG = MBPOConfig
ALGOS: dict[str, dict[str, Any]] = {
    "mbpo": dict(algorithm="sac", critic="local", policy_delay=1, updates_per_step=10.0),
}
"""`marl train mbpo`: SAC with ten updates per real env step, as MBPO's data is cheap."""


def make_learner(spec: VecSpec, config: MBPOConfig, seed: int, device: Any = "cpu") -> MBPOLearner:
    """An MBPO learner for `spec`."""
    return MBPOLearner(spec, config, seed, device)


make_env = learner_env
"""The vector env a worker steps (`marl.envs.vector.learner_env`)."""
