"""DQN, C51, Rainbow and IQL-Rainbow on CartPole and on spread at one budget: the table of
the README (C51, noisy nets and Rainbow).

Every algorithm trains from its preset (`marl.learners.value.config.ALGOS`) for `--budget`
env steps per seed, in this process with one torch thread. CartPole (`gym/CartPole-v1`) is
scored by the greedy return over 20 fresh episodes, spread by the greedy per-agent return
over 100 episodes on the protocol of benchmarks/_spread.py (N=3, local_ratio 0.5,
max_cycles 25, discrete; spread trains on the batched MPE backend and is evaluated on mpe2).
Each result is saved as JSON under --out, so runs can be made one at a time and tabled
together:

    OMP_NUM_THREADS=1 python benchmarks/value_table.py --budget 30000 --envs cartpole
    OMP_NUM_THREADS=1 python benchmarks/value_table.py --budget 30000 --envs spread
    python benchmarks/value_table.py --budget 30000 --table-only
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time
from pathlib import Path
from typing import Any

from _spread import ENV_ID, ENV_KWARGS, EVAL_SEED, LoadMeter, Result, cached_result

ENVS: dict[str, tuple[str, dict[str, Any], int, dict[str, Any]]] = {
    # name: (env id, env kwargs, evaluation episodes, config overrides for training)
    "cartpole": ("gym/CartPole-v1", {}, 20, {}),
    "spread": (ENV_ID, ENV_KWARGS, 100, {"backend": "batched"}),
}
ALGOS = ("dqn", "c51", "rainbow", "iql_rainbow")


def train_and_evaluate(algo: str, env: str, budget: int, seed: int) -> Result:
    """Train `algo` on `env` for `budget` env steps, then score its greedy policy."""
    from marl.algorithms import local_trainer, make_config
    from marl.envs import make_vec, vec_spec
    from marl.run.evaluate import run_episodes

    env_id, kwargs, episodes, overrides = ENVS[env]
    config = make_config(algo, overrides)
    with LoadMeter() as load:
        start, cpu = time.perf_counter(), time.process_time()
        trainer = local_trainer(algo, vec_spec(env_id, **kwargs), config, seed)
        while trainer.learner.env_steps < budget:
            trainer.iterate()
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    vec = make_vec(env_id, min(16, episodes), **kwargs)
    returns = run_episodes(trainer.policy(), vec, episodes, greedy=True, seed=EVAL_SEED)
    vec.close()
    steps = trainer.learner.env_steps
    trainer.close()
    return Result(f"{algo} {env}", steps, seed, float(returns.mean()), seconds, load.mean, cpu)


def markdown_table(rows: dict[tuple[str, str], list[Result]]) -> str:
    """One row per (algorithm, env): greedy return over seeds, throughput, wall and CPU."""
    lines = [
        "| algo | env | env steps | greedy return, mean ± sd (per seed) | env-steps/s "
        "| wall / run | CPU / run | load avg |",
        "|---|---|---:|---|---:|---:|---:|---:|",
    ]
    for (algo, env), results in rows.items():
        rets = [r.ret for r in results]
        spread = statistics.stdev(rets) if len(rets) > 1 else 0.0
        per_seed = ", ".join(f"{r:.1f}" for r in rets)
        speed, wall, cpu, load = (
            statistics.mean(getattr(r, name) for r in results)
            for name in ("steps_per_s", "seconds", "cpu_s", "load")
        )
        lines.append(
            f"| {algo} | {env} | {results[0].steps:,} | {statistics.mean(rets):.2f} ± "
            f"{spread:.2f} ({per_seed}) | {speed:,.0f} | {wall:.0f} s | {cpu:.0f} s "
            f"| {load:.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    """Train what has no saved result yet, then print the table of all requested runs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=30_000)
    parser.add_argument("--algos", nargs="+", default=list(ALGOS), choices=ALGOS)
    parser.add_argument("--envs", nargs="+", default=list(ENVS), choices=list(ENVS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=Path("runs/bench/value_table"))
    parser.add_argument("--table-only", action="store_true", help="print saved results only")
    args = parser.parse_args()
    rows: dict[tuple[str, str], list[Result]] = {}
    for env in args.envs:
        for algo in args.algos:
            for seed in args.seeds:
                path = args.out / f"{algo}-{env}-{args.budget}-s{seed}.json"
                run = functools.partial(train_and_evaluate, algo, env, args.budget, seed)
                result = cached_result(path, args.table_only, run)
                if result is not None:
                    rows.setdefault((algo, env), []).append(result)
    print(f"\n{args.budget:,} env steps per run; greedy return (CartPole: 20 episodes; spread: "
          "per-agent, 100 episodes); 1 torch thread; load avg = mean 1-min load average of "
          "the 2-core machine during training\n")  # fmt: skip
    print(markdown_table(rows))


if __name__ == "__main__":
    main()
