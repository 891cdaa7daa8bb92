"""QMIX / VDN / IQL / DQN with K acting actors, one replay actor and one learner.

Each `ActingWorker` steps its own num_envs / K envs epsilon-greedily with a copy of the
Q-networks, using the local learner's own collection code (`ValueLearner.collect`) with the
learner's current epsilon; the weights and epsilon are broadcast once per iteration (one
`ray.put`). The workers' episode segments (or n-step transitions) go straight from the
workers to the `ReplayServer`, which holds the `ReplayBuffer` (uniform or prioritized): the
learner passes it the workers' object refs, so the data never passes through the learner.
The learner then runs the local learner's TD updates (`ValueLearner.learn`), sampling each
batch from the replay actor and sending the new priorities back (not awaited: an actor runs
one caller's calls in order, so the next sample sees them). Collection is synchronous.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from marl.distributed.ray_backend import RayConfig, incarnation, init_ray, remote_actor
from marl.distributed.rollout import env_shape, split_envs, worker_seed
from marl.envs.types import VecEnv
from marl.learners.qmix import ValueConfig, ValueLearner, make_replay
from marl.learners.value.acting import ValuePolicy
from marl.run.config import ConfigError
from marl.run.device import set_threads


@dataclasses.dataclass(frozen=True)
class ValueShape:
    """What building the Q-networks and the replay needs of a vector env (no env stepped)."""

    agents: list[str]
    teams: dict[str, list[int]]
    obs_dim: int
    state_dim: int
    num_actions: int
    action_dim: int
    num_envs: int

    @classmethod
    def of(cls, env: VecEnv, num_envs: int) -> ValueShape:
        """The shape of `env`, claiming `num_envs` copies."""
        teams = {team: list(members) for team, members in env.teams.items()}
        return cls(list(env.agents), teams, env.obs_dim, env.state_dim, env.num_actions,
                   env.action_dim, num_envs)  # fmt: skip


class ActingPolicy(NamedTuple):
    """What the learner broadcasts each iteration."""

    weights: dict[str, Tensor]  # the online Q-networks' state_dict, on the CPU
    epsilon: float  # exploration rate of the learner's schedule at its current env step


class ActingPart(NamedTuple):
    """One worker's collection of one iteration."""

    items: list[dict[str, Any]]  # replay items, as `ReplayBuffer.add` takes them
    finished: np.ndarray  # [episodes, N] per-agent returns of the episodes that ended
    env_steps: int  # env steps taken
    version: int  # weights version that acted
    worker: str  # the worker process (`incarnation()`); changes when Ray restarts it
    seconds: float  # time spent collecting


class ItemSink:
    """Stands in for a worker's replay: keeps what it is given until `drain`."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def add(self, items: dict[str, Any]) -> None:
        """Keep one batch of items (as `ReplayBuffer.add` would store it)."""
        self.items.append(items)

    def drain(self) -> list[dict[str, Any]]:
        """Everything kept since the last drain."""
        items, self.items = self.items, []
        return items


class ActingWorker:
    """Steps `num_envs` envs epsilon-greedily with the latest weights (runs as a Ray actor)."""

    def __init__(self, env_id: str, config: ValueConfig, seed: int, index: int,
                 num_envs: int, env_kwargs: dict[str, Any] | None = None):  # fmt: skip
        from marl.envs.vector import make_vec

        set_threads(1)
        own_seed = worker_seed(seed, index)
        cfg = dataclasses.replace(config, num_envs=num_envs)
        env = make_vec(env_id, num_envs, seed=own_seed, backend=cfg.backend, **(env_kwargs or {}))
        self.sink = ItemSink()
        self.core = ValueLearner(env, cfg, own_seed, "cpu", env_id=env_id, replay=self.sink)
        self.version = -1

    def collect(self, policy: ActingPolicy, version: int) -> ActingPart:
        """Load the weights (if newer), then step every env `rollout_steps` times."""
        start = time.perf_counter()
        if version != self.version:
            self.core.online.load_state_dict(policy.weights)
            self.version = version
        finished = self.core.collect(self.core.config.rollout_steps, policy.epsilon)
        n = len(self.core.env.agents)
        rows = np.stack(finished) if finished else np.zeros((0, n))
        steps = self.core.config.rollout_steps * self.core.env.num_envs
        return ActingPart(self.sink.drain(), rows, steps, version, incarnation(),
                          time.perf_counter() - start)  # fmt: skip


class ReplayServer:
    """Holds the run's `ReplayBuffer` (runs as a Ray actor)."""

    def __init__(self, config: ValueConfig, shape: ValueShape):
        set_threads(1)
        self.buffer = make_replay(config, shape)  # type: ignore[arg-type]

    def add(self, *parts: ActingPart) -> tuple[list[ActingPart], int]:
        """Store the parts' items; return the parts without them, and the buffer's size."""
        for part in parts:
            for items in part.items:
                self.buffer.add(items)
        return [p._replace(items=[]) for p in parts], len(self.buffer)

    def sample(self, batch_size: int, seed: int, beta: float) -> tuple[Any, Tensor, dict]:
        """`ReplayBuffer.sample` with a generator seeded `seed`."""
        return self.buffer.sample(batch_size, np.random.default_rng(seed), beta)

    def update_priorities(self, indices: np.ndarray, td_abs: np.ndarray) -> None:
        """`ReplayBuffer.update_priorities`."""
        self.buffer.update_priorities(indices, td_abs)

    def state_dict(self) -> dict[str, Any]:
        """`ReplayBuffer.state_dict` (weights_only-safe)."""
        return self.buffer.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """`ReplayBuffer.load_state_dict`."""
        self.buffer.load_state_dict(state)


