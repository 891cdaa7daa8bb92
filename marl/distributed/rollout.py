"""PPO-family training with K rollout actors and one learner.

Each `RolloutWorker` steps its own share of the vector envs (num_envs / K) with the newest
weights it was sent and runs `marl.learners.rollout.collect`. The learner broadcasts its
weights once per iteration (one `ray.put`), gathers the K rollouts, concatenates them along
the env axis, and runs the same `make_batch` + `update` as the local PPO learner, so both
backends train on the same batch size with the same hyperparameters. Policy lag is 0
(synchronous) or at most 1 (collection overlaps the update; `RayConfig.max_lag`), and is
logged as `policy_lag`. No off-policy correction is applied to lagged batches beyond PPO's
ratio clip; V-trace (Espeholt et al. 2018) is the natural next step for larger lags.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from marl.distributed.ray_backend import RayConfig, incarnation, init_ray, remote_actor
from marl.envs.types import VecEnv
from marl.learners.nets import ActorPolicy
from marl.learners.ppo import PPOConfig, PPOLearner, update
from marl.learners.rollout import Batch, Carry, Rollout, collect, env_seed, make_batch
from marl.run.config import ConfigError
from marl.run.device import set_threads
from marl.run.seeding import torch_generator


@dataclasses.dataclass(frozen=True)
class EnvShape:
    """What building a PPO net needs of a vector env (the learner steps no env itself)."""

    agents: list[str]
    teams: dict[str, list[int]]
    obs_dim: int
    state_dim: int
    action_spaces: list[Any]
    num_envs: int

    @classmethod
    def of(cls, env: VecEnv, num_envs: int) -> EnvShape:
        """The shape of `env`, claiming `num_envs` copies."""
        teams = {team: list(members) for team, members in env.teams.items()}
        return cls(list(env.agents), teams, env.obs_dim, env.state_dim, list(env.action_spaces),
                   num_envs)  # fmt: skip


class RolloutPart(NamedTuple):
    """One worker's rollout of one iteration."""

    rollout: Rollout  # [T, b, ...] with b = this worker's envs
    finished: Tensor  # [episodes, N] per-agent returns of episodes that ended
    version: int  # weights version that collected it
    worker: str  # the worker process (`incarnation()`); changes when Ray restarts it
    seconds: float  # time spent collecting


def worker_seed(seed: int, index: int) -> int:
    """Seed of rollout worker `index` in a run seeded `seed` (distinct per worker)."""
    state = np.random.SeedSequence([seed & 0xFFFFFFFF, 1 + index]).generate_state(1)[0]
    return int(state) % 2**31


def concat_rollouts(parts: Sequence[Rollout]) -> Rollout:
    """Join rollouts of the same length along the env axis (B): [T, b_k, ...] -> [T, sum b, ...]."""
    if len({p.rewards.shape[0] for p in parts}) != 1:
        raise ValueError(f"rollout lengths differ: {[p.rewards.shape[0] for p in parts]}")

    def join(xs: Sequence[Tensor], name: str) -> Tensor:
        env_dim = 0 if name in ("hidden", "last_values") else 1
        return torch.cat(list(xs), dim=env_dim)

    batch = Batch(*(join(xs, n) for n, xs in zip(Batch._fields, zip(*(p.batch for p in parts)))))
    rest = {n: join([getattr(p, n) for p in parts], n) for n in Rollout._fields if n != "batch"}
    return Rollout(batch=batch, **rest)


def _to(rollout: Rollout, device: torch.device) -> Rollout:
    batch = Batch(*(x.to(device) for x in rollout.batch))
    return Rollout(batch, *(x.to(device) for x in rollout[1:]))


