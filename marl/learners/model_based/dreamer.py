"""Dreamer: a world model learned from replayed sequences, and an actor and a critic
trained only on trajectories imagined by it (Hafner et al. 2019; V2 2020; V3 2023).

World model (`WorldModel`): an encoder (MLP on vector observations, a 4-layer CNN on 64x64
RGB images), the categorical `RSSM`, and heads on its features: the observation's
reconstruction (symlog-MSE for vectors, MSE summed over pixels for images), the reward
(symlog-MSE) and the continue flag (Bernoulli). Its loss adds DreamerV3's balanced KL with
free bits.

Behaviour: from every posterior state of the replayed batch, the actor imagines `horizon`
steps in the prior. The critic (symlog-MSE on lambda-returns, bootstrapped from a slow EMA
copy) learns the values; the actor (a tanh-squashed Gaussian, as SAC's) maximises the
lambda-returns divided by their 5-95% percentile range (an EMA, at least 1, DreamerV3's
return normalisation) by backpropagating through the frozen world model's dynamics (the
DreamerV1 gradient for continuous actions), plus an entropy bonus. The world model and the
critic are frozen while the actor's loss is formed, so the actor's gradient never changes
them.

One agent with Box actions (gymnasium control tasks); a team is refused. Each of the
`num_envs` envs writes its own stream of the `SequenceReplay`; the acting carry keeps the
latent state, so acting is recurrent exactly as the world model was trained.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from marl.core.checkpoint import load_optimizer
from marl.core.config import ConfigError, check_fields, config_to_dict
from marl.core.learner import (
    cpu_state,
    load_replay_progress,
    mean_returns,
    replay_progress,
)
from marl.core.seeding import INIT, LEARN, child_seed, seeded_init, torch_generator
from marl.core.spec import VecSpec
from marl.envs.types import VecStep
from marl.envs.vector import learner_env
from marl.learners.actor_critic.networks import (
    LOG_STD_MAX,
    LOG_STD_MIN,
    ActionCoding,
    squashed_gaussian,
)
from marl.learners.model_based.rssm import RSSM, State, kl_loss
from marl.learners.model_based.sequences import SequenceReplay, step_fields
from marl.learners.value.collect import as_numpy

IMAGE_SHAPE = (64, 64, 3)


@dataclass(frozen=True)
class DreamerConfig:
    """Settings of the Dreamer learner (sizes chosen for a CPU and Pendulum)."""

    num_envs: int = 1
    """Environments stepped together (B); each writes its own replay stream."""
    backend: str = "sync"
    """Vector-env backend passed to marl.make_vec (sync, process)."""
    rollout_steps: int = 50
    """Vector steps per iteration."""
    learning_starts: int = 1000
    """Env steps acted uniformly at random before the first update."""
    updates_per_step: float = 0.1
    """Updates per env step (each update sees batch_size x seq_len replayed steps)."""
    buffer_size: int = 100_000
    """Replay capacity in steps, over all streams (64x64 pixels: 12 kB a step, 1.2 GB)."""
    batch_size: int = 16
    """Replayed sequences per update."""
    seq_len: int = 32
    """Steps per replayed sequence."""
    deter: int = 128
    """Width of the GRU state h."""
    groups: int = 8
    """Categorical latents in z."""
    classes: int = 8
    """Classes of each categorical latent."""
    hidden: int = 128
    """Width of every MLP layer (encoder, heads, actor, critic)."""
    cnn_depth: int = 16
    """Channels of the first conv layer (pixels): depth, 2x, 4x, 8x."""
    model_lr: float = 6e-4
    """Adam learning rate of the world model."""
    actor_lr: float = 2e-4
    """Adam learning rate of the actor."""
    critic_lr: float = 2e-4
    """Adam learning rate of the critic."""
    max_grad_norm: float = 100.0
    """Gradient-norm clip of every update (0 disables it)."""
    free_nats: float = 1.0
    """Free bits: each KL term is clipped below at this many nats."""
    kl_dyn_scale: float = 0.5
    """Weight of the dynamics KL (trains the prior)."""
    kl_rep_scale: float = 0.1
    """Weight of the representation KL (trains the posterior)."""
    horizon: int = 15
    """Imagined steps per start state."""
    gamma: float = 0.99
    """Discount factor."""
    lam: float = 0.95
    """Lambda of the lambda-returns."""
    entropy: float = 3e-4
    """Weight of the actor's entropy bonus."""
    critic_tau: float = 0.02
    """Polyak rate of the slow critic per update."""
    return_scale_decay: float = 0.99
    """EMA decay of the returns' 5-95% percentile range."""

    def validate(self) -> None:
        """Raise ConfigError naming the first out-of-range setting."""
        checks = [
            ("num_envs", self.num_envs >= 1, ">= 1"),
            ("rollout_steps", self.rollout_steps >= 1, ">= 1"),
            ("learning_starts", self.learning_starts >= 0, ">= 0"),
            ("updates_per_step", self.updates_per_step > 0, "> 0"),
            ("batch_size", self.batch_size >= 1, ">= 1"),
            ("seq_len", self.seq_len >= 2, ">= 2"),
            (
                "buffer_size",
                self.buffer_size >= self.seq_len * self.num_envs,
                ">= seq_len * num_envs",
            ),  # fmt: skip
            ("deter", self.deter >= 1, ">= 1"),
            ("groups", self.groups >= 1, ">= 1"),
            ("classes", self.classes >= 2, ">= 2"),
            ("hidden", self.hidden >= 1, ">= 1"),
            ("cnn_depth", self.cnn_depth >= 1, ">= 1"),
            ("model_lr", self.model_lr > 0, "> 0"),
            ("actor_lr", self.actor_lr > 0, "> 0"),
            ("critic_lr", self.critic_lr > 0, "> 0"),
            ("max_grad_norm", self.max_grad_norm >= 0, ">= 0"),
            ("free_nats", self.free_nats >= 0, ">= 0"),
            ("kl_dyn_scale", self.kl_dyn_scale >= 0, ">= 0"),
            ("kl_rep_scale", self.kl_rep_scale >= 0, ">= 0"),
            ("horizon", self.horizon >= 1, ">= 1"),
            ("gamma", 0 <= self.gamma <= 1, "in [0, 1]"),
            ("lam", 0 <= self.lam <= 1, "in [0, 1]"),
            ("entropy", self.entropy >= 0, ">= 0"),
            ("critic_tau", 0 < self.critic_tau <= 1, "in (0, 1]"),
            ("return_scale_decay", 0 <= self.return_scale_decay < 1, "in [0, 1)"),
        ]
        check_fields(self, checks)


