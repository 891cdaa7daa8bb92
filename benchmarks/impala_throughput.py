"""Env steps/s of IMPALA against synchronous PPO on Ray, with 1 and 2 actors, in one run.

    python benchmarks/impala_throughput.py                    # a local Ray cluster
    python benchmarks/impala_throughput.py --address auto     # a running cluster

Both learn on gym/CartPole-v1 with 8 envs split over the actors and 32-step rollouts; PPO
is synchronous (`max_lag` 0: the actors wait for the update), IMPALA's actors run up to 4
updates ahead and the learner takes each rollout as it arrives. Each row measures the env
steps learned from while `--steps` more are learned, after `--warmup` (actor start-up and
first calls excluded); IMPALA's dropped rollouts (too stale) are counted apart. Prints a
markdown table with the learner process's CPU time (1 torch thread), wall time and load.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before torch is imported anywhere

import argparse  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402
from _spread import LoadMeter  # noqa: E402

from marl.algorithms import make_config  # noqa: E402
from marl.distributed import RayConfig, ray_trainer  # noqa: E402
from marl.envs import vec_spec  # noqa: E402

ENV_ID = "gym/CartPole-v1"
SHARED = dict(num_envs=8, rollout_len=32)


def measure(algo: str, actors: int, args: argparse.Namespace) -> dict:
    """Env steps learned per second (wall), with the learner's CPU time and the load."""
    cfg = make_config(algo, SHARED)
    ray_cfg = RayConfig(address=args.address, actors=actors)
    trainer = ray_trainer(algo, vec_spec(ENV_ID), cfg, 0, torch.device("cpu"), ray_cfg)
    while trainer.env_steps < args.warmup:
        row = trainer.iterate()
    first, dropped = trainer.env_steps, row.get("async/dropped", 0.0)
    with LoadMeter(every_s=2.0) as load:
        start, cpu = time.perf_counter(), time.process_time()
        while trainer.env_steps < first + args.steps:
            row = trainer.iterate()
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    trainer.close()
    return {"algo": algo, "actors": actors, "steps_per_s": (trainer.env_steps - first) / wall,
            "wall_s": wall, "cpu_s": cpu, "load": load.mean,
            "dropped": row.get("async/dropped", 0.0) - dropped}  # fmt: skip


def main() -> None:
    """Measure PPO and IMPALA with 1 and 2 actors; print the table."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--address", default=None)
    p.add_argument("--steps", type=int, default=40_000)
    p.add_argument("--warmup", type=int, default=4_000)
    args = p.parse_args()
    torch.set_num_threads(1)
    rows = [measure(algo, k, args) for k in (1, 2) for algo in ("ppo", "impala")]
    print("| learner | actors | env-steps/s | dropped rollouts | wall | learner CPU | load avg |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        name = "PPO (sync)" if r["algo"] == "ppo" else "IMPALA (max_lag 4)"
        print(f"| {name} | {r['actors']} | {r['steps_per_s']:,.0f} | {r['dropped']:.0f} | "
              f"{r['wall_s']:.1f} s | {r['cpu_s']:.1f} s | {r['load']:.1f} |")  # fmt: skip


if __name__ == "__main__":
    main()
