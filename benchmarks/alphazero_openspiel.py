"""AlphaZero on connect four: marl's batched rules against OpenSpiel's own rules.

`classic/connect_four-v0` steps B boards as one tensor; `openspiel/connect_four` steps B
pyspiel states one by one in Python (the network still gets one batched call per simulation
step), and has no board symmetries to augment samples with. Both train with the settings of
`envs/alphazero_connect_four.toml` and the same seed for `--iterations` iterations (the run
file's full budget is 168), then play `--games` games against `pyspiel.MCTSBot` with 1,000
random-rollout simulations per move, colors alternating. Printed: training CPU seconds per
iteration (one torch thread) beside wall time and load, and the wins.

    OMP_NUM_THREADS=1 python benchmarks/alphazero_openspiel.py --iterations 4 --games 0
    OMP_NUM_THREADS=1 python benchmarks/alphazero_openspiel.py --iterations 168 --games 100
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import tomllib
import torch

from marl.algorithms import local_trainer, make_config
from marl.envs import vec_spec
from marl.search.strength import versus_mcts_bot

RUN_FILE = Path(__file__).resolve().parents[1] / "envs" / "alphazero_connect_four.toml"
RULES = {"native": "classic/connect_four-v0", "openspiel": "openspiel/connect_four"}


def main() -> None:
    """Train on both rules, print CPU per iteration and strength against the rollout bot."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--iterations", type=int, default=4)
    p.add_argument("--games", type=int, default=0, help="games against the bot (0: none)")
    p.add_argument("--simulations", type=int, default=1600, help="our search per move")
    p.add_argument("--rules", nargs="+", default=list(RULES), choices=list(RULES))
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(1)
    settings = tomllib.loads(RUN_FILE.read_text())["config"]
    for rules in args.rules:
        trainer = local_trainer("alphazero", vec_spec(RULES[rules]),
                                make_config("alphazero", settings), args.seed)  # fmt: skip
        cpu, wall, loads = time.process_time(), time.perf_counter(), []
        for _ in range(args.iterations):
            trainer.iterate()
            loads.append(os.getloadavg()[0])
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        line = (f"{rules:9s} {args.iterations} iterations ({trainer.learner.env_steps:,} moves): "
                f"{cpu / args.iterations:.1f} s CPU/iteration, {wall:.0f} s wall, "
                f"load {sum(loads) / len(loads):.1f}")  # fmt: skip
        if args.games:
            player = trainer.learner.player(args.simulations)
            line += "; " + versus_mcts_bot(player, args.games, 1000, args.seed).summary()
        print(line, flush=True)


if __name__ == "__main__":
    main()
