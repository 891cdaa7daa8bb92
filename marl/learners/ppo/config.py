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
    gradients: Literal["analytic", "autograd"] = "analytic"
    """How a minibatch's gradient is computed: analytic = written out for feedforward tanh
    MLPs with discrete actions, `--seeds` too (the same gradient to float32 rounding; one
    seed's step at 0.75x autograd's cost; recurrent or continuous actors use autograd
    anyway), autograd = torch's autograd (what runs before this option was added did, to
    the bit)."""
    backend: str = "auto"
    """Vector-env backend passed to marl.make_vec (auto, sync, process, batched, compiled);
    auto is the batched torch MPE for mpe/ ids whose kwargs it takes, else sync; compiled
    is the batched MPE stepped through torch.compile."""

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
            ("gradients", self.gradients in ("analytic", "autograd"), "analytic|autograd"),
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


@dataclass(frozen=True)
class OnPolicyConfig:
    """Settings REINFORCE, A2C and TRPO share with each other (and, by name, with PPO)."""

    share_parameters: bool = True
    """One network per team (agent id one-hot appended) instead of one per agent."""
    critic: CriticInput = "local"
    """Critic input: local = own obs, state = global state (MAA2C, MATRPO), state+agent."""
    num_envs: int = 8
    """Parallel envs stepped together (B)."""
    lr: float = 1e-3
    """Learning rate of the gradient steps (TRPO: of the value function only)."""
    anneal_lr: bool = False
    """Decay the learning rate linearly to 0 at `total_steps` env steps."""
    total_steps: int = 1_000_000
    """Env-step budget of the run (the training loop sets it); used for LR annealing."""
    gamma: float = 0.99
    """Discount factor."""
    max_grad_norm: float = 0.5
    """Global gradient-norm clip of each gradient step."""
    normalize_advantages: bool = True
    """Standardize advantages over the batch's alive agents before the policy step."""
    hidden: tuple[int, ...] = (64, 64)
    """Hidden layer sizes of actor and critic MLPs."""
    backend: str = "auto"
    """Vector-env backend passed to marl.make_vec (auto, sync, process, batched, compiled);
    auto is the batched torch MPE for mpe/ ids whose kwargs it takes, else sync; compiled
    is the batched MPE stepped through torch.compile."""

    def _checks(self) -> list[tuple[str, bool, str]]:
        return [
            ("num_envs", self.num_envs >= 1, ">= 1"),
            ("lr", self.lr > 0, "> 0"),
            ("total_steps", self.total_steps > 0 or not self.anneal_lr, "> 0 with anneal_lr"),
            ("gamma", 0 <= self.gamma <= 1, "in [0, 1]"),
            ("max_grad_norm", self.max_grad_norm > 0, "> 0"),
            ("hidden", len(self.hidden) > 0 and min(self.hidden) > 0, "positive sizes"),
            ("critic", self.critic in ("local", "state", "state+agent"), "local|state|state+agent"),
        ]

    def validate(self) -> None:
        """Raise ConfigError naming the first out-of-range hyperparameter."""
        check_fields(self, self._checks())


@dataclass(frozen=True)
class ReinforceConfig(OnPolicyConfig):
    """REINFORCE: Monte-Carlo returns of whole episodes, one gradient step per batch.

    A batch: every env starts a fresh episode and steps (in lockstep) until each env has
    finished `episodes_per_env` episodes; the steps of each env after its last finished
    episode are dropped (still counted as env steps). Nothing is bootstrapped except at a
    time-limit truncation with `baseline = "value"`.
    """

    baseline: Literal["none", "value"] = "value"
    """none: advantages are the returns; value: returns minus a learned V(s)."""
    vf_coef: float = 0.5
    """Weight of the baseline's value loss (baseline = value)."""
    ent_coef: float = 0.0
    """Weight of the entropy bonus."""
    episodes_per_env: int = 1
    """Whole episodes each env must finish before the batch is learned from."""
    max_rollout_len: int = 10_000
    """Most steps a batch may take: an env still short of its episodes then is an error."""

    def validate(self) -> None:
        """Raise ConfigError naming the first out-of-range hyperparameter."""
        check_fields(self, self._checks() + [
            ("baseline", self.baseline in ("none", "value"), "none|value"),
            ("vf_coef", self.vf_coef >= 0, ">= 0"),
            ("ent_coef", self.ent_coef >= 0, ">= 0"),
            ("episodes_per_env", self.episodes_per_env >= 1, ">= 1"),
            ("max_rollout_len", self.max_rollout_len >= 1, ">= 1"),
        ])  # fmt: skip


