"""Search trees kept across moves: regrown after each network update, or not kept at all?

Trees reused across moves hold priors and values from before the last update. marl regrows
them at the current roots whenever the net has changed (`reuse_tree=true`); the other
choice is no reuse (`reuse_tree=false`). This trains connect four both ways with the same
settings and seed for the same number of self-play moves, then plays each against
`pyspiel.MCTSBot` (random rollouts), colors alternating, and prints wins with the CPU time
of training (one torch thread) beside wall time and load:

    OMP_NUM_THREADS=1 python benchmarks/alphazero_reuse.py --iterations 40 --games 100
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from marl.algorithms import local_trainer, make_config
from marl.envs import vec_spec
from marl.search.strength import versus_mcts_bot

ENV_ID = "classic/connect_four-v0"
SETTINGS = {"num_games": 128, "search.simulations": 32, "moves_per_iteration": 8,
            "train_steps": 24, "batch_size": 256, "min_buffer": 2_048, "buffer_size": 50_000,
            "channels": 32, "blocks": 3}  # fmt: skip


def train(reuse: bool, iterations: int, seed: int) -> tuple[object, float, float, float]:
    """The trained learner, its training CPU and wall seconds, and the mean load average."""
    config = make_config("alphazero", {**SETTINGS, "search.reuse_tree": reuse})
    trainer = local_trainer("alphazero", vec_spec(ENV_ID), config, seed)
    cpu, wall, loads = time.process_time(), time.perf_counter(), []
    for _ in range(iterations):
        trainer.iterate()
        loads.append(os.getloadavg()[0])
    return (
        trainer.learner,
        time.process_time() - cpu,
        time.perf_counter() - wall,
        sum(loads) / len(loads),
    )


def main() -> None:
    """Train both ways, then print each one's strength against the rollout bot."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--iterations", type=int, default=40)
    p.add_argument("--games", type=int, default=100, help="games against the bot")
    p.add_argument("--simulations", type=int, default=200, help="our search per move")
    p.add_argument("--bot-simulations", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(1)
    for reuse in (True, False):
        learner, cpu, wall, load = train(reuse, args.iterations, args.seed)
        result = versus_mcts_bot(learner.player(args.simulations), args.games,
                                 args.bot_simulations, args.seed)  # fmt: skip
        name = "reuse, regrown after updates" if reuse else "no reuse"
        print(f"{name}: {result.summary()}; trained {learner.env_steps:,} moves in {cpu:.0f} s "
              f"CPU (1 thread), {wall:.0f} s wall, load avg {load:.1f}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
