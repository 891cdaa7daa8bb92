"""The Ray implementation of the one worker pool: `marl.core.pool.Worker`s as Ray actors.

`ray_trainer` builds any algorithm's learner in this process and K workers as Ray actors,
each from the same picklable recipe an in-process worker uses (`marl.algorithms.recipe`), so
no algorithm has Ray code of its own. Weights go out once per iteration (one `ray.put`
that every actor reads); Ray restarts a lost actor from its recipe, and it starts fresh
episodes on its next call (logged in `workers/restarts`). AlphaZero can search through one
batched inference actor instead of a net per worker (`RayConfig.inference = "server"`).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import Any

from marl.algorithms import asynchronous_lag, learner_module, recipe, trainer
from marl.core.pool import Part, Worker, WorkerRecipe
from marl.core.spec import VecSpec
from marl.core.trainer import Trainer
from marl.distributed.ray_backend import RayConfig, init_ray, remote_actor, require_ray
from marl.distributed.selfplay import InferenceServer, served_learner


class RayPool:
    """Workers as Ray actors (and inference servers to keep in step with the weights)."""

    def __init__(self, actors: Sequence[Any], servers: Sequence[Any] = ()):
        self.actors, self.servers = list(actors), list(servers)

    def broadcast(self, weights_fn: Callable[[], Any]) -> Any:
        """Put the weights in the object store once; every actor (and server) reads them."""
        ray = require_ray()
        ref = ray.put(weights_fn())
        ray.get([server.set_weights.remote(ref) for server in self.servers])
        return ref

    def incarnations(self) -> list[str]:
        """Each actor's process as it is now (waits until every actor is up)."""
        return require_ray().get([actor.incarnation.remote() for actor in self.actors])

    def submit(self, weights: Any, version: int, iteration: int, reset: bool) -> list[Any]:
        """Start one collection on every actor; returns object refs."""
        return [a.collect.remote(weights, version, iteration, reset) for a in self.actors]

    def gather(self, handles: list[Any]) -> list[Part]:
        """Wait for every actor's part, in actor order."""
        return require_ray().get(handles)

    @property
    def size(self) -> int:
        """Number of worker actors."""
        return len(self.actors)

    def submit_to(self, worker: int, weights: Any, version: int, iteration: int,
                  reset: bool) -> Any:  # fmt: skip
        """Start one collection on one actor (an asynchronous trainer's call)."""
        return self.actors[worker].collect.remote(weights, version, iteration, reset)

    def wait_first(self, handles: list[Any]) -> int:
        """The index of the first of `handles` to be ready (waits for one)."""
        (ready,), _ = require_ray().wait(handles, num_returns=1)
        return next(i for i, handle in enumerate(handles) if handle == ready)

    def close(self) -> None:
        """Stop the actors for good."""
        ray = require_ray()
        for actor in [*self.actors, *self.servers]:
            ray.kill(actor, no_restart=True)


def ray_workers(recipes: Sequence[WorkerRecipe], config: RayConfig) -> list[Any]:
    """One Ray actor per recipe, each a `Worker` on one torch thread."""
    worker_class = remote_actor(Worker, config)
    return [worker_class.remote(r, threads=1) for r in recipes]


def ray_trainer(
    algo: str, spec: VecSpec, config: Any, seed: int, device: Any, ray_config: RayConfig
) -> Trainer:
    """`algo`'s learner here, with `ray_config.actors` Ray workers acting for it."""
    ray_config.validate()
    asynchronous_lag(config, ray_config.max_lag)  # refused before any actor starts
    init_ray(ray_config.address)
    k = ray_config.actors
    recipes = [recipe(algo, spec, config, seed, i, k) for i in range(k)]
    servers = []
    if algo == "alphazero" and ray_config.inference == "server":
        server = _inference_server(spec, config, ray_config)
        servers.append(server)
        recipes = [
            dataclasses.replace(r, make_learner=functools.partial(served_learner, r.make_learner,
                                                                  server))
            for r in recipes
        ]  # fmt: skip
    learner = learner_module(algo).make_learner(spec, config, seed, device)
    pool = RayPool(ray_workers(recipes, ray_config), servers)
    return trainer(learner, pool, config, ray_config.max_lag)


def _inference_server(spec: VecSpec, config: Any, ray_config: RayConfig) -> Any:
    gpus = ray_config.inference_gpus
    server_class = remote_actor(InferenceServer, ray_config, num_gpus=gpus)
    return server_class.remote(
        spec, config, ray_config.actors, ray_config.batch_wait_ms, "cuda" if gpus > 0 else "cpu"
    )
