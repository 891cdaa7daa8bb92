"""Dyna-Q against Q-learning on Sutton & Barto's Dyna maze (Example 8.1, Figure 8.2).

For each start value of the Q-table (the book's 0, and an optimistic 1 = the largest
return) and each n in (0, 5, 50) planning steps (n = 0 is Q-learning), every seed runs
tabular Dyna-Q one real step at a time (alpha 0.1, gamma 0.95, epsilon 0.1) and records
  * the steps of each of the first `--episodes` episodes (plotted, mean over seeds, as in
    Figure 8.2), and
  * the real env steps until the greedy policy first walks the 14-step shortest path
    ("steps to optimal"; a run that has not got there by `--max-steps` counts as
    `--max-steps`, a lower bound, and is reported as not reached).
Same seed, same first episode for every n: the acting and planning generators are separate.

    python benchmarks/dyna_maze.py --seeds 10 --episodes 50 --max-steps 30000
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import marl  # noqa: E402
from marl.core.spec import VecSpec
from marl.envs.families.maze import LAYOUTS, greedy_path_length, shortest_path_length  # noqa: E402
from marl.learners.tabular import TabularConfig, TabularLearner  # noqa: E402

ENV_ID = "maze/dyna_maze-v0"
MAZE = LAYOUTS["dyna_maze"]
PLANNING = (0, 5, 50)
INITIAL_Q = (0.0, 1.0)


def run_seed(planning_steps: int, initial_q: float, seed: int, episodes: int, max_steps: int):
    """(lengths of the first `episodes` episodes, real steps to optimal or None)."""
    config = TabularConfig(alpha=0.1, gamma=0.95, epsilon_start=0.1, epsilon_end=0.1,
                           planning_steps=planning_steps, initial_q=initial_q)  # fmt: skip
    env = marl.make_vec(ENV_ID, 1)
    learner = TabularLearner(VecSpec.of(env, ENV_ID), config, seed)
    carry = learner.start(env, seed)
    optimal, lengths, reached = shortest_path_length(MAZE), [], None
    while learner.env_steps < max_steps and (len(lengths) < episodes or reached is None):
        experience, carry = learner.collect(env, carry)
        learner.learn([experience])
        lengths.extend(experience.episode_lengths.tolist())
        if reached is None and greedy_path_length(MAZE, learner.q[0]) == optimal:
            reached = learner.env_steps
    env.close()
    return lengths[:episodes], reached


def summarize(name: str, reached: list[int | None], max_steps: int) -> float:
    """Print one row of the steps-to-optimal table; return the mean (misses = max_steps)."""
    steps = np.array([max_steps if r is None else r for r in reached])
    misses = sum(r is None for r in reached)
    print(f"  {name:<22} mean {steps.mean():8.0f}  median {np.median(steps):8.0f}  "
          f"not reached {misses}/{len(reached)}   per seed: {steps.tolist()}")  # fmt: skip
    return float(steps.mean())


def plot(curves: dict, episodes: int, seeds: int, path: str) -> None:
    """Steps per episode (mean over seeds) against episodes, one panel per initial Q."""
    fig, axes = plt.subplots(1, len(INITIAL_Q), figsize=(11, 4), sharey=True)
    for ax, initial_q in zip(axes, INITIAL_Q):
        for n in PLANNING:
            lengths = curves[initial_q, n]
            label = "Q-learning (n=0)" if n == 0 else f"Dyna-Q (n={n})"
            ax.plot(np.arange(2, episodes + 1), lengths[1:], label=label)
        ax.axhline(shortest_path_length(MAZE), color="grey", ls=":", lw=1, label="shortest (14)")
        title = "initial Q = 0 (the book)" if initial_q == 0 else "initial Q = 1 (optimistic)"
        ax.set(title=title, xlabel="episode", ylim=(0, 800))
        ax.legend()
    axes[0].set_ylabel(f"steps per episode (mean of {seeds} seeds)")
    fig.suptitle("Dyna maze (Sutton & Barto Example 8.1): alpha 0.1, gamma 0.95, epsilon 0.1")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    """Run every (initial Q, n, seed), print steps to optimal, save the plot."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--max-steps", type=int, default=30_000)
    parser.add_argument("--out", default="docs/dyna_maze.png")
    args = parser.parse_args()
    curves, means = {}, {}
    start = time.time()
    for initial_q in INITIAL_Q:
        print(f"real env steps until the greedy path is the 14-step optimum, initial Q {initial_q}")
        for n in PLANNING:
            results = [run_seed(n, initial_q, s, args.episodes, args.max_steps)
                       for s in range(args.seeds)]  # fmt: skip
            runs = [r[0] for r in results if len(r[0]) == args.episodes]
            curves[initial_q, n] = np.mean(runs, axis=0)
            name = "Q-learning" if n == 0 else f"Dyna-Q n={n}"
            means[initial_q, n] = summarize(name, [r[1] for r in results], args.max_steps)
        ratio = means[initial_q, 0] / means[initial_q, 50]
        print(f"  Q-learning / Dyna-Q n=50 real steps to optimal: {ratio:.1f}x\n")
    plot(curves, args.episodes, args.seeds, args.out)
    print(f"plot: {args.out}   ({time.time() - start:.0f} s)")
    print("reproduce: python benchmarks/dyna_maze.py " + shlex.join(sys.argv[1:]))


if __name__ == "__main__":
    main()
