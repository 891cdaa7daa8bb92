"""Shared part of the off-policy benchmarks: train a marl learner in-process, then evaluate
its GREEDY policy on fresh seeded episodes, timing wall and CPU (one torch thread)."""

from __future__ import annotations

import time
from typing import Any

from _spread import LoadMeter, Result


def train_and_evaluate(
    algo: str, env_id: str, env_kwargs: dict[str, Any], config: dict[str, Any], steps: int,
    seed: int, episodes: int, eval_seed: int, method: str = "",
) -> tuple[Result, Any]:  # fmt: skip
    """Train `algo` for `steps` env steps; (result with the mean greedy per-agent return over
    `episodes` episodes, the per-agent returns [episodes, N])."""
    from marl.algorithms import local_trainer, make_config
    from marl.envs import make_vec, vec_spec
    from marl.run.evaluate import run_episodes

    spec = vec_spec(env_id, **env_kwargs)
    with LoadMeter() as load:
        start, cpu = time.perf_counter(), time.process_time()
        trainer = local_trainer(algo, spec, make_config(algo, config), seed)
        while trainer.learner.env_steps < steps:
            trainer.iterate()
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    vec = make_vec(env_id, min(episodes, 16), seed=eval_seed, **env_kwargs)
    returns = run_episodes(trainer.learner.policy(), vec, episodes, True, eval_seed)
    vec.close()
    result = Result(method or algo, trainer.learner.env_steps, seed, float(returns.mean()),
                    seconds, load.mean, cpu)  # fmt: skip
    return result, returns