@dataclass(frozen=True)
class A2CConfig(OnPolicyConfig):
    """A2C: synchronous advantage actor-critic, one gradient step per `rollout_len` steps."""

    num_envs: int = 16
    """Parallel envs stepped together (B)."""
    rollout_len: int = 5
    """Steps collected from each env per update (n of the n-step return)."""
    gae_lambda: float = 1.0
    """1 = n-step returns bootstrapped after `rollout_len` steps; < 1 = GAE(lambda)."""
    lr: float = 7e-4
    """Learning rate."""
    optimizer: Literal["rmsprop", "adam"] = "rmsprop"
    """rmsprop (alpha 0.99, eps 1e-5, as in A2C/A3C) or adam (eps 1e-5)."""
    vf_coef: float = 0.5
    """Weight of the value loss."""
    ent_coef: float = 0.01
    """Weight of the entropy bonus."""
    normalize_advantages: bool = False
    """Standardize advantages over the batch's alive agents before the policy step."""
    value_norm: Literal["none", "running"] = "none"
    """running: the critic predicts returns standardized by their running mean/std."""

    def validate(self) -> None:
        """Raise ConfigError naming the first out-of-range hyperparameter."""
        check_fields(self, self._checks() + [
            ("rollout_len", self.rollout_len >= 1, ">= 1"),
            ("gae_lambda", 0 <= self.gae_lambda <= 1, "in [0, 1]"),
            ("optimizer", self.optimizer in ("rmsprop", "adam"), "rmsprop|adam"),
            ("vf_coef", self.vf_coef >= 0, ">= 0"),
            ("ent_coef", self.ent_coef >= 0, ">= 0"),
            ("value_norm", self.value_norm in ("none", "running"), "none|running"),
        ])  # fmt: skip


@dataclass(frozen=True)
class TRPOConfig(OnPolicyConfig):
    """TRPO: a natural-gradient policy step under a KL limit, a value function by regression."""

    rollout_len: int = 256
    """Steps collected from each env per iteration (T)."""
    gae_lambda: float = 0.95
    """GAE lambda of the advantages and value targets."""
    max_kl: float = 0.01
    """Largest mean KL(old || new) a policy step may take."""
    cg_iters: int = 10
    """Conjugate-gradient iterations for the step direction F^-1 g."""
    cg_damping: float = 0.1
    """Added to the Fisher matrix's diagonal (F + damping I) for a stable solve."""
    line_search_steps: int = 10
    """Step fractions tried (1, shrink, shrink^2...) before the policy is left unchanged."""
    line_search_shrink: float = 0.8
    """Factor by which the line search shrinks a rejected step."""
    value_epochs: int = 10
    """Passes of minibatch regression of the value function over each batch."""
    minibatches: int = 8
    """Minibatches per value epoch."""
    value_norm: Literal["none", "running"] = "none"
    """running: the critic predicts returns standardized by their running mean/std."""

    def validate(self) -> None:
        """Raise ConfigError naming the first out-of-range hyperparameter."""
        batch = self.num_envs * self.rollout_len
        check_fields(self, self._checks() + [
            ("rollout_len", self.rollout_len >= 1, ">= 1"),
            ("gae_lambda", 0 <= self.gae_lambda <= 1, "in [0, 1]"),
            ("max_kl", self.max_kl > 0, "> 0 (the KL limit of a policy step)"),
            ("cg_iters", self.cg_iters >= 1, ">= 1"),
            ("cg_damping", self.cg_damping >= 0, ">= 0"),
            ("line_search_steps", self.line_search_steps >= 1, ">= 1"),
            ("line_search_shrink", 0 < self.line_search_shrink < 1, "in (0, 1)"),
            ("value_epochs", self.value_epochs >= 1, ">= 1"),
            ("minibatches", 1 <= self.minibatches <= batch, f"in [1, {batch}]"),
            ("value_norm", self.value_norm in ("none", "running"), "none|running"),
        ])  # fmt: skip


@dataclass(frozen=True)
class IMPALAConfig(A2CConfig):
    """IMPALA: actors a bounded number of updates behind, V-trace-corrected targets."""

    num_envs: int = 8
    """Parallel envs stepped together (B), split over the actors."""
    rollout_len: int = 32
    """Steps of each env in one rollout (an actor's unit of work)."""
    optimizer: Literal["rmsprop", "adam"] = "adam"
    """rmsprop (alpha 0.99, eps 1e-5) or adam (eps 1e-5)."""
    lr: float = 1e-3
    """Learning rate."""
    max_lag: int = 4
    """Most updates a rollout's acting weights may lag the learner's; older rollouts are
    dropped. The in-process actor acts exactly this far behind (after the first updates)."""
    vtrace: bool = True
    """Correct the targets with V-trace; False: the uncorrected policy gradient (rho = c = 1)."""
    rho_bar: float = 1.0
    """Clip of the importance weights of the TD errors and the policy gradient (rho bar)."""
    c_bar: float = 1.0
    """Clip of the importance weights that carry the trace back (c bar)."""

    def validate(self) -> None:
        """Raise ConfigError naming the first out-of-range hyperparameter."""
        super().validate()
        check_fields(self, [
            ("max_lag", self.max_lag >= 1, ">= 1 (the queue holds max_lag rollouts)"),
            ("rho_bar", self.rho_bar > 0, "> 0"),
            ("c_bar", 0 < self.c_bar <= self.rho_bar, f"in (0, rho_bar={self.rho_bar}]"),
        ])  # fmt: skip


@dataclass(frozen=True)
class A3CConfig(A2CConfig):
    """A3C: actors compute gradients on their own rollouts; the learner applies them."""

    max_lag: int = 2
    """Most updates a gradient's weights may lag the learner's; staler ones are dropped."""

    def validate(self) -> None:
        """Raise ConfigError naming the first out-of-range hyperparameter."""
        super().validate()
        check_fields(self, [
            ("max_lag", self.max_lag >= 1, ">= 1"),
            ("value_norm", self.value_norm == "none",
             "'none' (an actor's gradient cannot see the learner's running moments)"),
        ])  # fmt: skip