class RolloutWorker:
    """Steps `num_envs` envs with the latest weights it was sent (runs as a Ray actor)."""

    def __init__(self, env_id: str, config: PPOConfig, seed: int, index: int,
                 num_envs: int, env_kwargs: dict[str, Any] | None = None):  # fmt: skip
        from marl.envs.vector import make_vec

        set_threads(1)
        self.seed = worker_seed(seed, index)
        cfg = dataclasses.replace(config, num_envs=num_envs)
        self.env = make_vec(env_id, num_envs, seed=self.seed, backend=cfg.backend,
                            **(env_kwargs or {}))  # fmt: skip
        self.config = cfg
        self.net = PPOLearner(self.env, cfg, seed).net  # the learner's architecture, CPU
        self.generator = torch_generator(self.seed + 1)
        self.version = -1
        self.carry: Carry | None = None

    def _fresh_carry(self, iteration: int) -> Carry:
        step = self.env.reset(seed=env_seed(self.seed, iteration))
        b, n = self.config.num_envs, len(self.env.agents)
        starts = torch.ones(b, dtype=torch.bool)
        return Carry(step, self.net.initial_hidden(b), starts, torch.zeros(b, n))

    def collect(self, weights: dict[str, Tensor], version: int, iteration: int,
                reset: bool) -> RolloutPart:  # fmt: skip
        """Load `weights` (if newer), then collect `rollout_len` steps of every env.

        `reset` (or a restarted worker, which has no running episodes) starts fresh episodes
        seeded by (worker seed, iteration), as the local learner does after a checkpoint.
        """
        start = time.perf_counter()
        if version != self.version:
            self.net.load_state_dict(weights)
            self.version = version
        if reset or self.carry is None:
            self.carry = self._fresh_carry(iteration)
        rollout, self.carry, finished = collect(
            self.net, self.env, self.carry, self.config, self.generator
        )
        return RolloutPart(rollout, finished, version, incarnation(), time.perf_counter() - start)


class LocalPool:
    """Rollout workers in this process, called one after another (tests; no Ray)."""

    def __init__(self, workers: Sequence[RolloutWorker]):
        self.workers = list(workers)

    def broadcast(self, weights: dict[str, Tensor]) -> Any:
        """The weights as the workers receive them."""
        return weights

    def submit(self, weights: Any, version: int, iteration: int, reset: bool) -> list[Any]:
        """Start one collection on every worker; returns handles for `gather`."""
        return [w.collect(weights, version, iteration, reset) for w in self.workers]

    def gather(self, handles: list[Any]) -> list[RolloutPart]:
        """The parts the handles stand for, in worker order."""
        return handles

    def close(self) -> None:
        """Nothing to stop."""


class RayPool:
    """Rollout workers as Ray actors (restarted by Ray when lost)."""

    def __init__(self, actors: Sequence[Any]):
        self.actors = list(actors)

    def broadcast(self, weights: dict[str, Tensor]) -> Any:
        """Put the weights in the object store once; every actor reads the same copy."""
        import ray

        return ray.put(weights)

    def submit(self, weights: Any, version: int, iteration: int, reset: bool) -> list[Any]:
        """Start one collection on every actor; returns object refs."""
        return [a.collect.remote(weights, version, iteration, reset) for a in self.actors]

    def gather(self, handles: list[Any]) -> list[RolloutPart]:
        """Wait for every actor's part."""
        import ray

        return ray.get(handles)

    def close(self) -> None:
        """Stop the actors for good."""
        import ray

        for actor in self.actors:
            ray.kill(actor, no_restart=True)


