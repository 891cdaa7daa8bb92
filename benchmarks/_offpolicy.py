"""Shared part of the off-policy benchmarks: train a marl learner in-process, then evaluate
its GREEDY policy on fresh seeded episodes, timing wall and CPU (one torch thread)."""

from __future__ import annotations

import functools
import time
from typing import Any

from _spread import LoadMeter, Result


def train_and_evaluate(
    algo: str, env_id: str, env_kwargs: dict[str, Any], config: dict[str, Any], steps: int,
    seed: int, episodes: int, eval_seed: int, method: str = "", curve_every: int = 0,
    curve: list[dict[str, float]] | None = None, max_cpu_s: float = float("inf"),
) -> tuple[Result, Any]:  # fmt: skip
    """Train `algo` for `steps` env steps; (result with the mean greedy per-agent return over
    `episodes` episodes, the per-agent returns [episodes, N]). With `curve_every`, the greedy
    return is also measured (outside the timing) about every that many env steps and printed,
    so a run cut short still leaves its curve in the log; each point is appended to `curve`
    too. Training stops early once it has used `max_cpu_s` seconds of CPU."""
    from marl.algorithms import local_trainer, make_config
    from marl.envs import vec_spec

    spec = vec_spec(env_id, **env_kwargs)
    evaluate = functools.partial(greedy_returns, env_id, env_kwargs, episodes, eval_seed)
    seconds = cpu = 0.0
    next_curve = curve_every or float("inf")
    with LoadMeter() as load:
        trainer = local_trainer(algo, spec, make_config(algo, config), seed)
        while trainer.learner.env_steps < steps and cpu < max_cpu_s:
            start, tick = time.perf_counter(), time.process_time()
            trainer.iterate()
            seconds += time.perf_counter() - start
            cpu += time.process_time() - tick
            if trainer.learner.env_steps >= next_curve:
                next_curve += curve_every
                mean = float(evaluate(trainer.learner.policy()).mean())
                done = f"{trainer.learner.env_steps} env steps"
                point = {"env_steps": trainer.learner.env_steps, "greedy": mean, "cpu_s": cpu,
                         "wall_s": seconds}  # fmt: skip
                (curve if curve is not None else []).append(point)
                print(f"  {method or algo} {done}: greedy {mean:.1f} ({cpu:.0f} s CPU, "
                      f"{seconds:.0f} s wall)", flush=True)  # fmt: skip
    returns = evaluate(trainer.learner.policy())
    result = Result(method or algo, trainer.learner.env_steps, seed, float(returns.mean()),
                    seconds, load.mean, cpu)  # fmt: skip
    return result, returns


def greedy_returns(
    env_id: str, env_kwargs: dict[str, Any], episodes: int, eval_seed: int, policy: Any
) -> Any:
    """Per-agent returns [episodes, N] of `policy` acting greedily on fresh seeded episodes."""
    from marl.envs import make_vec
    from marl.run.evaluate import run_episodes

    vec = make_vec(env_id, min(episodes, 16), seed=eval_seed, **env_kwargs)
    try:
        return run_episodes(policy, vec, episodes, True, eval_seed)
    finally:
        vec.close()
