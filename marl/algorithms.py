"""Algorithm names, the modules that implement them, and how a learner is set to work.

A learner module (`marl.learners.ppo`, `marl.learners.value.learner`,
`marl.learners.tabular.learner`, `marl.search.alphazero`) exposes `CONFIG` (its frozen
config dataclass), `ALGOS` (algorithm name -> config overrides, e.g. `"mappo": {"critic":
"state"}`), `make_learner(spec, config, seed, device)` and `make_env(spec, config, num_envs,
seed)`. `local_trainer` puts any of them to work in this process; `marl.distributed` does
the same on Ray, and the league and `marl train` call these, never a learner class by name.

This layer sits above the learners and search, below the league, distributed and run.
"""

from __future__ import annotations

import functools
import importlib
from types import ModuleType
from typing import Any

from marl.core.async_trainer import AsyncTrainer
from marl.core.config import ConfigError, build_config, closest
from marl.core.pool import InProcessPool, ThreadPool, Worker, WorkerRecipe, worker_seed
from marl.core.spec import VecSpec
from marl.core.trainer import Trainer

ALGORITHMS = {
    "ppo": "marl.learners.ppo",
    "ippo": "marl.learners.ppo",
    "mappo": "marl.learners.ppo",
    "reinforce": "marl.learners.ppo.reinforce",
    "a2c": "marl.learners.ppo.a2c",
    "maa2c": "marl.learners.ppo.a2c",
    "trpo": "marl.learners.ppo.trpo",
    "matrpo": "marl.learners.ppo.trpo",
    "impala": "marl.learners.ppo.impala",
    "maimpala": "marl.learners.ppo.impala",
    "a3c": "marl.learners.ppo.a3c",
    "maa3c": "marl.learners.ppo.a3c",
    "qmix": "marl.learners.value.learner",
    "vdn": "marl.learners.value.learner",
    "iql": "marl.learners.value.learner",
    "dqn": "marl.learners.value.learner",
    "c51": "marl.learners.value.learner",
    "rainbow": "marl.learners.value.learner",
    "iql_rainbow": "marl.learners.value.learner",
    "qlearning": "marl.learners.tabular.learner",
    "dynaq": "marl.learners.tabular.learner",
    "ddpg": "marl.learners.actor_critic",
    "td3": "marl.learners.actor_critic",
    "sac": "marl.learners.actor_critic",
    "maddpg": "marl.learners.actor_critic",
    "matd3": "marl.learners.actor_critic",
    "masac": "marl.learners.actor_critic",
    "mbpo": "marl.learners.model_based.mbpo",
    "dreamer": "marl.learners.model_based.dreamer",
    "alphazero": "marl.search.alphazero",
    "muzero": "marl.search.muzero",
    "rlhf_ppo": "marl.learners.rlhf.ppo",
}
"""Algorithm name -> the module implementing it (imported on first use)."""

SEEDED = ("ppo", "ippo", "mappo")
"""Algorithms that train K seeds in one process as one batched computation (`--seeds K`):
their module has `make_seeds_learner(spec, config, seeds, device)`."""

EVALUATIONS = {"alphazero": "marl.search.strength", "muzero": "marl.search.muzero_eval"}
"""Algorithms whose `marl eval` is their own (games against a fixed bot), not team returns
(an `evaluate` that returns None falls back to team returns: MuZero on a single-agent env)."""


def learner_module(algo: str) -> ModuleType:
    """The module implementing `algo` (clear error for unknown or not-installed ones)."""
    if algo not in ALGORITHMS:
        near = closest(algo, ALGORITHMS)
        hint = f"did you mean {' or '.join(near)}? " if near else ""
        raise ValueError(f"unknown algorithm {algo!r}; {hint}known: {', '.join(ALGORITHMS)}")
    try:
        return importlib.import_module(ALGORITHMS[algo])
    except ImportError as err:
        raise NotImplementedError(f"algorithm {algo!r} is not available: {err}") from None


def evaluation_module(algo: str) -> ModuleType | None:
    """The module whose `evaluate(source, episodes, seed)` is `algo`'s own evaluation."""
    name = EVALUATIONS.get(algo)
    return importlib.import_module(name) if name else None


def make_config(algo: str, values: dict[str, Any] | None = None) -> Any:
    """The config of `algo`: its class defaults, then its presets, then `values`."""
    module = learner_module(algo)
    return build_config(module.CONFIG, {**module.ALGOS.get(algo, {}), **(values or {})})


