"""The value learner's config and the presets that make it QMIX, VDN, IQL or DQN."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from marl.core.config import ConfigError


@dataclass(frozen=True)
class ValueConfig:
    """Settings of the value-based learner (QMIX / VDN / IQL / DQN are presets of it)."""

    mixer: Literal["qmix", "vdn", "none"] = "qmix"
    """How a team's agent Qs are combined: QMIX hypernetwork, VDN sum, or none (IQL/DQN)."""
    recurrent: bool = True
    """GRU agent network trained on stored episodes; False: MLP trained on transitions."""
    hidden: tuple[int, ...] = (64,)
    """Widths of the agent network's MLP layers (the GRU, if any, has the last width)."""
    agent_id: bool = True
    """Append the agent's one-hot index within its team to its observation."""
    last_action: bool = True
    """Append the agent's previous action one-hot (recurrent only, as in the QMIX paper)."""
    dueling: bool = False
    """Dueling head: Q = V + A - mean(A)."""
    double_q: bool = True
    """Double Q-learning: the online net picks the bootstrap action, the target net values it."""
    mixer_embed: int = 32
    """Width of the QMIX mixing layer."""
    hypernet_hidden: int = 64
    """Hidden width of the QMIX hypernetworks."""
    gamma: float = 0.99
    """Discount factor."""
    n_step: int = 1
    """Rewards summed before bootstrapping (cut at termination and at a segment's end)."""
    lr: float = 5e-4
    """Adam learning rate."""
    max_grad_norm: float = 10.0
    """Gradient-norm clip."""
    loss: Literal["mse", "huber"] = "mse"
    """TD loss: 0.5 * squared error, or Huber (smooth L1, delta 1)."""
    num_envs: int = 8
    """Environments stepped together."""
    backend: Literal["auto", "sync", "process", "batched", "compiled"] = "auto"
    """Vector-env backend passed to marl.make_vec (batched: natively batched MPE; compiled:
    it with its step through torch.compile; auto: batched for mpe/ ids whose kwargs it
    takes, else sync)."""
    rollout_steps: int = 25
    """Vector-env steps per iteration (each is num_envs env steps)."""
    updates_per_iterate: int = 1
    """Gradient updates per iteration once learning has started."""
    batch_size: int = 32
    """Items per gradient update: episode segments (recurrent) or transitions."""
    buffer_size: int = 5000
    """Replay capacity in items: episode segments (recurrent) or transitions."""
    max_seq_len: int = 64
    """Longest stored segment; longer episodes are cut into segments of this many steps."""
    learning_starts: int = 1000
    """Env steps collected before the first update."""
    epsilon_start: float = 1.0
    """Exploration rate at the start."""
    epsilon_end: float = 0.05
    """Exploration rate after annealing."""
    epsilon_anneal_steps: int = 50_000
    """Env steps over which epsilon falls linearly from start to end."""
    target_update_interval: int = 200
    """Updates between hard target-network copies (used when tau is 0)."""
    tau: float = 0.0
    """Polyak rate of the target network per update; 0 means hard copies instead."""
    prioritized: bool = False
    """Proportional prioritized replay (episodes when recurrent, transitions otherwise)."""
    per_alpha: float = 0.6
    """Priority exponent alpha (0 is uniform)."""
    per_beta: float = 0.4
    """Initial importance-weight exponent beta, annealed linearly to 1."""
    per_beta_anneal_steps: int = 100_000
    """Env steps over which beta rises to 1."""
    per_eps: float = 1e-6
    """Added to |TD error| (or the C51 cross-entropy) so that no priority is 0."""
    distributional: bool = False
    """C51 head: a categorical return distribution per action, trained by cross-entropy to
    the projected n-step target (`loss` is then unused); independent learners only."""
    v_min: float = -10.0
    """Smallest return on the C51 support."""
    v_max: float = 10.0
    """Largest return on the C51 support."""
    atoms: int = 51
    """Number of atoms of the C51 support."""
    noisy: bool = False
    """Factorized noisy linear layers explore instead of epsilon (needs epsilon_start = 0
    and epsilon_end = 0); greedy evaluation uses the mean weights."""
    noisy_sigma0: float = 0.5
    """Initial noise scale sigma_0 of the noisy layers (sigma = sigma_0 / sqrt(fan-in))."""

    def validate(self) -> None:
        """Refuse inconsistent settings with a message naming the fix."""
        positive = (
            "n_step",
            "num_envs",
            "rollout_steps",
            "batch_size",
            "buffer_size",
            "max_seq_len",
            "target_update_interval",
            "updates_per_iterate",
            "mixer_embed",
            "hypernet_hidden",
        )
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"ValueConfig.{name}={getattr(self, name)}: must be >= 1")
        if not self.hidden or min(self.hidden) < 1:
            raise ConfigError(f"ValueConfig.hidden={self.hidden}: need >= 1 positive width")
        for name in ("gamma", "tau", "epsilon_start", "epsilon_end", "per_alpha", "per_beta"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"ValueConfig.{name}={getattr(self, name)}: must lie in [0, 1]")
        if self.last_action and not self.recurrent:
            raise ConfigError(
                "ValueConfig.last_action=True needs recurrent=True (a feed-forward net trains on "
                "transitions that do not store the previous action); set last_action=False"
            )
        if self.lr <= 0 or self.max_grad_norm <= 0:
            raise ConfigError("ValueConfig.lr and max_grad_norm must be > 0")
        self._validate_rainbow_parts()

    def _validate_rainbow_parts(self) -> None:
        """The C51 and noisy-net settings."""
        if self.distributional and self.mixer != "none":
            raise ConfigError(
                f"ValueConfig.distributional=True with mixer={self.mixer!r}: QMIX and VDN mix "
                "expected Q-values, not return distributions; use mixer='none' (IQL/DQN) or "
                "distributional=False"
            )
        if self.atoms < 2:
            raise ConfigError(f"ValueConfig.atoms={self.atoms}: must be >= 2")
        if not self.v_min < self.v_max:
            raise ConfigError(
                f"ValueConfig.v_min={self.v_min} must be below ValueConfig.v_max={self.v_max}"
            )
        if self.noisy and (self.epsilon_start > 0 or self.epsilon_end > 0):
            raise ConfigError(
                "ValueConfig.noisy=True explores by weight noise, not epsilon: set "
                f"epsilon_start=0 and epsilon_end=0 (got {self.epsilon_start}, {self.epsilon_end})"
            )
        if self.noisy_sigma0 <= 0:
            raise ConfigError(f"ValueConfig.noisy_sigma0={self.noisy_sigma0}: must be > 0")