class InProcess:
    """An object called in this process, with the interface of `OnRay` (tests; no Ray)."""

    def __init__(self, target: Any):
        self.target = target

    def call(self, method: str, *args: Any) -> Any:
        """Run `method` now; its result is its own handle."""
        return getattr(self.target, method)(*args)

    def get(self, handle: Any) -> Any:
        """The result a handle stands for."""
        return handle

    def put(self, value: Any) -> Any:
        """`value` as the callee receives it."""
        return value

    def close(self) -> None:
        """Nothing to stop."""


class OnRay:
    """A Ray actor: `call` starts a method and returns its object ref."""

    def __init__(self, actor: Any):
        self.actor = actor

    def call(self, method: str, *args: Any) -> Any:
        """Start `method` (object refs among `args` are resolved on the actor's side)."""
        return getattr(self.actor, method).remote(*args)

    def get(self, handle: Any) -> Any:
        """Wait for the result of a call."""
        import ray

        return ray.get(handle)

    def put(self, value: Any) -> Any:
        """Put `value` in the object store once; every actor reads the same copy."""
        import ray

        return ray.put(value)

    def close(self) -> None:
        """Stop the actor for good."""
        import ray

        ray.kill(self.actor, no_restart=True)


class ReplayClient:
    """The learner's view of the replay actor: the `ReplayBuffer` calls `ValueLearner` makes.

    Each `sample` also requests the next batch, so the round trip overlaps the update; that
    batch is drawn before the current batch's priorities arrive (one update stale), and is
    dropped when new items are added or the contents are saved or replaced.
    """

    def __init__(self, server: InProcess | OnRay, prioritized: bool):
        self.server, self.prioritized = server, prioritized
        self.size = 0
        self._next: tuple[tuple[int, float], Any] | None = None

    def __len__(self) -> int:
        return self.size

    def add_parts(self, handles: list[Any]) -> list[ActingPart]:
        """Have the server store the workers' parts; return them without their items."""
        self._next = None
        parts, self.size = self.server.get(self.server.call("add", *handles))
        return parts

    def sample(self, batch_size: int, rng: np.random.Generator, beta: float) -> tuple:
        """A batch drawn on the server with a seed drawn from `rng` (prefetched if it was)."""

        def request() -> Any:
            seed = int(rng.integers(2**63 - 1))
            return self.server.call("sample", batch_size, seed, beta)

        key = (batch_size, beta)
        handle = self._next[1] if self._next is not None and self._next[0] == key else request()
        self._next = (key, request())
        return self.server.get(handle)

    def update_priorities(self, indices: np.ndarray, td_abs: np.ndarray) -> None:
        """Send new priorities (not awaited; a uniform buffer needs none)."""
        if self.prioritized:
            self.server.call("update_priorities", indices, td_abs)

    def state_dict(self) -> dict[str, Any]:
        """The server's replay contents (for checkpoints)."""
        self._next = None
        return self.server.get(self.server.call("state_dict"))

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Replace the server's replay contents."""
        self._next = None
        self.server.get(self.server.call("load_state_dict", state))
        self.size = int(state["size"])


