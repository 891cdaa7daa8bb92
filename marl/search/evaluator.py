"""What search asks of a network: priors and values for a batch of positions, in one call."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Protocol

import torch
from torch import Tensor, nn


class Evaluator(Protocol):
    """Batch of observations + legal masks -> (priors [B, A], values [B]) from the side to move."""

    def __call__(self, obs: Tensor, legal: Tensor) -> tuple[Tensor, Tensor]:
        """obs [B, ...], legal [B, A] bool -> priors (0 where illegal), values in [-1, 1]."""
        ...


def masked_softmax(logits: Tensor, legal: Tensor) -> Tensor:
    """Softmax over the legal entries of each row; illegal entries get probability 0."""
    masked = logits.masked_fill(~legal, float("-inf"))
    return torch.softmax(masked, dim=-1).nan_to_num(0.0)


class UniformEvaluator:
    """Uniform priors over legal moves and a constant value (a network-free baseline for tests)."""

    def __init__(self, value: float = 0.0):
        self.value = value
        self.calls = 0
        self.positions = 0

    def __call__(self, obs: Tensor, legal: Tensor) -> tuple[Tensor, Tensor]:
        """Uniform priors, constant values; counts calls and positions asked about."""
        self.calls += 1
        self.positions += legal.shape[0]
        priors = legal.float() / legal.sum(-1, keepdim=True).clamp(min=1)
        return priors, torch.full((legal.shape[0],), self.value, device=legal.device)


def _forward(net: nn.Module, obs: Tensor) -> tuple[Tensor, Tensor]:
    return net(obs)


@functools.cache
def compiled_forward() -> Callable[[nn.Module, Tensor], tuple[Tensor, Tensor]]:
    """`net(obs)` under `torch.compile` with a dynamic batch size: made once per process, so
    every evaluator and player shares its graphs (a net of another shape or mode compiles
    anew; the parameters are inputs, so weight updates need no recompiling)."""
    return torch.compile(_forward, dynamic=True)


class NetEvaluator:
    """Wraps a policy/value net `net(obs) -> (logits [B, A], values [B])` as an Evaluator;
    with `torch_compile`, the forward runs compiled (`compiled_forward`)."""

    def __init__(self, net: nn.Module, torch_compile: bool = False):
        self.net = net
        self.forward = compiled_forward() if torch_compile else _forward

    @torch.inference_mode()
    def __call__(self, obs: Tensor, legal: Tensor) -> tuple[Tensor, Tensor]:
        """One forward pass in eval mode; priors are the masked softmax of the logits.

        A net left in training mode is switched to eval for the call and back (walking the
        modules costs about a tenth of a small net's search time, so learners leave theirs
        in eval mode between updates)."""
        if not self.net.training:
            logits, values = self.forward(self.net, obs)
        else:
            self.net.eval()
            try:
                logits, values = self.forward(self.net, obs)
            finally:
                self.net.train()
        return masked_softmax(logits.float(), legal), values.float()
