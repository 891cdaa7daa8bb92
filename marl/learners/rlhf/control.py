"""The control task's stages, each a function of files and settings: demonstrations, SFT,
segments, synthetic labels and the reward model (PPO is `marl train rlhf_ppo`).

`marl rlhf` calls these one stage at a time; `benchmarks/rlhf_cartpole.py` chains them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from marl.core.checkpoint import load_checkpoint
from marl.core.seeding import child_seed
from marl.envs.vector import make_vec, vec_spec
from marl.learners.ppo.config import PPOConfig
from marl.learners.ppo.learner import PPOLearner
from marl.learners.ppo.nets import ActorPolicy
from marl.learners.rlhf import preferences as prefs
from marl.learners.rlhf import reward_model, sft
from marl.learners.rlhf.trajectories import (
    CartPoleHeuristic,
    Episode,
    cut_segments,
    join_segments,
    play,
)

EXPERTS = {"gym/CartPole-v1": CartPoleHeuristic}
"""Envs with a built-in demonstrator (a weak hand-written controller)."""


def demonstrations(env_id: str, episodes: int, epsilon: float, seed: int) -> list[Episode]:
    """Episodes of the env's built-in demonstrator, acting at random with prob. `epsilon`."""
    if env_id not in EXPERTS:
        raise ValueError(f"no built-in demonstrator for {env_id!r}; known: {', '.join(EXPERTS)}")
    vec = make_vec(env_id, 8)
    try:
        return play(EXPERTS[env_id](), vec, episodes, seed, epsilon)
    finally:
        vec.close()


def policy_net(env_id: str, hidden: Sequence[int], seed: int) -> Any:
    """A fresh PPO actor-critic for `env_id` (what SFT trains and `rlhf_ppo` loads)."""
    return PPOLearner(vec_spec(env_id), PPOConfig(hidden=tuple(hidden)), seed).net


def train_sft(
    env_id: str, episodes: Sequence[Episode], hidden: Sequence[int], epochs: int, seed: int
) -> tuple[Any, dict[str, float]]:
    """Behaviour-clone `episodes` into a fresh policy net; (net, stats)."""
    net = policy_net(env_id, hidden, seed)
    return net, sft.clone(net, episodes, epochs=epochs, seed=child_seed(seed, 1))


def sft_policy(env_id: str, path: str | Path) -> ActorPolicy:
    """The policy of an SFT file."""
    hidden = sft_hidden(path)
    net = policy_net(env_id, hidden, 0)
    sft.load_into(net, path, env_id, f"{env_id} with hidden={hidden}")
    return ActorPolicy(net)


def sft_hidden(path: str | Path) -> list[int]:
    """The hidden sizes an SFT file's net was built with."""
    return list(load_checkpoint(path, algo=sft.KIND)["config"]["hidden"])


def segments(
    env_id: str,
    policy: Any,
    epsilons: Sequence[float],
    episodes: int,
    length: int,
    seed: int,
    prefix: str = "",
) -> prefs.SegmentSet:
    """Segments of `length` from `episodes` sampled episodes of `policy` at each exploration
    rate in `epsilons` (varied behaviour gives informative comparisons); ids start with
    `prefix`, so that sets of another round can be joined to this one."""
    vec = make_vec(env_id, 8)
    try:
        parts = [
            cut_segments(
                play(policy, vec, episodes, child_seed(seed, k), eps), length, f"{prefix}e{k}"
            )
            for k, eps in enumerate(epsilons)
        ]
    finally:
        vec.close()
    return join_segments(parts)


def synthetic(
    segment_set: prefs.SegmentSet, pairs: int, temperature: float, seed: int
) -> list[prefs.Preference]:
    """`pairs` random comparisons labelled by the synthetic annotator at `temperature`."""
    rng = np.random.default_rng(seed)
    chosen = prefs.random_pairs(segment_set.ids, pairs, rng)
    return prefs.synthetic_labels(chosen, segment_set.true_returns(), temperature, rng)


def train_reward(
    env_id: str,
    segment_set: prefs.SegmentSet,
    labels: Sequence[prefs.Preference],
    hidden: Sequence[int],
    epochs: int,
    seed: int,
) -> tuple[reward_model.StepRewardModel, dict[str, float]]:
    """A reward model of `env_id`'s obs/action space fitted to `labels`; (model, stats)."""
    spec = vec_spec(env_id)
    num_actions = int(spec.action_spaces[0].n)
    if segment_set.obs.shape[-1] != spec.obs_dim:
        raise prefs.PreferenceError(
            f"segments have {segment_set.obs.shape[-1]} observation features; {env_id} has "
            f"{spec.obs_dim}"
        )
    model = reward_model.StepRewardModel(spec.obs_dim, num_actions, hidden, seed)
    return model, reward_model.fit(model, segment_set, labels, epochs=epochs, seed=seed)
