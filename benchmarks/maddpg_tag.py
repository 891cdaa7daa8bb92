"""MADDPG on simple_tag: how often the predators catch the prey, and each side's return.

Protocol: `mpe/simple_tag-v3` (3 adversaries, 1 good agent, 2 obstacles, max_cycles 25,
discrete actions, the Gumbel-softmax straight-through relaxation), budget in env steps;
both teams learn at once with MADDPG (one actor and one centralized critic per team). Then
100 fresh GREEDY episodes (eval seed 10000). An adversary is paid +10 for every step on
which some adversary touches the prey (no shaping), so the catches in an episode are an
adversary's return / 10. Reported: mean catches per episode, the fraction of episodes with
at least one catch, and each team's mean per-agent return.

    OMP_NUM_THREADS=1 python benchmarks/maddpg_tag.py --steps 100000
"""

from __future__ import annotations

import argparse

from _offpolicy import train_and_evaluate

ENV_ID = "mpe/simple_tag-v3"
ENV_KWARGS = {"max_cycles": 25}
CONFIG = dict(hidden=(64, 64), num_envs=8, rollout_steps=25, backend="batched",
              updates_per_step=0.05, batch_size=512, buffer_size=200_000,
              learning_starts=5_000, gamma=0.95, tau=0.01)  # fmt: skip


def main() -> None:
    """Train, evaluate, print the catch rate and both sides' returns."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    result, returns = train_and_evaluate("maddpg", ENV_ID, ENV_KWARGS, CONFIG, args.steps,
                                         args.seed, 100, 10_000)  # fmt: skip
    catches = returns[:, 0] / 10.0  # adversary_0's return: +10 per catching step
    print(result.describe())
    print(f"catches per episode {catches.mean():.2f}, episodes with a catch "
          f"{(catches > 0).mean():.0%}, adversary return {returns[:, :3].mean():.2f}, "
          f"prey return {returns[:, 3].mean():.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
