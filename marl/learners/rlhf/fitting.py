"""The supervised fit loop RLHF's stages share: Adam over seeded, shuffled minibatches."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import Tensor, nn

from marl.core.seeding import torch_generator


def fit_minibatches(
    params: Iterable[nn.Parameter],
    size: int,
    batch_loss: Callable[[Tensor], Tensor],
    *,
    epochs: int,
    lr: float,
    batch: int,
    seed: int,
    max_grad_norm: float | None = None,
) -> tuple[float, float]:
    """Adam steps on `batch_loss(rows)` for `epochs` passes over `size` rows, shuffled by a
    generator seeded `seed`, in minibatches of `batch` rows (gradient norm clipped to
    `max_grad_norm` if given). Returns the last pass's loss summed over its rows (each
    minibatch's mean loss times its size) and the last minibatch's loss (0 if none ran)."""
    params = list(params)
    optimizer = torch.optim.Adam(params, lr=lr, foreach=True)
    gen = torch_generator(seed)
    total, last = 0.0, 0.0
    for _ in range(epochs):
        total = 0.0
        for rows in torch.randperm(size, generator=gen).split(batch):
            loss = batch_loss(rows)
            optimizer.zero_grad()
            loss.backward()
            if max_grad_norm is not None:
                nn.utils.clip_grad_norm_(params, max_grad_norm, foreach=True)
            optimizer.step()
            last = float(loss.detach())
            total += last * len(rows)
    return total, last