def num_envs(config: Any) -> int:
    """How many envs (or self-play games) a learner's config asks its workers to run."""
    for name in ("num_envs", "num_games"):
        if hasattr(config, name):
            return int(getattr(config, name))
    return 1


def split(total: int, workers: int, what: str = "num_envs") -> int:
    """Envs per worker: `total` must split evenly, so every pool trains on equal batches."""
    if workers < 1 or total % workers:
        raise ValueError(
            f"{what}={total} does not split over {workers} workers; use a multiple of "
            f"{workers} (e.g. {what}={max(workers, total // workers * workers)})"
        )
    return total // workers


def recipe(
    algo: str, spec: VecSpec, config: Any, seed: int, index: int, workers: int
) -> WorkerRecipe:
    """How worker `index` of `workers` builds its env share and its acting copy (picklable)."""
    module = learner_module(algo)
    share = split(num_envs(config), workers)
    return WorkerRecipe(
        make_env=functools.partial(module.make_env, spec, config, share),
        make_learner=functools.partial(module.make_learner, spec, config, seed, "cpu"),
        seed=worker_seed(seed, index),
    )


def local_trainer(
    algo: str, spec: VecSpec, config: Any, seed: int, device: Any = "cpu",
    env: Any = None, max_lag: int = 0,
) -> Trainer:  # fmt: skip
    """`algo`'s learner for `spec` with one in-process worker that acts with the learner
    itself (`env` replaces the worker's own env: a league's team view). An asynchronous
    algorithm's worker acts with a copy, `config.max_lag` updates behind."""
    learner = learner_module(algo).make_learner(spec, config, seed, device)
    lag = asynchronous_lag(config)
    shared = None if lag else learner
    worker = Worker(recipe(algo, spec, config, seed, 0, 1), learner=shared, env=env)
    return trainer(learner, InProcessPool([worker]), config, max_lag)


def seeds_trainer(
    algo: str, spec: VecSpec, config: Any, seeds: list[int], device: Any = "cpu"
) -> Trainer:
    """K runs of `algo` (one per seed in `seeds`) as one learner acting on K env blocks
    side by side in one in-process worker (`--seeds K`)."""
    if algo not in SEEDED:
        raise ConfigError(
            f"{algo} has no batched --seeds learner (batched: {', '.join(SEEDED)}); "
            "marl.run.seed_runs.RunsTrainer trains its seeds side by side"
        )
    module = learner_module(algo)
    learner = module.make_seeds_learner(spec, config, seeds, device)
    recipe = WorkerRecipe(
        make_env=functools.partial(module.make_env, spec, config, num_envs(config)),
        make_learner=functools.partial(module.make_seeds_learner, spec, config, seeds, "cpu"),
        seed=tuple(worker_seed(s, 0) for s in seeds),
    )
    return Trainer(learner, InProcessPool([Worker(recipe, learner=learner)]))


def threaded_trainer(
    algo: str, spec: VecSpec, config: Any, seed: int, device: Any = "cpu", workers: int = 2
) -> Trainer:
    """`algo`'s learner with `workers` workers acting in threads of this process, each with
    its own env share and acting copy: asynchronous IMPALA/A3C actors with no Ray, or
    parallel collection for any learner."""
    learner = learner_module(algo).make_learner(spec, config, seed, device)
    recipes = [recipe(algo, spec, config, seed, i, workers) for i in range(workers)]
    pool = ThreadPool([Worker(r) for r in recipes])
    return trainer(learner, pool, config)


def asynchronous_lag(config: Any, pool_lag: int = 0) -> int:
    """The lag bound of an asynchronous algorithm (IMPALA, A3C: `config.max_lag`), else 0;
    refuses a synchronous `pool_lag` beside it."""
    lag = int(getattr(config, "max_lag", 0))
    if lag and pool_lag:
        raise ValueError(
            f"max_lag={pool_lag}: this algorithm bounds its lag with its own setting "
            f"(now {lag}); use --set max_lag=L instead of --max-lag"
        )
    return lag


def trainer(learner: Any, pool: Any, config: Any, max_lag: int = 0) -> Trainer:
    """The trainer of `learner` on `pool`: asynchronous for IMPALA and A3C (their config's
    `max_lag`), else synchronous with the pool's `max_lag` (0 or 1)."""
    lag = asynchronous_lag(config, max_lag)
    return AsyncTrainer(learner, pool, lag) if lag else Trainer(learner, pool, max_lag)
