"""Ray plumbing shared by the distributed learners and the league: settings, init, actors.

`RayConfig` is what `--backend ray` adds to a run. `init_ray` joins a cluster (or starts a
local one); `remote_actor` wraps a plain class as a restartable Ray actor. The classes that
run remotely stay plain Python, so tests can also run them in-process without Ray.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from marl.run.config import ConfigError

PPO_ALGOS = ("ppo", "ippo", "mappo")
"""Algorithms whose rollouts run in Ray actors."""
SELFPLAY_ALGOS = ("alphazero",)
"""Algorithms whose self-play runs in Ray actors around one batched inference actor."""
VALUE_ALGOS = ("qmix", "vdn", "iql", "dqn")
"""Algorithms whose acting runs in Ray actors around one replay actor."""


@dataclass(frozen=True)
class RayConfig:
    """How a run uses Ray: where the cluster is and how many actors do the acting."""

    address: str | None = None
    """Cluster to join (`auto`, `HOST:6379`, `ray://HOST:10001`); None starts a local one."""
    actors: int = 2
    """Rollout (or self-play) actors; each steps num_envs / actors envs (num_games / actors)."""
    max_lag: int = 0
    """Policy lag bound: 0 collects with the newest weights; 1 overlaps collection with the
    update, so a batch may come from weights one update old (logged as `policy_lag`)."""
    actor_cpus: float = 1.0
    """CPUs Ray reserves for each actor (and each league match task)."""
    max_restarts: int = 3
    """Times Ray restarts a lost actor (its in-flight call is retried); -1 = without limit."""
    inference_gpus: float = 0.0
    """GPUs Ray reserves for the self-play inference actor (0: it runs on a CPU)."""
    batch_wait_ms: float = 2.0
    """Self-play: how long the inference actor waits for more requests before it evaluates."""
    inference: str = "server"
    """Self-play: server = one batched inference actor answers every search; local = each
    self-play actor evaluates with its own copy of the net (no round trip per simulation)."""

    def validate(self) -> None:
        """Raise ConfigError naming the first setting out of range."""
        checks = [
            ("actors", self.actors >= 1, ">= 1"),
            ("max_lag", self.max_lag in (0, 1), "0 or 1"),
            ("actor_cpus", self.actor_cpus > 0, "> 0"),
            ("max_restarts", self.max_restarts >= -1, ">= -1"),
            ("inference_gpus", self.inference_gpus >= 0, ">= 0"),
            ("batch_wait_ms", self.batch_wait_ms >= 0, ">= 0"),
            ("inference", self.inference in ("server", "local"), "server|local"),
        ]
        for name, ok, want in checks:
            if not ok:
                raise ConfigError(f"RayConfig.{name}={getattr(self, name)!r}: expected {want}")

    def to_dict(self) -> dict[str, Any]:
        """Plain values (for run records and checkpoints)."""
        return dataclasses.asdict(self)


def require_ray() -> ModuleType:
    """Import Ray, or say how to install it."""
    try:
        import ray
    except ImportError:
        raise ImportError(
            "the ray backend needs Ray: pip install 'marl[ray]' (or use --backend local)"
        ) from None
    return ray


def init_ray(address: str | None = None, num_cpus: int | None = None) -> ModuleType:
    """Join the cluster at `address` (None: start a local one) unless Ray is already up."""
    ray = require_ray()
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": True}
        if address is None:
            kwargs["num_cpus"] = num_cpus
        ray.init(address=address, **kwargs)
    return ray


def remote_actor(cls: type, config: RayConfig, **options: Any) -> Any:
    """`cls` as a Ray actor class that Ray restarts when lost, retrying its in-flight call."""
    ray = require_ray()
    return ray.remote(
        num_cpus=config.actor_cpus,
        max_restarts=config.max_restarts,
        max_task_retries=config.max_restarts,
        **options,
    )(cls)


def incarnation() -> str:
    """This process on this node: changes when Ray restarts an actor in a new process."""
    node = ""
    try:
        import ray

        if ray.is_initialized():
            node = ray.get_runtime_context().get_node_id()[:8]
    except ImportError:
        pass
    return f"{node}:{os.getpid()}"


def make_ray_learner(
    algo: str,
    env_id: str,
    config: Any,
    seed: int,
    device: Any,
    env_kwargs: dict[str, Any] | None,
    ray_config: RayConfig,
) -> Any:
    """The Ray-backed learner of `algo` (PPO family, value family or AlphaZero): a `Learner`."""
    ray_config.validate()
    if algo in PPO_ALGOS:
        from marl.distributed.rollout import make_learner
    elif algo in SELFPLAY_ALGOS:
        from marl.distributed.selfplay import make_learner
    elif algo in VALUE_ALGOS:
        from marl.distributed.value import make_learner
    else:
        supported = ", ".join(PPO_ALGOS + VALUE_ALGOS + SELFPLAY_ALGOS)
        raise NotImplementedError(
            f"--backend ray runs {supported}; {algo!r} runs with --backend local for now"
        )
    return make_learner(env_id, config, seed, device, env_kwargs, ray_config)
