"""From the vector env's flat observation rows to one table row (a state index) per agent.

The vector layer one-hot flattens a Discrete(n) observation, so its state is the argmax of
the first n entries. A 0/1 vector (MultiBinary(d), or Box(0, 1, (d,)) like the matrix games'
one-hot history) is read as a d-bit number: 2**d states. Anything else has no finite table.
"""

from __future__ import annotations

import gymnasium
import numpy as np
from gymnasium.spaces import Box, Discrete, MultiBinary


def _is_binary_box(space: gymnasium.Space) -> bool:
    return (
        isinstance(space, Box)
        and len(space.shape) == 1
        and bool(np.all(space.low == 0))
        and bool(np.all(space.high == 1))
    )


def num_states(space: gymnasium.Space) -> int | None:
    """Rows a Q-table needs for observations in `space`, or None if they are not finite."""
    if isinstance(space, Discrete):
        return int(space.n)
    if isinstance(space, MultiBinary) and len(space.shape) == 1 or _is_binary_box(space):
        return 2 ** int(space.shape[0])
    return None


class StateIndex:
    """Maps observation rows [B, N, O] to state indices [B, N], one table per agent."""

    def __init__(self, spaces: list[gymnasium.Space], agents: list[str], env_id: str, limit: int):
        self.sizes: list[int] = []
        self.binary: list[bool] = []
        for agent, space in zip(agents, spaces):
            size = num_states(space)
            if size is None or size > limit:
                why = "is not finite" if size is None else f"has {size} states (> {limit})"
                raise ValueError(
                    f"tabular learning needs Discrete observations: {env_id} gives {agent} "
                    f"observations in {space}, which {why}. Use an env with a Discrete "
                    "observation space (or a 0/1 vector of at most log2(max_states) entries), "
                    "or a function-approximation learner (DQN, PPO)"
                )
            self.sizes.append(size)
            self.binary.append(not isinstance(space, Discrete))
        self.widths = [
            int(np.log2(n)) if bit else n for n, bit in zip(self.sizes, self.binary, strict=True)
        ]

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """obs [B, N, O] float -> [B, N] int64 state indices."""
        obs = np.asarray(obs)
        out = np.empty(obs.shape[:2], np.int64)
        for i, (width, bit) in enumerate(zip(self.widths, self.binary)):
            part = obs[:, i, :width]
            if bit:
                if np.any((part != 0) & (part != 1)):
                    raise ValueError(f"agent {i}'s observation is not a 0/1 vector: {part}")
                out[:, i] = part.astype(np.int64) @ (1 << np.arange(width, dtype=np.int64))
            else:
                out[:, i] = part.argmax(axis=-1)
        return out