class DistributedPPOLearner:
    """PPO / IPPO / MAPPO whose envs are stepped by a pool of rollout workers (`Learner`).

    Its `state_dict` is a `PPOLearner`'s, so a run trained with Ray can be evaluated, or
    resumed, with the local backend, and the other way round.
    """

    def __init__(self, shape: EnvShape, config: PPOConfig, seed: int, device: Any,
                 pool: LocalPool | RayPool, max_lag: int = 0):  # fmt: skip
        self.core = PPOLearner(shape, config, seed, device)  # type: ignore[arg-type]
        self.config, self.pool, self.max_lag = config, pool, max_lag
        self.version = 0
        self.restarts = 0
        self._workers: list[str] | None = None
        self._pending: tuple[list[Any], float] | None = None
        self._reset_next = True

    @property
    def env_steps(self) -> int:
        """Env steps consumed so far (all workers together)."""
        return self.core.env_steps

    def _submit(self) -> tuple[list[Any], float]:
        start = time.perf_counter()
        weights = {k: v.detach().cpu() for k, v in self.core.net.state_dict().items()}
        ref = self.pool.broadcast(weights)
        broadcast_ms = (time.perf_counter() - start) * 1e3
        handles = self.pool.submit(ref, self.version, self.core.iteration, self._reset_next)
        self._reset_next = False
        return handles, broadcast_ms

    def _collect(self) -> tuple[list[RolloutPart], dict[str, float]]:
        """This iteration's parts; with max_lag 1, also start the next collection."""
        start = time.perf_counter()
        handles, broadcast_ms = self._pending or self._submit()
        parts = self.pool.gather(handles)
        self._pending = self._submit() if self.max_lag == 1 else None
        workers = [p.worker for p in parts]
        if self._workers is not None:
            self.restarts += sum(a != b for a, b in zip(workers, self._workers))
        self._workers = workers
        lag = float(np.mean([self.version - p.version for p in parts]))
        stats = {"policy_lag": lag, "ray/actor_restarts": float(self.restarts),
                 "time/broadcast_ms": broadcast_ms, "time/gather_s": time.perf_counter() - start,
                 "time/collect_s": float(np.mean([p.seconds for p in parts]))}  # fmt: skip
        return parts, stats

    def _learning_rate(self) -> float:
        cfg = self.config
        return (
            cfg.lr * max(0.0, 1.0 - self.env_steps / cfg.total_steps) if cfg.anneal_lr else cfg.lr
        )

    def iterate(self) -> dict[str, float]:
        """Gather the workers' rollouts, update once, and bump the weights version."""
        core, cfg = self.core, self.config
        lr = self._learning_rate()
        for group in core.optimizer.param_groups:
            group["lr"] = lr
        parts, stats = self._collect()
        rollout = _to(concat_rollouts([p.rollout for p in parts]), core.device)
        batch, core.moments, batch_stats = make_batch(rollout, cfg, core.groups, core.moments)
        stats |= batch_stats
        stats |= update(core.net, core.optimizer, batch, cfg, core.generator)
        self.version += 1
        core.env_steps += cfg.num_envs * cfg.rollout_len
        core.iteration += 1
        finished = torch.cat([p.finished for p in parts])
        stats |= {"lr": lr, "episodes": float(finished.shape[0])}
        for team, members in core.env.teams.items():
            per_agent = finished[:, list(members)]
            stats[f"return/{team}"] = float(per_agent.mean()) if len(per_agent) else float("nan")
        return stats

    def state_dict(self) -> dict[str, Any]:
        """The `PPOLearner` state; the next `iterate` starts fresh episodes (as on resume)."""
        self._pending, self._reset_next = None, True
        return self.core.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a `PPOLearner` state (from either backend)."""
        self.core.load_state_dict(state)
        self._pending, self._reset_next = None, True
        self.version += 1  # workers must reload even if they saw an equal version before

    def policy(self) -> ActorPolicy:
        """The learner's current policy."""
        return self.core.policy()

    def close(self) -> None:
        """Let a collection in flight finish (its rollout is dropped), then stop the workers."""
        if self._pending is not None:
            self.pool.gather(self._pending[0])
            self._pending = None
        self.pool.close()


def env_shape(
    env_id: str, config: Any, env_kwargs: dict[str, Any] | None, shape: Any = EnvShape
) -> Any:
    """`shape.of` the spaces of `env_id` (one throwaway env), claiming `config.num_envs` copies."""
    from marl.envs.vector import make_vec

    env = make_vec(env_id, 1, backend=config.backend, **(env_kwargs or {}))
    try:
        return shape.of(env, config.num_envs)
    finally:
        env.close()


def split_envs(num_envs: int, actors: int) -> int:
    """Envs per worker; num_envs must split evenly so both backends train on equal batches."""
    if actors < 1 or num_envs % actors:
        raise ConfigError(
            f"num_envs={num_envs} does not split over {actors} rollout actors; "
            f"use a multiple of {actors} (e.g. num_envs={max(actors, num_envs // actors * actors)})"
        )
    return num_envs // actors


def make_learner(
    env_id: str,
    config: PPOConfig,
    seed: int,
    device: Any,
    env_kwargs: dict[str, Any] | None,
    ray_config: RayConfig,
    pool_factory: Callable[[list[tuple]], LocalPool | RayPool] | None = None,
) -> DistributedPPOLearner:
    """A PPO-family learner whose rollouts run in `ray_config.actors` Ray actors.

    `pool_factory` (worker constructor args -> pool) replaces the Ray actors, e.g. with
    `lambda args: LocalPool([RolloutWorker(*a) for a in args])`.
    """
    config.validate()
    per_worker = split_envs(config.num_envs, ray_config.actors)
    args = [(env_id, config, seed, i, per_worker, env_kwargs) for i in range(ray_config.actors)]
    if pool_factory is None:
        init_ray(ray_config.address)
        actor_class = remote_actor(RolloutWorker, ray_config)
        pool: LocalPool | RayPool = RayPool([actor_class.remote(*a) for a in args])
    else:
        pool = pool_factory(args)
    shape = env_shape(env_id, config, env_kwargs)
    return DistributedPPOLearner(shape, config, seed, device, pool, ray_config.max_lag)
