"""Env steps/s of PPO training, local vs Ray (1 and 2 rollout actors); self-play moves/s,
local vs Ray (2 self-play actors + 1 inference actor); weight broadcast cost in ms.

    python benchmarks/ray_scaling.py                      # CartPole and simple_spread
    python benchmarks/ray_scaling.py --iterations 20 --address auto   # on a cluster

Each row times `iterations` training iterations after `warmup` ones (actor start-up and first
calls excluded). Prints a markdown table and the load average (the machine may be shared).
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import numpy as np
import torch

from marl.algorithms import local_trainer
from marl.core.config import build_config
from marl.distributed import RayConfig, ray_trainer
from marl.envs import vec_spec
from marl.learners import ppo
from marl.search.alphazero import AlphaZeroConfig

PPO_CASES = {
    "gym/CartPole-v1": dict(num_envs=8, rollout_len=128),
    "mpe/simple_spread-v3": dict(num_envs=8, rollout_len=50, critic="state"),
}
AZ = {"num_games": 32, "search.simulations": 16, "moves_per_iteration": 4,
      "min_buffer": 10**5, "buffer_size": 10**5, "channels": 32, "blocks": 2}  # fmt: skip
"""Self-play only (min_buffer is never reached): what the actors add, without training."""


def timed(learner: Any, warmup: int, iterations: int) -> tuple[float, list[dict[str, float]]]:
    """Env steps per second over `iterations` iterations after `warmup`; their stats."""
    for _ in range(warmup):
        learner.iterate()
    start_steps, start = learner.env_steps, time.perf_counter()
    rows = [learner.iterate() for _ in range(iterations)]
    return (learner.env_steps - start_steps) / (time.perf_counter() - start), rows


def mean_of(rows: list[dict[str, float]], key: str) -> float:
    """Mean of `key` over the rows that have it (nan if none)."""
    values = [r[key] for r in rows if key in r]
    return float(np.nanmean(values)) if values else float("nan")


def ppo_rows(env_id: str, args: argparse.Namespace) -> list[tuple[str, float, float]]:
    """(setting, env steps/s, broadcast ms) for local and Ray PPO on `env_id`."""
    cfg = build_config(ppo.PPOConfig, {**ppo.ALGOS["ppo"], **PPO_CASES[env_id]})
    out = []
    spec = vec_spec(env_id)
    local = local_trainer("ppo", spec, cfg, 0)
    out.append(("local", timed(local, args.warmup, args.iterations)[0], float("nan")))
    for actors, lag in ((1, 0), (2, 0), (2, 1)):
        ray_cfg = RayConfig(address=args.address, actors=actors, max_lag=lag)
        learner = ray_trainer("ppo", spec, cfg, 0, torch.device("cpu"), ray_cfg)
        speed, rows = timed(learner, args.warmup, args.iterations)
        learner.close()
        out.append((f"ray, {actors} actor(s), max_lag {lag}", speed,
                    mean_of(rows, "time/broadcast_ms")))  # fmt: skip
    return out


def selfplay_rows(args: argparse.Namespace) -> list[tuple[str, float, float]]:
    """(setting, self-play moves/s, broadcast ms) for local and Ray AlphaZero self-play."""
    cfg = build_config(AlphaZeroConfig, AZ)
    spec = vec_spec("classic/connect_four-v0")
    local = local_trainer("alphazero", spec, cfg, 0)
    out = [("local", timed(local, 1, args.iterations)[0], float("nan"))]
    for inference in ("server", "local"):
        ray_cfg = RayConfig(address=args.address, actors=2, actor_cpus=0.5, inference=inference)
        learner = ray_trainer("alphazero", spec, cfg, 0, torch.device("cpu"), ray_cfg)
        speed, rows = timed(learner, 1, args.iterations)
        name = f"ray, 2 actors, inference {inference}"
        if learner.pool.servers:
            import ray

            served = ray.get(learner.pool.servers[0].stats.remote())
            name += f" (batch {served['positions'] / max(served['calls'], 1):.1f})"
        learner.close()
        out.append((name, speed, mean_of(rows, "time/broadcast_ms")))
    return out


def main() -> None:
    """Run every case and print the table."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--iterations", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--address", default=None, help="Ray cluster (default: start a local one)")
    p.add_argument("--skip-selfplay", action="store_true")
    p.add_argument("--skip-ppo", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(1)
    import ray

    if args.address is None:
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    load = os.getloadavg()
    print(f"cpus: {os.cpu_count()}  load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print("| workload | setting | steps/s | broadcast ms |\n|---|---|---|---|")
    cases = [(env_id, lambda e=env_id: ppo_rows(e, args)) for env_id in PPO_CASES]
    cases = [] if args.skip_ppo else cases
    if not args.skip_selfplay:
        cases.append(("alphazero self-play, connect four (moves/s)", lambda: selfplay_rows(args)))
    for name, run in cases:
        for setting, speed, ms in run():
            print(f"| {name} | {setting} | {speed:,.0f} | {ms:.2f} |", flush=True)
    load = os.getloadavg()
    print(f"load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
