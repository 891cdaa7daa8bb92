"""Ray plumbing shared by the worker pool and the league: settings, init, actors.

`RayConfig` is what `--backend ray` adds to a run. `init_ray` joins a cluster (or starts a
local one); `remote_actor` wraps a plain class as a restartable Ray actor. The classes that
run remotely stay plain Python (`marl.core.pool.Worker`), so the same code runs in-process.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from marl.core.config import MissingExtraError, check_fields


@dataclass(frozen=True)
class RayConfig:
    """How a run uses Ray: where the cluster is and how many actors do the acting."""

    address: str | None = None
    """Cluster to join (`auto`, `HOST:6379`, `ray://HOST:10001`); None starts a local one."""
    actors: int = 2
    """Worker actors; each acts on num_envs / actors envs (or num_games / actors games)."""
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
    inference: str = "local"
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
        check_fields(self, checks)

    def to_dict(self) -> dict[str, Any]:
        """Plain values (for run records and checkpoints)."""
        return dataclasses.asdict(self)


def require_ray() -> ModuleType:
    """Import Ray, or say how to install it."""
    try:
        import ray
    except ImportError:
        raise MissingExtraError(
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