# -- numerics ----------------------------------------------------------------------------
def symlog(x: Tensor) -> Tensor:
    """sign(x) log(1 + |x|): squashes large targets, keeps small ones as they are."""
    return torch.sign(x) * torch.log1p(x.abs())


def symexp(x: Tensor) -> Tensor:
    """The inverse of `symlog`."""
    return torch.sign(x) * torch.expm1(x.abs())


def lambda_returns(rewards: Tensor, values: Tensor, discounts: Tensor, lam: float) -> Tensor:
    """TD(lambda) returns [H, B] of imagined steps: rewards and discounts [H, B] (of the
    step t -> t + 1), values [H + 1, B];
    R_t = r_t + d_t ((1 - lam) v_{t+1} + lam R_{t+1}), with R_H = v_H."""
    out, last = [], values[-1]
    for t in reversed(range(len(rewards))):
        last = rewards[t] + discounts[t] * ((1.0 - lam) * values[t + 1] + lam * last)
        out.append(last)
    return torch.stack(out[::-1])


@contextmanager
def frozen(*modules: nn.Module) -> Iterator[None]:
    """Build a loss through `modules` without giving their parameters a gradient."""
    params = [p for m in modules for p in m.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


# -- networks ----------------------------------------------------------------------------
def mlp(in_dim: int, hidden: int, out_dim: int, layers: int = 2) -> nn.Sequential:
    """`layers` x (Linear, LayerNorm, SiLU), then a linear output."""
    parts: list[nn.Module] = []
    for _ in range(layers):
        parts += [nn.Linear(in_dim, hidden), nn.LayerNorm(hidden), nn.SiLU()]
        in_dim = hidden
    return nn.Sequential(*parts, nn.Linear(in_dim, out_dim))


class ImageEncoder(nn.Module):
    """64x64x3 uint8 images (flat) -> an embedding: four stride-2 convs to 4x4."""

    def __init__(self, depth: int):
        super().__init__()
        chans = [3, depth, 2 * depth, 4 * depth, 8 * depth]
        layers: list[nn.Module] = []
        for a, b in zip(chans, chans[1:]):
            layers += [nn.Conv2d(a, b, 4, 2, 1), nn.SiLU()]
        self.net = nn.Sequential(*layers, nn.Flatten())
        self.out_dim = 8 * depth * 16

    def forward(self, obs: Tensor) -> Tensor:
        """obs [..., 64*64*3] in [0, 255] -> [..., out_dim]."""
        lead = obs.shape[:-1]
        x = obs.reshape(-1, *IMAGE_SHAPE).permute(0, 3, 1, 2).float() / 255.0 - 0.5
        return self.net(x).reshape(*lead, self.out_dim)


class ImageDecoder(nn.Module):
    """Features -> the image's mean (in [-0.5, 0.5] units), flat like the observation."""

    def __init__(self, feature_dim: int, depth: int):
        super().__init__()
        self.depth = depth
        self.inp = nn.Linear(feature_dim, 8 * depth * 16)
        chans = [8 * depth, 4 * depth, 2 * depth, depth]
        layers: list[nn.Module] = []
        for a, b in zip(chans, chans[1:]):
            layers += [nn.ConvTranspose2d(a, b, 4, 2, 1), nn.SiLU()]
        self.net = nn.Sequential(*layers, nn.ConvTranspose2d(depth, 3, 4, 2, 1))

    def forward(self, features: Tensor) -> Tensor:
        """features [..., F] -> [..., 64*64*3]."""
        lead = features.shape[:-1]
        x = self.inp(features).reshape(-1, 8 * self.depth, 4, 4)
        return self.net(x).permute(0, 2, 3, 1).reshape(*lead, -1)


class WorldModel(nn.Module):
    """Encoder, RSSM and the reconstruction, reward and continue heads."""

    def __init__(self, obs_dim: int, action_dim: int, pixels: bool, cfg: DreamerConfig):
        super().__init__()
        self.pixels = pixels
        if pixels:
            self.encoder: nn.Module = ImageEncoder(cfg.cnn_depth)
            embed = self.encoder.out_dim
        else:
            self.encoder, embed = mlp(obs_dim, cfg.hidden, cfg.hidden, 1), cfg.hidden
        self.rssm = RSSM(embed, action_dim, cfg.deter, cfg.groups, cfg.classes, cfg.hidden)
        feat = self.rssm.feature_dim
        self.decoder = ImageDecoder(feat, cfg.cnn_depth) if pixels else mlp(
            feat, cfg.hidden, obs_dim)  # fmt: skip
        self.reward = mlp(feat, cfg.hidden, 1)
        self.cont = mlp(feat, cfg.hidden, 1)

    def embed(self, obs: Tensor) -> Tensor:
        """Observations [..., O] -> embeddings (vectors are symlog-squashed first)."""
        return self.encoder(obs if self.pixels else symlog(obs))

    def recon_loss(self, features: Tensor, obs: Tensor) -> Tensor:
        """Squared error of the reconstruction summed over the observation, per step."""
        target = obs.float() / 255.0 - 0.5 if self.pixels else symlog(obs)
        return ((self.decoder(features) - target) ** 2).sum(-1)


class Actor(nn.Module):
    """A tanh-squashed Gaussian policy on the world model's features."""

    def __init__(self, feature_dim: int, action_dim: int, hidden: int):
        super().__init__()
        self.net = mlp(feature_dim, hidden, 2 * action_dim)

    def forward(self, features: Tensor, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
        """(actions in [-1, 1]^D, log-probs): tanh(mean) and 0 when `generator` is None."""
        mean, raw = self.net(features).chunk(2, dim=-1)
        if generator is None:
            return torch.tanh(mean), torch.zeros(mean.shape[:-1], device=mean.device)
        log_std = LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (torch.tanh(raw) + 1.0)
        noise = torch.randn(mean.shape, generator=generator, device=mean.device)
        return squashed_gaussian(mean, log_std, noise, torch.ones_like(mean))


class Imagined(NamedTuple):
    """An imagined trajectory: features [H + 1, B, F] and the actions' log-probs [H, B]."""

    features: Tensor
    log_probs: Tensor


def imagine(
    model: WorldModel, actor: Actor, start: State, horizon: int, generator: torch.Generator
) -> Imagined:
    """Roll the prior `horizon` steps from `start` [B, ...] with the actor's sampled actions
    (the actor reads detached features; gradients reach it through the dynamics)."""
    state, features, log_probs = start, [start.features], []
    for _ in range(horizon):
        action, log_prob = actor(state.features.detach(), generator)
        state = model.rssm.imagine(state, action, generator)
        features.append(state.features)
        log_probs.append(log_prob)
    return Imagined(torch.stack(features), torch.stack(log_probs))


# -- acting ------------------------------------------------------------------------------
class DreamerPolicy:
    """The world model's filter and the actor as a recurrent policy: each `act` updates the
    posterior with the observation and the previous action; `reset(done)` restarts rows."""

    def __init__(self, model: WorldModel, actor: Actor, coding: ActionCoding, seed: int = 0):
        self.model, self.actor, self.coding = model, actor, coding
        self.device = coding.low.device
        self.generator = torch_generator(seed, self.device)  # a worker's carry replaces it
        self.latent: State | None = None
        self.prev_action: Tensor | None = None
        self.first: Tensor | None = None

    def reset(self, done: Any) -> None:
        """Rows of `done` [B] start a new episode at the next `act`."""
        if self.first is not None:
            self.first |= torch.as_tensor(as_numpy(done), dtype=torch.bool, device=self.device)

    @torch.no_grad()
    def coded(self, obs: Any, *, greedy: bool, uniform: bool = False) -> Tensor:
        """Actions in [-1, 1]^D [B, D] for obs [B, 1, O]; the latent state moves on."""
        obs_t = torch.as_tensor(as_numpy(obs), dtype=torch.float32, device=self.device)[:, 0]
        batch = len(obs_t)
        if self.latent is None or len(self.latent.deter) != batch:
            self.latent = self.model.rssm.initial(batch, self.device)
            self.prev_action = torch.zeros(batch, self.coding.width, device=self.device)
            self.first = torch.ones(batch, dtype=torch.bool, device=self.device)
        sample = None if greedy else self.generator
        embed = self.model.embed(obs_t)
        self.latent, _ = self.model.rssm.observe_step(
            self.latent, self.prev_action, embed, self.first, sample
        )
        if uniform:
            action = 2 * torch.rand(self.prev_action.shape, generator=self.generator,
                                    device=self.device) - 1  # fmt: skip
        else:
            action, _ = self.actor(self.latent.features, sample)
        self.prev_action, self.first = action, torch.zeros_like(self.first)
        return action

    def act(self, obs: Any, action_mask: Any, *, greedy: bool = True) -> np.ndarray:
        """obs [B, 1, O] -> env actions [B, 1, D] (greedy: the posterior's mode, tanh(mean))."""
        coded = self.coded(obs, greedy=greedy)
        return self.coding.to_env(coded[:, None]).cpu().numpy()


class Carry(NamedTuple):
    """A worker's running episodes and the policy's recurrent state."""

    step: VecStep
    generator: torch.Generator
    returns: np.ndarray  # [B, 1]
    arrived: dict[str, np.ndarray]  # prev action [B, D] and reward [B] that led to `step`
    latent: Any  # (State, prev action, first) of the policy, or None before the first act


class Experience(NamedTuple):
    """Steps per env stream (`step_fields` layout), finished returns, env steps."""

    streams: list[dict[str, np.ndarray]]
    finished: np.ndarray  # [episodes, 1]
    env_steps: int


def _records(step: VecStep, arrived: dict[str, np.ndarray], first: np.ndarray) -> dict:
    """The stored steps [B] of the observations in `step`."""
    return {"obs": as_numpy(step.obs)[:, 0], "action": arrived["action"],
            "reward": arrived["reward"], "is_first": first,
            "terminal": np.zeros(len(first), bool)}  # fmt: skip


def collect_sequences(
    policy: DreamerPolicy, env: Any, carry: Carry, steps: int, warm_up: bool
) -> tuple[Experience, Carry]:
    """`steps` vector steps; every observation, and each finished episode's final one, is
    recorded in its env's stream."""
    policy.generator = carry.generator
    if carry.latent is not None:
        policy.latent, policy.prev_action, policy.first = carry.latent
    step, arrived = carry.step, carry.arrived
    streams: list[list[dict]] = [[] for _ in range(env.num_envs)]
    finished = []
    for _ in range(steps):
        first = (policy.first.cpu().numpy() if policy.first is not None
                 else np.ones(env.num_envs, bool))  # fmt: skip
        coded = policy.coded(step.obs, greedy=False, uniform=warm_up)
        record = _records(step, arrived, first)
        nxt = env.step(policy.coding.to_env(coded[:, None]).cpu().numpy())
        action, reward = coded.cpu().numpy(), as_numpy(nxt.reward)[:, 0]
        done = as_numpy(nxt.done).astype(bool)
        carry.returns[:] += as_numpy(nxt.reward)
        for b in range(env.num_envs):
            streams[b].append({k: v[b] for k, v in record.items()})
            if done[b]:
                streams[b].append({"obs": as_numpy(nxt.final_obs)[b, 0], "action": action[b],
                                   "reward": reward[b], "is_first": False,
                                   "terminal": bool(as_numpy(nxt.terminated)[b])})  # fmt: skip
                finished.append(carry.returns[b].copy())
                carry.returns[b] = 0.0
        policy.reset(done)
        keep = ~done[:, None]
        arrived = {"action": action * keep, "reward": reward * keep[:, 0]}
        step = nxt
    stacked = [{k: np.stack([r[k] for r in rows]) for k in rows[0]} for rows in streams]
    rows = np.stack(finished) if finished else np.zeros((0, 1))
    latent = (policy.latent, policy.prev_action, policy.first)
    experience = Experience(stacked, rows, steps * env.num_envs)
    return experience, carry._replace(step=step, arrived=arrived, latent=latent)


# -- the learner -------------------------------------------------------------------------
class DreamerLearner:
    """World model, actor and critic on one `VecSpec` (a `marl.core.learner.Learner`)."""

    def __init__(self, spec: VecSpec, config: DreamerConfig, seed: int, device: Any = "cpu"):
        config.validate()
        if spec.n_agents != 1 or spec.action_dim == 0:
            raise ConfigError(
                f"dreamer learns one agent with Box actions; {spec.env_id or 'this env'} has "
                f"{spec.n_agents} agents and {'Box' if spec.action_dim else 'discrete'} actions"
            )
        self.spec, self.config, self.seed = spec, config, seed
        self.device = torch.device(device)
        self.pixels = tuple(spec.observation_spaces[0].shape) == IMAGE_SHAPE
        coding = ActionCoding(list(spec.action_spaces))
        with seeded_init(child_seed(seed, INIT)):
            self.model = WorldModel(spec.obs_dim, coding.width, self.pixels, config)
            feat = self.model.rssm.feature_dim
            self.actor = Actor(feat, coding.width, config.hidden)
            self.critic = mlp(feat, config.hidden, 1)
        self.coding = coding.to(self.device)
        for module in (self.model, self.actor, self.critic):
            module.to(self.device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.model_opt = torch.optim.Adam(self.model.parameters(), lr=config.model_lr, foreach=True)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=config.actor_lr, foreach=True)
        self.critic_opt = torch.optim.Adam(
            self.critic.parameters(), lr=config.critic_lr, foreach=True
        )
        self.generator = torch_generator(child_seed(seed, LEARN), self.device)
        self.rng = np.random.default_rng(child_seed(seed, LEARN))
        self._replay: SequenceReplay | None = None
        self.env_steps, self.updates, self.owed_updates = 0, 0, 0.0
        self.return_scale = 1.0

    @property
    def replay(self) -> SequenceReplay:
        """The sequence replay (allocated when first needed: acting copies need none)."""
        if self._replay is None:
            cfg = self.config
            fields = step_fields(self.spec.obs_dim, self.coding.width, self.pixels)
            self._replay = SequenceReplay(fields, cfg.num_envs, cfg.buffer_size // cfg.num_envs)
        return self._replay

    # -- acting ---------------------------------------------------------------------------
    def start(self, env: Any, seed: int) -> Carry:
        """Reset `env` with `seed`; fresh latent states; the carry's generator draws."""
        step = env.reset(seed=seed)
        b = env.num_envs
        arrived = {"action": np.zeros((b, self.coding.width), np.float32),
                   "reward": np.zeros(b, np.float32)}  # fmt: skip
        return Carry(step, torch_generator(seed, self.device), np.zeros((b, 1)), arrived, None)

    def collect(self, env: Any, carry: Carry) -> tuple[Experience, Carry]:
        """`rollout_steps` vector steps with the sampling actor (random while warming up)."""
        warm_up = self.env_steps < self.config.learning_starts
        policy = DreamerPolicy(self.model, self.actor, self.coding, self.seed)
        return collect_sequences(policy, env, carry, self.config.rollout_steps, warm_up)

    def weights(self) -> dict[str, Any]:
        """World model and actor weights (CPU) and the env-step count."""
        return {"model": cpu_state(self.model), "actor": cpu_state(self.actor),
                "env_steps": self.env_steps}  # fmt: skip

    def load_weights(self, weights: dict[str, Any]) -> None:
        """Act with the learner's `weights()` from now on."""
        self.model.load_state_dict(weights["model"])
        self.actor.load_state_dict(weights["actor"])
        self.env_steps = int(weights["env_steps"])

    def policy(self) -> DreamerPolicy:
        """The current world model and actor as a recurrent policy."""
        return DreamerPolicy(self.model, self.actor, self.coding, self.seed)

    # -- learning -------------------------------------------------------------------------
    def learn(self, experience: Sequence[Experience]) -> dict[str, float]:
        """Store the workers' sequences, then run the updates due for the new env steps."""
        new_steps = 0
        for part in experience:
            for stream, items in enumerate(part.streams):
                self.replay.add(stream, items)
            new_steps += part.env_steps
        self.env_steps += new_steps
        stats: dict[str, float] = {"replay_size": float(len(self.replay))}
        cfg = self.config
        if self.env_steps >= cfg.learning_starts and self.replay.can_sample(cfg.seq_len):
            self.owed_updates += cfg.updates_per_step * new_steps
            count = int(self.owed_updates)
            self.owed_updates -= count
            updates = [self.update() for _ in range(count)]
            for key in {k for u in updates for k in u}:
                stats[key] = float(np.mean([u[key] for u in updates]))
        finished = np.concatenate([e.finished for e in experience])
        stats["episodes"] = float(len(finished))
        return stats | mean_returns(finished, self.spec.teams)

    def update(self) -> dict[str, float]:
        """One world-model update on replayed sequences, then actor and critic on imagined
        trajectories from its posterior states."""
        cfg = self.config
        batch = {k: v.to(self.device) for k, v in
                 self.replay.sample(cfg.batch_size, cfg.seq_len, self.rng).items()}  # fmt: skip
        batch["is_first"][0] = True  # windows start from the initial state
        loss, posts, stats = self.world_model_loss(batch)
        _step(self.model_opt, loss, self.model, cfg.max_grad_norm)
        start = State(*(x.detach().flatten(0, 1) for x in posts))
        actor_loss, imagined, returns, weights, actor_stats = self.actor_loss(start)
        _step(self.actor_opt, actor_loss, self.actor, cfg.max_grad_norm)
        critic_loss = self.critic_loss(imagined.features.detach(), returns.detach(), weights)
        _step(self.critic_opt, critic_loss, self.critic, cfg.max_grad_norm)
        with torch.no_grad():
            for target, online in zip(self.critic_target.parameters(), self.critic.parameters()):
                target.lerp_(online, cfg.critic_tau)
        self.updates += 1
        return stats | actor_stats | {"critic_loss": float(critic_loss.detach())}

    def world_model_loss(self, batch: dict[str, Tensor]) -> tuple[Tensor, State, dict]:
        """Reconstruction + reward + continue + balanced KL on sequences [T, B, ...]."""
        cfg, model = self.config, self.model
        embeds = model.embed(batch["obs"].float())
        posts, priors = model.rssm.observe(embeds, batch["action"], batch["is_first"],
                                           self.generator)  # fmt: skip
        feats = posts.features
        recon = model.recon_loss(feats, batch["obs"]).mean()
        reward = ((model.reward(feats)[..., 0] - symlog(batch["reward"])) ** 2).mean()
        cont_target = (~batch["terminal"]).float()
        cont = F.binary_cross_entropy_with_logits(model.cont(feats)[..., 0], cont_target)
        kl, raw_kl = kl_loss(posts.logits, priors.logits, cfg.free_nats, cfg.kl_dyn_scale,
                             cfg.kl_rep_scale)  # fmt: skip
        loss = recon + reward + cont + kl
        return loss, posts, {
            "model/loss": float(loss.detach()), "model/recon_loss": float(recon.detach()),
            "model/reward_loss": float(reward.detach()), "model/cont_loss": float(cont.detach()),
            "model/kl": float(raw_kl),
        }  # fmt: skip

    def actor_loss(self, start: State) -> tuple[Tensor, Imagined, Tensor, Tensor, dict]:
        """The actor's loss on trajectories imagined from `start`, with the world model and
        the critics frozen: -(normalised lambda-returns) - entropy bonus. Also returns the
        trajectory, its lambda-returns [H, B] and the weights (cumulative discounts)."""
        cfg = self.config
        with frozen(self.model, self.critic):
            imagined = imagine(self.model, self.actor, start, cfg.horizon, self.generator)
            feats = imagined.features
            rewards = symexp(self.model.reward(feats[1:])[..., 0])
            discounts = cfg.gamma * torch.sigmoid(self.model.cont(feats[1:])[..., 0])
            values = symexp(self.critic_target(feats)[..., 0])
            returns = lambda_returns(rewards, values, discounts, cfg.lam)
        weights = torch.cumprod(torch.cat([torch.ones_like(discounts[:1]), discounts[:-1]]),
                                dim=0).detach()  # fmt: skip
        self._track_scale(returns.detach())
        entropy = -imagined.log_probs.mean()
        objective = (weights * returns).mean() / max(1.0, self.return_scale)
        loss = -objective - cfg.entropy * entropy
        return loss, imagined, returns, weights, {
            "actor_loss": float(loss.detach()), "entropy": float(entropy.detach()),
            "imagined_return": float(returns.detach().mean()),
            "return_scale": self.return_scale,
        }  # fmt: skip

    def critic_loss(self, features: Tensor, returns: Tensor, weights: Tensor) -> Tensor:
        """Symlog-MSE of the critic at the imagined states against their lambda-returns."""
        pred = self.critic(features[:-1])[..., 0]
        return (weights * (pred - symlog(returns)) ** 2).mean()

    def _track_scale(self, returns: Tensor) -> None:
        """EMA of the returns' 5-95% percentile range (DreamerV3: the actor's objective is
        divided by max(1, this EMA), the EMA itself kept unclamped)."""
        low, high = torch.quantile(
            returns.flatten(), torch.tensor([0.05, 0.95], device=returns.device)
        )
        decay = self.config.return_scale_decay
        spread = float(high - low)
        self.return_scale = decay * self.return_scale + (1 - decay) * spread

    # -- checkpoints ----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Networks, optimizers, replay, RNGs and counters (tensors and plain values)."""
        names = ("model", "actor", "critic", "critic_target", "model_opt", "actor_opt",
                 "critic_opt")  # fmt: skip
        return {name: getattr(self, name).state_dict() for name in names} | {
            "replay": self.replay.state_dict(),
            **replay_progress(self),
            "return_scale": self.return_scale,
            "config": config_to_dict(self.config),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore `state_dict()`'s output."""
        for name in ("model", "actor", "critic", "critic_target"):
            getattr(self, name).load_state_dict(state[name])
        for name in ("model_opt", "actor_opt", "critic_opt"):
            load_optimizer(getattr(self, name), copy.deepcopy(state[name]))
        self.replay.load_state_dict(state["replay"])
        load_replay_progress(self, state)
        self.return_scale = float(state["return_scale"])

    def close(self) -> None:
        """Nothing to free."""


def _step(optimizer: torch.optim.Optimizer, loss: Tensor, net: nn.Module, max_norm: float) -> None:
    """Backpropagate `loss`, clip `net`'s gradient norm (if > 0), step."""
    optimizer.zero_grad()
    loss.backward()
    if max_norm > 0:
        nn.utils.clip_grad_norm_(net.parameters(), max_norm, foreach=True)
    optimizer.step()


CONFIG = DreamerConfig
ALGOS: dict[str, dict[str, Any]] = {"dreamer": {}}
"""`marl train dreamer`: the defaults (vector or pixel observations are told by the env)."""


def make_learner(
    spec: VecSpec, config: DreamerConfig, seed: int, device: Any = "cpu"
) -> DreamerLearner:
    """A Dreamer learner for `spec`."""
    return DreamerLearner(spec, config, seed, device)


make_env = learner_env
"""The vector env a worker steps (`marl.envs.vector.learner_env`)."""
