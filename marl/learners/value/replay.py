"""Replay: a sum tree for proportional prioritization and one buffer of named tensors.

The same `ReplayBuffer` stores whole episode segments (recurrent learners: an item is a
sequence [T, N, ...], prioritized per episode) or single n-step transitions (feed-forward
learners such as DQN: an item is one transition, prioritized per transition); only the
field layout differs (`episode_fields`, `transition_fields`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

FieldSpec = dict[str, tuple[tuple[int, ...], torch.dtype]]


class SumTree:
    """Binary tree of non-negative priorities: O(log n) updates and prefix-sum sampling."""

    def __init__(self, capacity: int):
        if capacity < 1:
            raise ValueError(f"SumTree capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self.leaves = 1 << max(0, (capacity - 1).bit_length())  # power of two >= capacity
        self.tree = np.zeros(2 * self.leaves, dtype=np.float64)  # node i: children 2i, 2i+1

    @property
    def total(self) -> float:
        """Sum of all priorities."""
        return float(self.tree[1])

    def get(self, indices: np.ndarray) -> np.ndarray:
        """Priorities of the items at `indices`."""
        return self.tree[self.leaves + np.asarray(indices)]

    def update(self, indices: np.ndarray, priorities: np.ndarray) -> None:
        """Set the priorities of items `indices` and recompute their ancestors' sums."""
        indices = np.asarray(indices, dtype=np.int64)
        priorities = np.asarray(priorities, dtype=np.float64)
        if indices.size and (indices.min() < 0 or indices.max() >= self.capacity):
            raise IndexError(f"SumTree indices must lie in [0, {self.capacity})")
        if np.any(priorities < 0) or not np.all(np.isfinite(priorities)):
            raise ValueError("SumTree priorities must be finite and >= 0")
        nodes = self.leaves + indices
        self.tree[nodes] = priorities
        while nodes.size and nodes[0] > 1:
            nodes = np.unique(nodes // 2)
            self.tree[nodes] = self.tree[2 * nodes] + self.tree[2 * nodes + 1]

    def find(self, values: np.ndarray) -> np.ndarray:
        """For each value in [0, total), the item whose cumulative-priority interval holds it."""
        values = np.array(values, dtype=np.float64)
        nodes = np.ones(values.shape, dtype=np.int64)
        for _ in range(self.leaves.bit_length() - 1):  # the tree's depth
            left = 2 * nodes
            go_right = values >= self.tree[left]
            values = values - np.where(go_right, self.tree[left], 0.0)
            nodes = left + go_right
        return np.minimum(nodes - self.leaves, self.capacity - 1)

    def sample(self, count: int, rng: np.random.Generator) -> np.ndarray:
        """Draw `count` items independently with probability priority / total."""
        if self.total <= 0:
            raise ValueError("cannot sample from a SumTree whose priorities are all 0")
        return self.find(rng.random(count) * self.total)


def episode_fields(
    horizon: int, n_agents: int, obs_dim: int, state_dim: int, num_actions: int
) -> FieldSpec:
    """Layout of one stored episode segment of up to `horizon` steps (obs has horizon + 1)."""
    t1, n = horizon + 1, n_agents
    return {
        "obs": ((t1, n, obs_dim), torch.float32),
        "state": ((t1, state_dim), torch.float32),
        "action_mask": ((t1, n, num_actions), torch.bool),
        "alive": ((t1, n), torch.bool),
        "prev_action": ((t1, n), torch.long),
        "actions": ((horizon, n), torch.long),
        "rewards": ((horizon, n), torch.float32),
        "terminated": ((horizon,), torch.bool),
        "filled": ((horizon,), torch.bool),
    }


def transition_fields(n_agents: int, obs_dim: int, state_dim: int, num_actions: int) -> FieldSpec:
    """Layout of one stored n-step transition (already-summed returns and discount)."""
    n = n_agents
    return {
        "obs": ((n, obs_dim), torch.float32),
        "state": ((state_dim,), torch.float32),
        "alive": ((n,), torch.bool),
        "actions": ((n,), torch.long),
        "returns": ((n,), torch.float32),
        "discount": ((), torch.float32),
        "next_obs": ((n, obs_dim), torch.float32),
        "next_state": ((state_dim,), torch.float32),
        "next_action_mask": ((n, num_actions), torch.bool),
        "next_alive": ((n,), torch.bool),
    }


class ReplayBuffer:
    """Ring buffer of items made of named tensors, sampled uniformly or by priority.

    Prioritized (Schaul et al. 2016, proportional): P(i) = p_i^alpha / sum_j p_j^alpha, new
    items get the largest priority seen so far, and samples carry importance weights
    (size * P(i))^-beta divided by the batch's largest weight.
    """

    def __init__(
        self,
        fields: FieldSpec,
        capacity: int,
        prioritized: bool = False,
        alpha: float = 0.6,
        eps: float = 1e-6,
    ):
        if capacity < 1:
            raise ValueError(f"replay capacity must be >= 1, got {capacity}")
        self.fields = fields
        self.capacity = capacity
        self.data = {
            k: torch.zeros((capacity, *shape), dtype=dt) for k, (shape, dt) in fields.items()
        }
        self.tree = SumTree(capacity) if prioritized else None
        self.alpha, self.eps = alpha, eps
        self.max_priority = 1.0
        self.pos = 0
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def add(self, items: dict[str, Any]) -> np.ndarray:
        """Append k items (each field [k, ...]); return where they were written."""
        missing = set(self.fields) - set(items)
        if missing:
            raise KeyError(
                f"replay items lack fields {sorted(missing)}; expected {list(self.fields)}"
            )
        count = len(items["obs"])
        slots = (self.pos + np.arange(count)) % self.capacity
        index = torch.as_tensor(slots)
        for key, store in self.data.items():
            store[index] = torch.as_tensor(np.asarray(items[key])).to(store.dtype)
        if self.tree is not None:
            self.tree.update(slots, np.full(count, self.max_priority**self.alpha))
        self.pos = int((self.pos + count) % self.capacity)
        self.size = min(self.size + count, self.capacity)
        return slots

    def sample(
        self, batch_size: int, rng: np.random.Generator, beta: float = 0.4
    ) -> tuple[np.ndarray, Tensor, dict[str, Tensor]]:
        """Draw a batch: (indices, importance weights [batch], fields {name: [batch, ...]})."""
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        if self.tree is None:
            indices = rng.integers(0, self.size, size=batch_size)
            weights = torch.ones(batch_size)
        else:
            indices = np.minimum(self.tree.sample(batch_size, rng), self.size - 1)
            probs = self.tree.get(indices) / self.tree.total
            raw = (self.size * probs) ** (-beta)
            weights = torch.as_tensor(raw / raw.max(), dtype=torch.float32)
        index = torch.as_tensor(indices)
        return indices, weights, {k: v[index] for k, v in self.data.items()}

    def update_priorities(self, indices: np.ndarray, td_abs: np.ndarray) -> None:
        """Set priorities from absolute TD errors (no-op for a uniform buffer)."""
        if self.tree is None:
            return
        priorities = np.asarray(td_abs, dtype=np.float64) + self.eps
        self.max_priority = max(self.max_priority, float(priorities.max()))
        self.tree.update(indices, priorities**self.alpha)

    def state_dict(self) -> dict[str, Any]:
        """Filled contents, priorities and pointers as tensors and plain values."""
        state: dict[str, Any] = {f"data.{k}": v[: self.size].clone() for k, v in self.data.items()}
        state.update(pos=self.pos, size=self.size, max_priority=self.max_priority)
        if self.tree is not None:
            state["priorities"] = torch.from_numpy(self.tree.get(np.arange(self.size)).copy())
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` returned (into a buffer of the same layout)."""
        size = int(state["size"])
        if size > self.capacity:
            raise ValueError(f"saved replay holds {size} items but capacity is {self.capacity}")
        for key, store in self.data.items():
            saved = state[f"data.{key}"]
            if tuple(saved.shape[1:]) != tuple(store.shape[1:]):
                raise ValueError(
                    f"saved replay field {key!r} has item shape {tuple(saved.shape[1:])}, "
                    f"this buffer expects {tuple(store.shape[1:])}"
                )
            store.zero_()
            store[:size] = saved
        self.pos, self.size = int(state["pos"]), size
        self.max_priority = float(state["max_priority"])
        if self.tree is not None:
            self.tree = SumTree(self.capacity)
            self.tree.update(np.arange(size), state["priorities"].numpy())
