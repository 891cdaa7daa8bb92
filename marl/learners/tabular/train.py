"""A plain loop over `TabularLearner`'s own verbs (start, collect, learn) that keeps every
episode's length (the Dyna maze curves need them), and a greedy evaluator. `marl train
qlearning|dynaq` runs the same verbs through the shared `Trainer`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from marl.core.spec import VecSpec
from marl.envs.types import VecEnv
from marl.envs.vector import make_vec
from marl.learners.tabular.learner import TabularConfig, TabularLearner, TabularPolicy


@dataclass
class TabularRun:
    """What `train_tabular` hands back."""

    learner: TabularLearner
    env_steps: int  # real env steps taken
    episode_lengths: list[int] = field(default_factory=list)  # every finished episode, in order
    episode_returns: list[np.ndarray] = field(default_factory=list)  # [N] per finished episode
    stats: dict[str, float] = field(default_factory=dict)  # the last `learn`'s stats


def train_tabular(
    env_id: str,
    config: TabularConfig,
    steps: int,
    seed: int = 0,
    env_kwargs: dict[str, Any] | None = None,
    until: Callable[[TabularLearner], bool] | None = None,
) -> TabularRun:
    """Train on `env_id` for `steps` env steps, or until `until(learner)` holds after a learn.

    The envs are reset with `seed` (env b with seed + b) and the learner's generators are
    seeded from `seed`: same seed, same run.
    """
    env = make_vec(env_id, config.num_envs, **(env_kwargs or {}))
    try:
        learner = TabularLearner(VecSpec.of(env, env_id, env_kwargs), config, seed)
        carry = learner.start(env, seed)
        run = TabularRun(learner, 0)
        while learner.env_steps < steps:
            experience, carry = learner.collect(env, carry)
            run.stats = learner.learn([experience])
            run.episode_lengths.extend(experience.episode_lengths.tolist())
            run.episode_returns.extend(experience.episode_returns)
            if until is not None and until(learner):
                break
        run.env_steps = learner.env_steps
    finally:
        env.close()
    return run


def evaluate_tabular(
    policy: TabularPolicy, env: VecEnv, episodes: int, seed: int, greedy: bool = True
) -> np.ndarray:
    """Per-agent returns [E, N] of ceil(episodes / B) whole episodes in each of the B envs
    (a fixed count per env, so short episodes are not over-represented)."""
    quota = -(-episodes // env.num_envs)
    step = env.reset(seed)
    running = np.zeros(np.asarray(step.reward).shape)
    counts = np.zeros(env.num_envs, int)
    returns: list[np.ndarray] = []
    while counts.min() < quota:
        step = env.step(policy.act(step.obs, step.action_mask, greedy=greedy))
        running += np.asarray(step.reward)
        for b in np.flatnonzero(np.asarray(step.done)):
            if counts[b] < quota:
                returns.append(running[b].copy())
                counts[b] += 1
            running[b] = 0.0
    return np.stack(returns)