class DistributedValueLearner:
    """Value learner whose envs are stepped by acting workers around a replay actor (`Learner`).

    Its `state_dict` is a `ValueLearner`'s (replay included), so a run trained with Ray can be
    evaluated, or resumed, with the local backend, and the other way round.
    """

    def __init__(self, shape: ValueShape, config: ValueConfig, seed: int, device: Any,
                 workers: list[InProcess | OnRay], replay: InProcess | OnRay):  # fmt: skip
        self.replay = ReplayClient(replay, config.prioritized)
        self.core = ValueLearner(shape, config, seed, device, replay=self.replay)  # type: ignore[arg-type]
        self.workers, self.server = workers, replay
        self.version = 0
        self.restarts = 0
        self._names: list[str] | None = None

    @property
    def env_steps(self) -> int:
        """Env steps taken so far (all workers together)."""
        return self.core.env_steps

    def _collect(self) -> tuple[list[ActingPart], dict[str, float]]:
        """Broadcast weights and epsilon, collect on every worker, store it all in replay."""
        start = time.perf_counter()
        weights = {k: v.detach().cpu() for k, v in self.core.online.state_dict().items()}
        policy = self.server.put(ActingPolicy(weights, self.core.epsilon))
        parts = self.replay.add_parts(
            [w.call("collect", policy, self.version) for w in self.workers]
        )
        names = [p.worker for p in parts]
        if self._names is not None:
            self.restarts += sum(a != b for a, b in zip(names, self._names))
        self._names = names
        stats = {"ray/actor_restarts": float(self.restarts), "replay_size": float(len(self.replay)),
                 "time/collect_s": float(np.mean([p.seconds for p in parts])),
                 "time/gather_s": time.perf_counter() - start}  # fmt: skip
        return parts, stats

    def iterate(self) -> dict[str, float]:
        """Collect one round on every worker, then run the local learner's due TD updates."""
        parts, stats = self._collect()
        self.core.env_steps += sum(p.env_steps for p in parts)
        stats |= self.core.learn([row for p in parts for row in p.finished])
        self.version += 1
        return stats

    def state_dict(self) -> dict[str, Any]:
        """The `ValueLearner` state, with the replay fetched from the replay actor."""
        return self.core.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a `ValueLearner` state (from either backend) into learner and replay actor."""
        self.core.load_state_dict(state)
        self.version += 1  # workers must reload even if they saw an equal version before

    def policy(self) -> ValuePolicy:
        """The learner's greedy policy."""
        return self.core.policy()

    def close(self) -> None:
        """Stop the workers and the replay actor (the learner's nets stay usable)."""
        for handle in [*self.workers, self.server]:
            handle.close()


def make_learner(
    env_id: str,
    config: ValueConfig,
    seed: int,
    device: Any,
    env_kwargs: dict[str, Any] | None,
    ray_config: RayConfig,
    in_process: bool = False,
) -> DistributedValueLearner:
    """A value learner acting in `ray_config.actors` Ray actors around one replay actor.

    `in_process` runs the same workers and replay server as plain objects here (no Ray).
    """
    config.validate()
    if ray_config.max_lag != 0:
        raise ConfigError(
            f"RayConfig.max_lag={ray_config.max_lag}: value learners collect synchronously; "
            "use max_lag=0"
        )
    per_worker = split_envs(config.num_envs, ray_config.actors)
    shape = env_shape(env_id, config, env_kwargs, ValueShape)
    args = [(env_id, config, seed, i, per_worker, env_kwargs) for i in range(ray_config.actors)]
    if in_process:
        workers: list[InProcess | OnRay] = [InProcess(ActingWorker(*a)) for a in args]
        replay: InProcess | OnRay = InProcess(ReplayServer(config, shape))
    else:
        ray = init_ray(ray_config.address)
        worker_class = remote_actor(ActingWorker, ray_config)
        workers = [OnRay(worker_class.remote(*a)) for a in args]
        # the replay mostly holds memory: it reserves no CPU, and a lost one ends the run
        replay = OnRay(ray.remote(num_cpus=0, max_restarts=0)(ReplayServer).remote(config, shape))
    return DistributedValueLearner(shape, config, seed, torch.device(device), workers, replay)
