"""The PPO family's settings: PPO, IPPO and MAPPO are one config with two switches."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from marl.core.config import check_fields
from marl.learners.ppo.nets import CriticInput


@dataclass(frozen=True)
class PPOConfig:
    """Hyperparameters of the PPO family (PPO, IPPO, MAPPO)."""

    share_parameters: bool = True
    """One network per team (agent id one-hot appended) instead of one per agent."""
    critic: CriticInput = "local"
    """Critic input: local = own obs (IPPO), state = global state (MAPPO), state+agent."""
    num_envs: int = 8
    """Parallel envs stepped together (B)."""
    rollout_len: int = 128
    """Steps collected from each env per iteration (T); an iteration uses B*T env steps."""
    epochs: int = 4
    """Passes over each rollout."""
    minibatches: int = 4
    """Minibatches per epoch (split over env sequences when recurrent)."""
    lr: float = 3e-4
    """Adam learning rate."""
    anneal_lr: bool = True
    """Decay the learning rate linearly to 0 at `total_steps` env steps."""
    total_steps: int = 1_000_000
    """Env-step budget of the run (the training loop sets it); used for LR annealing."""
    gamma: float = 0.99
    """Discount factor."""
    gae_lambda: float = 0.95
    """GAE lambda (0 = one-step TD, 1 = Monte Carlo)."""
    clip: float = 0.2
    """PPO ratio clip; also the value clip range when `clip_value_loss`."""
    clip_value_loss: bool = True
    """Clip the value update around the rollout's values (PPO2 style)."""
    vf_coef: float = 0.5
    """Weight of the value loss."""
    ent_coef: float = 0.01
    """Weight of the entropy bonus."""
    max_grad_norm: float = 0.5
    """Global gradient-norm clip."""
    normalize_advantages: bool = True
    """Standardize advantages within each minibatch (over alive agents)."""
    value_norm: Literal["none", "running"] = "none"
    """running: the critic predicts returns standardized by their running mean/std."""
    hidden: tuple[int, ...] = (64, 64)
    """Hidden layer sizes of actor and critic MLPs (the GRU has the last size)."""
    recurrent: bool = False
    """GRU actor (the critic stays feedforward); minibatches are whole env sequences."""
    backend: str = "sync"
    """Vector-env backend passed to marl.make_vec (sync, process, batched)."""

    def validate(self) -> None:
        """Raise ConfigError naming the first out-of-range hyperparameter."""
        batch = self.num_envs if self.recurrent else self.num_envs * self.rollout_len
        checks = [
            ("num_envs", self.num_envs >= 1, ">= 1"),
            ("rollout_len", self.rollout_len >= 1, ">= 1"),
            ("epochs", self.epochs >= 1, ">= 1"),
            ("minibatches", 1 <= self.minibatches <= batch, f"in [1, {batch}]"),
            ("lr", self.lr > 0, "> 0"),
            ("total_steps", self.total_steps > 0 or not self.anneal_lr, "> 0 with anneal_lr"),
            ("gamma", 0 <= self.gamma <= 1, "in [0, 1]"),
            ("gae_lambda", 0 <= self.gae_lambda <= 1, "in [0, 1]"),
            ("clip", self.clip > 0, "> 0"),
            ("vf_coef", self.vf_coef >= 0, ">= 0"),
            ("ent_coef", self.ent_coef >= 0, ">= 0"),
            ("max_grad_norm", self.max_grad_norm > 0, "> 0"),
            ("hidden", len(self.hidden) > 0 and min(self.hidden) > 0, "positive sizes"),
            ("critic", self.critic in ("local", "state", "state+agent"), "local|state|state+agent"),
            ("value_norm", self.value_norm in ("none", "running"), "none|running"),
        ]
        check_fields(self, checks)


CONFIG = PPOConfig
ALGOS: dict[str, dict[str, Any]] = {
    "ppo": dict(critic="local"),
    "ippo": dict(critic="local"),
    # state+agent: with per-agent rewards a critic of the state alone gives every agent one
    # V(s); on spread (3 seeds, 2M steps) it reached -11.97 +- 0.54 against -12.54 +- 0.91
    # for the state alone (benchmarks/mappo_critic.py)
    "mappo": dict(critic="state+agent", value_norm="running"),
}
