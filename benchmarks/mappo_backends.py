"""Wall-clock for MAPPO to reach a greedy return on simple_spread: batched vs mpe2 backend.

Both runs use envs/mappo_spread.toml's config (learning-rate schedule planned for its 2M
steps) and differ only in `backend`: "batched" (marl's torch MPE) or "sync" (mpe2 envs
stepped in this process). Every `--eval-every` env steps the greedy policy plays
`--eval-episodes` fresh mpe2 episodes (the same seeds every time); the clock stops during
evaluation. The first time the mean per-agent return reaches `--target`, the run stops and
the policy is re-checked on 100 episodes (reported, not used to stop). A backend that has
not reached it by its `--cap` env steps reports its best evaluation instead, and the time
the steps another backend needed would take at its measured rate (an estimate, so marked).
The backends race at the same time, one process each, so both see the same machine load.
The CPU column is the training process's CPU time (one torch thread), evaluation excluded,
startup (imports, env and learner construction) included: time from scratch.

    OMP_NUM_THREADS=1 python benchmarks/mappo_backends.py --backends batched sync
    OMP_NUM_THREADS=1 python benchmarks/mappo_backends.py --sync-cap 300000   # busy machine
    OMP_NUM_THREADS=1 python benchmarks/mappo_backends.py --backends batched \
        --config envs/mappo_spread_fast.toml --cap 1500000   # time to -14
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from _spread import ENV_ID, ENV_KWARGS, EVAL_EPISODES, EVAL_SEED, LoadMeter, run_file, speed_probe

from marl.algorithms import local_trainer, make_config
from marl.core.device import get_device
from marl.envs import make_vec, vec_spec
from marl.run.evaluate import run_episodes


def greedy_return(learner: Any, episodes: int) -> float:
    """Mean per-agent greedy return of the learner's current policy on mpe2 episodes."""
    vec = make_vec(ENV_ID, min(16, episodes), **ENV_KWARGS)
    returns = run_episodes(learner.policy(), vec, episodes, greedy=True, seed=EVAL_SEED)
    vec.close()
    return float(returns.mean())


def race(backend: str, config: dict, args: argparse.Namespace) -> dict[str, Any]:
    """Train until the target or the cap; the trace of (env steps, seconds, greedy return)."""
    start, cpu_start = time.perf_counter(), time.process_time()
    cfg = make_config(args.algo, {**config, "backend": backend, "total_steps": args.cap})
    spec = vec_spec(ENV_ID, backend=backend, **ENV_KWARGS)
    learner = local_trainer(args.algo, spec, cfg, args.seed, get_device("cpu"))
    trace: list[tuple[int, float, float]] = []
    seconds, cpu, next_eval = 0.0, 0.0, args.eval_every
    cap = args.sync_cap if backend in ("sync", "process") and args.sync_cap else args.cap
    with LoadMeter() as load:
        while learner.env_steps < cap:
            while learner.env_steps < min(next_eval, cap):
                learner.iterate()
            seconds += time.perf_counter() - start
            cpu += time.process_time() - cpu_start
            next_eval += args.eval_every
            ret = greedy_return(learner, args.eval_episodes)
            trace.append((learner.env_steps, seconds, ret))
            print(f"  {backend}: {learner.env_steps:>9,} steps {seconds:7.0f} s wall {cpu:6.0f} "
                  f"s CPU  greedy {ret:7.2f}  load {load.samples[-1]:.1f}", flush=True)  # fmt: skip
            if ret >= args.target:
                break
            start, cpu_start = time.perf_counter(), time.process_time()
    reached = trace[-1][2] >= args.target
    check = greedy_return(learner, EVAL_EPISODES) if reached else float("nan")
    best = max(trace, key=lambda t: t[2])
    return {"backend": backend, "reached": reached, "steps": trace[-1][0], "seconds": seconds,
            "cpu": cpu, "best": best, "check": check, "load": load.mean}  # fmt: skip


def main() -> None:
    """Race the backends at the same time (one process each) and print the summary table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", default=["batched", "sync"],
                        choices=["batched", "compiled", "sync", "process"])  # fmt: skip
    parser.add_argument("--target", type=float, default=-14.0)
    parser.add_argument("--cap", type=int, default=2_000_000, help="env-step cap per backend")
    parser.add_argument("--sync-cap", type=int, default=0, help="lower cap for mpe2 backends")
    parser.add_argument("--eval-every", type=int, default=100_000)
    parser.add_argument("--eval-episodes", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--algo", default="mappo", choices=["mappo", "ippo", "ppo"])
    parser.add_argument("--config", type=Path, default=Path("envs/mappo_spread.toml"))
    args = parser.parse_args()
    print(speed_probe(), "(start)", flush=True)
    config = run_file(args.config, (args.algo,))
    with ProcessPoolExecutor(len(args.backends)) as pool:
        futures = [pool.submit(race, backend, config, args) for backend in args.backends]
        rows = [f.result() for f in futures]
    print(speed_probe(), "(end)", flush=True)
    print(f"\n{args.algo} {args.config} {ENV_ID} {ENV_KWARGS}, seed {args.seed}: "
          f"wall-clock and CPU (evaluation excluded) "
          f"until the greedy return over {args.eval_episodes} episodes first reaches "
          f"{args.target} (checked every {args.eval_every:,} env steps)\n")  # fmt: skip
    print(
        "| backend | reached | env steps | wall-clock | CPU (1 thread) | env-steps/s | greedy "
        "(eval) | recheck (100 ep) | load avg |\n|---|---|---:|---:|---:|---:|---:|---:|---:|"
    )
    needed = min((r["steps"] for r in rows if r["reached"]), default=0)
    for r in rows:
        best_steps, _, best_ret = r["best"]
        rate = r["steps"] / r["seconds"]
        status = "yes" if r["reached"] else f"no: best at {best_steps:,}"
        if not r["reached"] and needed:
            status += f"; {needed:,} steps at this rate: ~{needed / rate / 60:.0f} min (estimate)"
        print(
            f"| {r['backend']} | {status} | {r['steps']:,} | {r['seconds'] / 60:.1f} min "
            f"| {r['cpu']:.0f} s | {rate:,.0f} | {best_ret:.2f} | {r['check']:.2f} "
            f"| {r['load']:.1f} |"
        )


if __name__ == "__main__":
    main()
