"""Replay of whole sequences for a recurrent world model: one ring buffer per env stream.

Each of the B envs a worker steps writes its own stream, so a sampled window is always
consecutive steps of one env. A step is stored in DreamerV3's layout: the observation, the
action that led to it (zero at an episode's first step), the reward received on arriving,
`is_first` and `terminal`. An episode's last observation (the final one of a finished
episode) is stored as its own step, and the next episode starts with `is_first`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from marl.learners.value.replay import FieldSpec


def step_fields(obs_dim: int, action_dim: int, pixels: bool) -> FieldSpec:
    """Layout of one stored step (pixel observations as uint8 to save 4x memory)."""
    return {
        "obs": ((obs_dim,), torch.uint8 if pixels else torch.float32),
        "action": ((action_dim,), torch.float32),
        "reward": ((), torch.float32),
        "is_first": ((), torch.bool),
        "terminal": ((), torch.bool),
    }


class SequenceReplay:
    """`streams` ring buffers of `capacity` steps each; windows of `length` consecutive steps."""

    def __init__(self, fields: FieldSpec, streams: int, capacity: int):
        if streams < 1 or capacity < 1:
            raise ValueError(f"SequenceReplay needs streams >= 1 and capacity >= 1, got "
                             f"{streams} and {capacity}")  # fmt: skip
        self.fields, self.capacity = fields, capacity
        self.data = {
            k: torch.zeros((streams, capacity, *shape), dtype=dt)
            for k, (shape, dt) in fields.items()
        }
        self.pos = np.zeros(streams, dtype=np.int64)
        self.size = np.zeros(streams, dtype=np.int64)

    def __len__(self) -> int:
        return int(self.size.sum())

    def add(self, stream: int, items: dict[str, Any]) -> None:
        """Append k steps (each field [k, ...]) to `stream`."""
        count = len(items["obs"])
        slots = torch.as_tensor((self.pos[stream] + np.arange(count)) % self.capacity)
        for key, store in self.data.items():
            store[stream, slots] = torch.as_tensor(np.asarray(items[key])).to(store.dtype)
        self.pos[stream] = (self.pos[stream] + count) % self.capacity
        self.size[stream] = min(self.size[stream] + count, self.capacity)

    def can_sample(self, length: int) -> bool:
        """Whether some stream holds a window of `length` steps."""
        return bool((self.size >= length).any())

    def sample(self, batch: int, length: int, rng: np.random.Generator) -> dict[str, Tensor]:
        """`batch` windows of `length` consecutive steps, each field [length, batch, ...]."""
        ready = np.flatnonzero(self.size >= length)
        if not len(ready):
            raise ValueError(f"no stream holds {length} steps yet (sizes {self.size.tolist()})")
        streams = rng.choice(ready, size=batch)
        sizes = self.size[streams]
        offsets = rng.integers(0, sizes - length + 1)
        oldest = np.where(sizes == self.capacity, self.pos[streams], 0)
        steps = (oldest + offsets)[:, None] + np.arange(length)
        rows, cols = torch.as_tensor(streams)[:, None], torch.as_tensor(steps % self.capacity)
        return {k: v[rows, cols].transpose(0, 1) for k, v in self.data.items()}

    def state_dict(self) -> dict[str, Any]:
        """Contents and pointers as tensors (checkpoint-safe)."""
        state: dict[str, Any] = {f"data.{k}": v.clone() for k, v in self.data.items()}
        return state | {"pos": torch.as_tensor(self.pos), "size": torch.as_tensor(self.size)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` returned (into a replay of the same layout)."""
        for key, store in self.data.items():
            saved = state[f"data.{key}"]
            if saved.shape != store.shape:
                raise ValueError(f"saved replay field {key!r} has shape {tuple(saved.shape)}, "
                                 f"this replay expects {tuple(store.shape)}")  # fmt: skip
            store.copy_(saved)
        self.pos = state["pos"].numpy().copy()
        self.size = state["size"].numpy().copy()
