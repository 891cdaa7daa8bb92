"""CPU per env step of gymnasium envs: marl's sync vector env against gymnasium's own.

    python benchmarks/gym_env_step.py            # CartPole, FrozenLake, Pendulum, 8 envs

For each env, the same random actions (seed 0) step B copies in three ways, one after the
other in this process, best of `--repeats` passes of `--steps` steps each:

- marl: `marl.make_vec(id, B)` (a `SyncVecEnv`: action checks, flattened observations,
  masks, state, autoreset with `final_obs`), and the same with `check_actions=False` (what
  a learner's worker steps: its actions come from its own policy);
- gymnasium: `gymnasium.vector.SyncVectorEnv` (what SB3-style code steps), autoreset
  next-step;
- raw: a Python loop over B `gymnasium.make` envs, reset by hand (the floor).

gymnasium's vector env autoresets on the step after an episode ends (that step only
resets), marl's and the loop on the same step: on short episodes (FrozenLake) this favours
gymnasium's figure.

Prints microseconds of this process's CPU per env step and marl's ratios to gymnasium's.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

import gymnasium
import numpy as np

import marl

ENVS = ("CartPole-v1", "FrozenLake-v1", "Pendulum-v1")


def _actions(space: gymnasium.Space, steps: int, envs: int) -> np.ndarray:
    """[steps, envs, *action] random actions of `space`, seed 0."""
    rng = np.random.default_rng(0)
    if isinstance(space, gymnasium.spaces.Discrete):
        return rng.integers(0, int(space.n), (steps, envs))
    return rng.uniform(space.low, space.high, (steps, envs, *space.shape)).astype(space.dtype)


def _cpu_per_step(run: Callable[[], None], steps: int, envs: int, repeats: int) -> float:
    """Best microseconds of CPU per env step over `repeats` calls of `run`."""
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        run()
        best = min(best, time.process_time() - start)
    return best / (steps * envs) * 1e6


def measure(gym_id: str, envs: int, steps: int, repeats: int) -> dict[str, float]:
    """us of CPU per env step: marl's SyncVecEnv (checked and not), gymnasium's
    SyncVectorEnv, a raw loop."""
    vec = marl.make_vec(f"gym/{gym_id}", envs, seed=0)
    unchecked = marl.make_vec(f"gym/{gym_id}", envs, seed=0, check_actions=False)
    space = vec.action_spaces[0]
    acts = _actions(space, steps, envs)
    marl_acts = acts[:, :, None] if acts.ndim == 2 else acts[:, :, None, :]
    sync = gymnasium.vector.SyncVectorEnv([lambda: gymnasium.make(gym_id)] * envs)
    sync.reset(seed=0)
    raw = [gymnasium.make(gym_id) for _ in range(envs)]
    for b, env in enumerate(raw):
        env.reset(seed=b)

    def loop() -> None:
        for row in acts:
            for env, action in zip(raw, row):
                _, _, terminated, truncated, _ = env.step(
                    int(action) if np.ndim(action) == 0 else action
                )
                if terminated or truncated:
                    env.reset()

    timings = {
        "marl": _cpu_per_step(lambda: [vec.step(a) for a in marl_acts], steps, envs, repeats),
        "unchecked": _cpu_per_step(
            lambda: [unchecked.step(a) for a in marl_acts], steps, envs, repeats
        ),
        "gymnasium": _cpu_per_step(lambda: [sync.step(a) for a in acts], steps, envs, repeats),
        "raw": _cpu_per_step(loop, steps, envs, repeats),
    }
    for env in (vec, unchecked, sync, *raw):
        env.close()
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", type=int, default=8)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"{args.envs} envs, {args.steps} steps, best of {args.repeats}; load average "
          f"{os.getloadavg()[0]:.2f}; us of CPU per env step")  # fmt: skip
    print("| env | marl SyncVecEnv | unchecked (learners) | gymnasium SyncVectorEnv | raw loop | "
          "marl / gymnasium | unchecked / gymnasium |\n|---|--:|--:|--:|--:|--:|--:|")  # fmt: skip
    for gym_id in ENVS:
        us = measure(gym_id, args.envs, args.steps, args.repeats)
        print(f"| {gym_id} | {us['marl']:.1f} | {us['unchecked']:.1f} | {us['gymnasium']:.1f} | "
              f"{us['raw']:.1f} | {us['marl'] / us['gymnasium']:.2f} | "
              f"{us['unchecked'] / us['gymnasium']:.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
