"""Self-play samples (observation, search policy, outcome) in a ring buffer of tensors."""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor


class Batch(NamedTuple):
    """A minibatch of self-play positions."""

    obs: Tensor  # [M, C, H, W] planes from the side to move
    policy: Tensor  # [M, A] search policy (visit shares or Gumbel's improved policy)
    value: Tensor  # [M] final result from the side to move's view: +1 win, -1 loss, 0 draw


class ReplayBuffer:
    """The newest `capacity` samples; stored as tensors so `state_dict` is weights_only-safe."""

    def __init__(self, capacity: int, obs_shape: tuple[int, ...], num_actions: int):
        self.capacity = capacity
        self.obs = torch.zeros(capacity, *obs_shape)
        self.policy = torch.zeros(capacity, num_actions)
        self.value = torch.zeros(capacity)
        self.size = 0
        self.next = 0

    def add(self, obs: Tensor, policy: Tensor, value: Tensor) -> None:
        """Append samples, overwriting the oldest once full."""
        n = len(obs)
        if n > self.capacity:
            obs, policy, value = (
                obs[-self.capacity :],
                policy[-self.capacity :],
                value[-self.capacity :],
            )
            n = self.capacity
        slots = (self.next + torch.arange(n)) % self.capacity
        self.obs[slots] = obs.float().cpu()
        self.policy[slots] = policy.float().cpu()
        self.value[slots] = value.float().cpu()
        self.next = (self.next + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def sample(self, batch_size: int, gen: torch.Generator) -> Batch:
        """`batch_size` samples drawn uniformly with replacement."""
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        idx = torch.randint(0, self.size, (batch_size,), generator=gen)
        return Batch(self.obs[idx], self.policy[idx], self.value[idx])

    def state_dict(self) -> dict[str, Any]:
        """Filled part of the buffer plus its write position (tensors and ints)."""
        return {
            "obs": self.obs[: self.size].clone(),
            "policy": self.policy[: self.size].clone(),
            "value": self.value[: self.size].clone(),
            "next": self.next,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` returned."""
        n = len(state["value"])
        if n > self.capacity:
            raise ValueError(
                f"checkpoint buffer holds {n} samples, more than capacity {self.capacity}"
            )
        self.obs[:n], self.policy[:n], self.value[:n] = (
            state["obs"],
            state["policy"],
            state["value"],
        )
        self.size, self.next = n, int(state["next"])


def augment(game: Any, batch: Batch, gen: torch.Generator) -> Batch:
    """Each sample under a random board symmetry (mirror for connect four, D4 for tic-tac-toe);
    unchanged for a game that names no symmetries (OpenSpiel games)."""
    if not hasattr(game, "symmetries"):
        return batch
    cells = torch.stack(game.symmetries())  # [S, rows * cols]
    moves = torch.stack([game.action_permutation(c) for c in cells])  # [S, A]
    pick = torch.randint(0, len(cells), (len(batch.value),), generator=gen)
    flat = batch.obs.flatten(2)  # [M, C, rows * cols]
    obs = flat.gather(2, cells[pick][:, None, :].expand_as(flat)).view_as(batch.obs)
    return Batch(obs, batch.policy.gather(1, moves[pick]), batch.value)
