"""Trajectories of one agent on a discrete-action env: play a policy, store episodes as a
demonstration file, cut them into equal segments for preferences.

A demonstration file (.npz) holds every step of E episodes end to end: `obs [M, O]`,
`actions [M]`, `rewards [M]` and `episode [M]` (which episode each step belongs to).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from marl.core.checkpoint import atomic_write_bytes
from marl.learners.rlhf.preferences import PreferenceError, SegmentSet, stack_segments


class Episode(NamedTuple):
    """One finished episode of a single agent."""

    obs: np.ndarray  # [E, O]
    actions: np.ndarray  # [E]
    rewards: np.ndarray  # [E]


class CartPoleHeuristic:
    """A hand-written CartPole controller: push right when angle + `velocity_gain` * angular
    velocity > 0. With gain 0 (pushing toward the side the pole leans) it is a weak
    demonstrator (about 38 steps an episode); with gain 0.5 it balances to the time limit."""

    def __init__(self, velocity_gain: float = 0.0):
        self.velocity_gain = velocity_gain

    def act(self, obs: Any, action_mask: Any, *, greedy: bool = True) -> np.ndarray:
        """obs [B, 1, 4] -> actions [B, 1] (0 left, 1 right)."""
        obs = np.asarray(obs)
        return (obs[..., 2] + self.velocity_gain * obs[..., 3] > 0).astype(np.int64)


def play(
    policy: Any, vec: Any, episodes: int, seed: int, epsilon: float = 0.0, greedy: bool = False
) -> list[Episode]:
    """`episodes` finished episodes of `policy` on `vec` (one agent), each action replaced by
    a uniform random one with probability `epsilon` (seeded by `seed`): the first ones to
    finish, so with lengths that vary they lean short (CartPole's hand-written controller,
    8 envs: 39.7 steps on average in batches of 8 against 42.4 over 200 episodes)."""
    if len(vec.agents) != 1:
        raise ValueError(f"{len(vec.agents)} agents: RLHF's control task takes one-agent envs")
    rng = np.random.default_rng(seed)
    step = vec.reset(seed=seed)
    running: list[list[tuple]] = [[] for _ in range(vec.num_envs)]
    done_episodes: list[Episode] = []
    while len(done_episodes) < episodes:
        actions = np.asarray(policy.act(step.obs, step.action_mask, greedy=greedy)).reshape(-1)
        mask = np.asarray(step.action_mask)[:, 0]
        explore = rng.random(len(actions)) < epsilon
        random_actions = np.array([rng.choice(np.flatnonzero(m)) for m in mask])
        actions = np.where(explore, random_actions, actions)
        obs = np.asarray(step.obs)[:, 0]
        step = vec.step(actions[:, None])
        for b in range(vec.num_envs):
            running[b].append((obs[b], actions[b], float(np.asarray(step.reward)[b, 0])))
            if step.done[b]:
                o, a, r = zip(*running[b])
                done_episodes.append(Episode(np.stack(o), np.array(a), np.array(r)))
                running[b] = []
    return done_episodes[:episodes]


def save_episodes(path: str | Path, episodes: Sequence[Episode]) -> Path:
    """Write episodes as a demonstration file (.npz, atomically)."""
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer,
        obs=np.concatenate([e.obs for e in episodes]).astype(np.float32),
        actions=np.concatenate([e.actions for e in episodes]).astype(np.int64),
        rewards=np.concatenate([e.rewards for e in episodes]).astype(np.float64),
        episode=np.concatenate([np.full(len(e.actions), i) for i, e in enumerate(episodes)]),
    )
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)


def load_episodes(path: str | Path) -> list[Episode]:
    """Read a demonstration file written by `save_episodes`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"no demonstration file at {path}: write one with `marl rlhf demos`"
        )
    try:
        data = np.load(path, allow_pickle=False)
    except (ValueError, OSError):  # numpy's own text would advise allow_pickle: never here
        raise ValueError(
            f"{path} is not a demonstration file: not a NumPy .npz archive (write one with "
            "`marl rlhf demos`)"
        ) from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise ValueError(f"{path} is not a demonstration file: one array, not an .npz archive")
    with data:
        missing = {"obs", "actions", "rewards", "episode"} - set(data.files)
        if missing:
            raise ValueError(f"{path} is not a demonstration file: it lacks {sorted(missing)}")
        cuts = np.flatnonzero(np.diff(data["episode"])) + 1
        parts = [np.split(data[k], cuts) for k in ("obs", "actions", "rewards")]
    return [Episode(*fields) for fields in zip(*parts)]


def cut_segments(episodes: Sequence[Episode], length: int, prefix: str = "seg") -> SegmentSet:
    """Each episode cut into consecutive segments of `length` steps; a last, shorter piece is
    padded with absorbing steps (alive False, reward 0). Ids are `<prefix>-<k>`."""
    if length < 1:
        raise PreferenceError(f"segment length {length}: expected >= 1")
    obs, actions, alive, rewards = [], [], [], []
    for ep in episodes:
        for start in range(0, len(ep.actions), length):
            n = min(length, len(ep.actions) - start)
            pad = length - n
            obs.append(np.pad(ep.obs[start : start + n], ((0, pad), (0, 0))))
            actions.append(np.pad(ep.actions[start : start + n], (0, pad)))
            alive.append(np.arange(length) < n)
            rewards.append(np.pad(ep.rewards[start : start + n], (0, pad)))
    ids = [f"{prefix}-{k}" for k in range(len(actions))]
    return stack_segments(ids, obs, actions, alive, rewards)


def join_segments(sets: Sequence[SegmentSet]) -> SegmentSet:
    """One segment set of several (ids must stay unique; lengths must match)."""
    return stack_segments(
        [i for s in sets for i in s.ids],
        [o for s in sets for o in s.obs],
        [a for s in sets for a in s.actions],
        [a for s in sets for a in s.alive],
        [r for s in sets for r in s.true_rewards],
    )