DQN: dict[str, Any] = dict(  # tuned on gym/CartPole-v1 (greedy return 500 after ~20k steps)
    mixer="none",
    recurrent=False,
    last_action=False,
    agent_id=False,
    hidden=(256, 256),
    dueling=True,
    double_q=True,
    n_step=3,
    loss="huber",
    lr=2.3e-3,
    num_envs=8,
    rollout_steps=32,
    updates_per_iterate=64,
    batch_size=64,
    buffer_size=50_000,
    learning_starts=1000,
    epsilon_end=0.02,
    epsilon_anneal_steps=10_000,
    target_update_interval=64,
)
C51: dict[str, Any] = DQN | dict(distributional=True, v_min=-100.0, v_max=100.0, atoms=101)
"""DQN with a C51 head; the support spans the returns of gamma = 0.99 and rewards in [-1, 1]."""
RAINBOW: dict[str, Any] = C51 | dict(
    noisy=True,
    epsilon_start=0.0,
    epsilon_end=0.0,
    prioritized=True,
    per_alpha=0.5,
    per_beta=0.4,
    per_beta_anneal_steps=100_000,
)
"""Double + dueling + 3-step + prioritized + C51 + noisy nets (Hessel et al. 2018)."""

ALGOS: dict[str, dict[str, Any]] = {
    "qmix": dict(mixer="qmix"),
    "vdn": dict(mixer="vdn"),
    "iql": dict(mixer="none"),
    "dqn": DQN,
    "c51": C51,
    "rainbow": RAINBOW,
    "iql_rainbow": RAINBOW | dict(agent_id=True),  # N independent agents sharing one net
}
"""Preset overrides per algorithm name; `marl train <algo>` starts from these."""
