"""PPO for one or many agents: single-agent PPO, IPPO and MAPPO are one learner.

Two switches make the family: `share_parameters` (one network per team, with a one-hot
agent id, or one per agent) and `critic` (own observation = IPPO, global state = MAPPO,
state plus own observation and id). PPO is IPPO with one agent.

The learner: `collect` steps the vector env for `rollout_len` steps; `make_batch` turns the
rollout into advantages and value targets (GAE with correct bootstrapping); `update` runs
`epochs` passes of minibatch SGD on the pure `ppo_loss`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor

from marl.envs.types import VecEnv
from marl.learners import numerics as nx
from marl.learners.nets import ActorPolicy, AgentGroups, CriticInput, MultiAgentActorCritic
from marl.learners.rollout import Batch, Carry, collect, env_seed, make_batch
from marl.run.config import ConfigError, config_to_dict
from marl.run.seeding import torch_generator


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
        for name, ok, want in checks:
            if not ok:
                raise ConfigError(f"PPOConfig.{name}={getattr(self, name)!r}: expected {want}")


CONFIG = PPOConfig
ALGOS: dict[str, dict[str, Any]] = {
    "ppo": dict(critic="local"),
    "ippo": dict(critic="local"),
    "mappo": dict(critic="state", value_norm="running"),
}


def ppo_loss(
    net: MultiAgentActorCritic, batch: Batch, cfg: PPOConfig
) -> tuple[Tensor, dict[str, Tensor]]:
    """Clipped-surrogate policy loss + value loss - entropy bonus, over alive agents."""
    out, _ = net.actor(batch.obs, batch.hidden, batch.starts)
    log_probs, entropy = net.log_prob_entropy(out, batch.action_mask, batch.actions)
    values = net.values(batch.obs, batch.state)
    alive, advantages = batch.alive, batch.advantages
    if cfg.normalize_advantages:
        mean = nx.masked_mean(advantages, alive)
        std = nx.masked_mean((advantages - mean) ** 2, alive).sqrt()
        advantages = (advantages - mean) / (std + 1e-8)
    log_ratio = log_probs - batch.log_probs
    policy_loss = nx.masked_mean(nx.clipped_surrogate(log_ratio, advantages, cfg.clip), alive)
    value_clip = cfg.clip if cfg.clip_value_loss else None
    v_loss = nx.masked_mean(nx.value_loss(values, batch.values, batch.returns, value_clip), alive)
    entropy_mean = nx.masked_mean(entropy, alive)
    loss = policy_loss + cfg.vf_coef * v_loss - cfg.ent_coef * entropy_mean
    with torch.no_grad():
        ratio = log_ratio.exp()
        stats = {
            "loss/policy": policy_loss.detach(),
            "loss/value": v_loss.detach(),
            "entropy": entropy_mean.detach(),
            "approx_kl": nx.masked_mean((ratio - 1) - log_ratio, alive),
            "clip_frac": nx.masked_mean(((ratio - 1).abs() > cfg.clip).float(), alive),
        }
    return loss, stats


def _flatten_time(batch: Batch) -> Batch:
    """[T, B, ...] -> [1, T*B, ...] so feedforward minibatches mix all steps."""
    t, b = batch.starts.shape
    flat = {k: v.reshape(1, t * b, *v.shape[2:]) for k, v in batch._asdict().items()}
    hidden = batch.hidden.new_zeros(t * b, *batch.hidden.shape[1:])
    return Batch(**{**flat, "hidden": hidden})


def update(
    net: MultiAgentActorCritic,
    optimizer: torch.optim.Optimizer,
    batch: Batch,
    cfg: PPOConfig,
    generator: torch.Generator,
) -> dict[str, float]:
    """`epochs` passes of minibatch gradient steps; returns the mean of each loss stat."""
    if not cfg.recurrent:
        batch = _flatten_time(batch)
    num = batch.starts.shape[1]
    totals: dict[str, float] = {}
    steps = 0
    for _ in range(cfg.epochs):
        order = torch.randperm(num, generator=generator, device=generator.device)
        for idx in torch.tensor_split(order, cfg.minibatches):
            minibatch = Batch(
                *(x[idx] if name == "hidden" else x[:, idx] for name, x in batch._asdict().items())
            )
            loss, stats = ppo_loss(net, minibatch, cfg)
            optimizer.zero_grad()
            loss.backward()
            stats["grad_norm"] = torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.max_grad_norm)
            optimizer.step()
            for key, value in stats.items():
                totals[key] = totals.get(key, 0.0) + float(value)
            steps += 1
    return {key: value / steps for key, value in totals.items()}


class PPOLearner:
    """PPO / IPPO / MAPPO on a vector env, following `marl.run.learner.Learner`.

    `state_dict()` also ends the running episodes: the next `iterate` resets the envs with a
    seed derived from (seed, iteration), exactly as a learner resumed from that state does,
    so a resumed run continues bit for bit like the unbroken one (on CPU).
    """

    def __init__(
        self,
        env: VecEnv,
        config: PPOConfig,
        seed: int,
        device: torch.device | str = "cpu",
        env_id: str = "",
    ):
        config.validate()
        if env.num_envs != config.num_envs:
            raise ConfigError(f"env has {env.num_envs} copies but num_envs={config.num_envs}")
        self.env, self.config, self.seed, self.env_id = env, config, seed, env_id
        self.device = torch.device(device)
        n = len(env.agents)
        teams = [list(members) for members in env.teams.values()]
        groups = teams if config.share_parameters else [[i] for i in range(n)]
        self.groups = AgentGroups(groups, n, agent_ids=config.share_parameters)
        self.net = MultiAgentActorCritic(
            self.groups, env.obs_dim, env.state_dim, env.action_spaces, config.hidden,
            config.critic, config.recurrent, torch_generator(seed),
        ).to(self.device)  # fmt: skip
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=config.lr, eps=1e-5)
        self.generator = torch_generator(seed + 1, self.device)
        self.moments = [nx.init_moments() for _ in groups]
        self.env_steps = 0
        self.iteration = 0
        self._carry: Carry | None = None

    def _reset_envs(self) -> Carry:
        step = self.env.reset(seed=env_seed(self.seed, self.iteration))
        b, n = self.config.num_envs, len(self.env.agents)
        return Carry(
            step,
            self.net.initial_hidden(b).to(self.device),
            torch.ones(b, dtype=torch.bool, device=self.device),
            torch.zeros(b, n, device=self.device),
        )

    def _learning_rate(self) -> float:
        cfg = self.config
        if not cfg.anneal_lr:
            return cfg.lr
        return cfg.lr * max(0.0, 1.0 - self.env_steps / cfg.total_steps)

    def iterate(self) -> dict[str, float]:
        """Collect `rollout_len` steps from each env, then run the PPO update."""
        if self._carry is None:
            self._carry = self._reset_envs()
        lr = self._learning_rate()
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        cfg = self.config
        rollout, self._carry, finished = collect(
            self.net, self.env, self._carry, cfg, self.generator
        )
        batch, self.moments, stats = make_batch(rollout, cfg, self.groups, self.moments)
        stats.update(update(self.net, self.optimizer, batch, cfg, self.generator))
        self.env_steps += cfg.num_envs * cfg.rollout_len
        self.iteration += 1
        stats["lr"] = lr
        stats["episodes"] = float(finished.shape[0])
        for team, members in self.env.teams.items():
            per_agent = finished[:, list(members)]
            stats[f"return/{team}"] = float(per_agent.mean()) if len(per_agent) else float("nan")
        return stats

    def state_dict(self) -> dict[str, Any]:
        """Weights, optimizer, value-norm moments, sampling RNG and counters (tensors/plain)."""
        self._carry = None  # the next iterate starts fresh episodes, as a resumed run does
        return {
            "net": self.net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "moments": [list(m) for m in self.moments],
            "generator": self.generator.get_state(),
            "seed": self.seed,
            "env_steps": self.env_steps,
            "iteration": self.iteration,
            "config": config_to_dict(self.config),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore `state_dict()`'s output; the next `iterate` resets the envs."""
        self.net.load_state_dict(state["net"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.moments = [nx.Moments(*m) for m in state["moments"]]
        self.generator.set_state(state["generator"])
        self.seed, self.env_steps = int(state["seed"]), int(state["env_steps"])
        self.iteration = int(state["iteration"])
        self._carry = None

    def policy(self) -> ActorPolicy:
        """The current network as a policy (shares weights with the learner)."""
        return ActorPolicy(self.net, seed=self.seed)


def make_learner(
    env_id: str,
    config: PPOConfig,
    seed: int,
    device: torch.device | str = "cpu",
    env_kwargs: dict[str, Any] | None = None,
) -> PPOLearner:
    """Build the vector env for `env_id` (with `env_kwargs`) and a PPO learner on it."""
    from marl.envs.vector import make_vec

    env = make_vec(env_id, config.num_envs, seed=seed, backend=config.backend, **(env_kwargs or {}))
    return PPOLearner(env, config, seed, device, env_id=env_id)
