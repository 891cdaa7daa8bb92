"""The off-policy actor-critic config and the presets that make it DDPG, TD3, SAC and their
team forms MADDPG, MATD3 and MASAC."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from marl.core.config import check_fields

Algorithm = Literal["ddpg", "td3", "sac"]
CriticInput = Literal["local", "central"]


@dataclass(frozen=True)
class ActorCriticConfig:
    """Settings of the off-policy actor-critic learner (DDPG / TD3 / SAC and MA forms)."""

    algorithm: Algorithm = "td3"
    """ddpg: deterministic actor, one critic; td3: twin critics, target smoothing, delayed
    actor; sac: squashed-Gaussian actor with an entropy temperature."""
    critic: CriticInput = "local"
    """local: Q(own obs, own action); central: Q(global state, all agents' actions) per agent
    (MADDPG / MATD3 / MASAC)."""
    share_parameters: bool = True
    """One actor and one critic per team (agent id one-hot appended) instead of per agent."""
    hidden: tuple[int, ...] = (256, 256)
    """Hidden widths of the actor and critic MLPs (ReLU)."""
    actor_lr: float = 1e-3
    """Adam learning rate of the actor."""
    critic_lr: float = 1e-3
    """Adam learning rate of the critics."""
    gamma: float = 0.99
    """Discount factor."""
    tau: float = 0.005
    """Polyak rate of the target networks per target update."""
    num_envs: int = 1
    """Environments stepped together (B)."""
    backend: str = "auto"
    """Vector-env backend passed to marl.make_vec (auto, sync, process, batched, compiled);
    auto is the batched torch MPE for mpe/ ids whose kwargs it takes, else sync; compiled
    is the batched MPE stepped through torch.compile."""
    rollout_steps: int = 50
    """Vector steps per iteration (each is num_envs env steps)."""
    updates_per_step: float = 1.0
    """Gradient updates per env step once learning has started (update-to-data ratio)."""
    batch_size: int = 256
    """Transitions per gradient update."""
    buffer_size: int = 1_000_000
    """Replay capacity in transitions."""
    learning_starts: int = 1000
    """Env steps acted uniformly at random before the first update."""
    exploration_noise: float = 0.1
    """DDPG/TD3 Box actions: std of the Gaussian acting noise, in half-ranges of the Box."""
    policy_noise: float = 0.2
    """TD3: std of the target-policy smoothing noise, in half-ranges of the Box."""
    noise_clip: float = 0.5
    """TD3: the smoothing noise is clipped to +-noise_clip."""
    policy_delay: int = 2
    """Critic updates per actor (and target) update: 2 for TD3, 1 for DDPG and SAC."""
    alpha: float = 0.2
    """SAC: the initial entropy temperature (fixed when autotune is off)."""
    autotune: bool = True
    """SAC: learn the temperature against the target entropy."""
    target_entropy_scale: float = 1.0
    """SAC target entropy: -scale * action dims (Box), or scale * 0.5 * log(A) (discrete)."""
    gumbel_temperature: float = 1.0
    """Discrete actions: temperature of the straight-through Gumbel-softmax relaxation."""
    max_grad_norm: float = 10.0
    """Gradient-norm clip of actor and critic updates (0 disables it)."""

    def validate(self) -> None:
        """Raise ConfigError naming the first out-of-range setting."""
        checks = [
            ("algorithm", self.algorithm in ("ddpg", "td3", "sac"), "ddpg|td3|sac"),
            ("critic", self.critic in ("local", "central"), "local|central"),
            ("hidden", len(self.hidden) > 0 and min(self.hidden) > 0, "positive sizes"),
            ("actor_lr", self.actor_lr > 0, "> 0"),
            ("critic_lr", self.critic_lr > 0, "> 0"),
            ("gamma", 0 <= self.gamma <= 1, "in [0, 1]"),
            ("tau", 0 < self.tau <= 1, "in (0, 1]"),
            ("num_envs", self.num_envs >= 1, ">= 1"),
            ("rollout_steps", self.rollout_steps >= 1, ">= 1"),
            ("updates_per_step", self.updates_per_step > 0, "> 0"),
            ("batch_size", self.batch_size >= 1, ">= 1"),
            ("buffer_size", self.buffer_size >= self.batch_size, ">= batch_size"),
            ("learning_starts", self.learning_starts >= 0, ">= 0"),
            ("exploration_noise", self.exploration_noise >= 0, ">= 0"),
            ("policy_noise", self.policy_noise >= 0, ">= 0"),
            ("noise_clip", self.noise_clip >= 0, ">= 0"),
            ("policy_delay", self.policy_delay >= 1, ">= 1"),
            ("alpha", self.alpha >= 0, ">= 0"),
            ("gumbel_temperature", self.gumbel_temperature > 0, "> 0"),
            ("max_grad_norm", self.max_grad_norm >= 0, ">= 0"),
        ]
        check_fields(self, checks)

    @property
    def twin_critics(self) -> bool:
        """TD3 and SAC learn two critics and bootstrap from the smaller target."""
        return self.algorithm != "ddpg"


CONFIG = ActorCriticConfig
ALGOS: dict[str, dict[str, Any]] = {
    "ddpg": dict(algorithm="ddpg", critic="local", policy_delay=1),
    "td3": dict(algorithm="td3", critic="local", policy_delay=2),
    "sac": dict(algorithm="sac", critic="local", policy_delay=1),
    "maddpg": dict(algorithm="ddpg", critic="central", policy_delay=1),
    "matd3": dict(algorithm="td3", critic="central", policy_delay=2),
    "masac": dict(algorithm="sac", critic="central", policy_delay=1),
}
"""Preset overrides per algorithm name; `marl train <algo>` starts from these."""
