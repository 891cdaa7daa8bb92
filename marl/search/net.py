"""The AlphaZero policy/value network: a small residual tower with two heads."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn


def gradient_step(
    net: nn.Module, optimizer: torch.optim.Optimizer, objective: Callable[[], tuple[Tensor, dict]]
) -> dict:
    """One optimizer step on `objective()` (the loss and its stats) with `net` in training
    mode; the net goes back to eval mode, in which search evaluates it until the next step."""
    net.train()
    total, stats = objective()
    optimizer.zero_grad()
    total.backward()
    optimizer.step()
    net.eval()
    return stats


def conv_bn_relu(in_channels: int, channels: int) -> nn.Sequential:
    """A 3x3 conv (no bias), batch norm, ReLU: the first layer of every tower."""
    return nn.Sequential(
        nn.Conv2d(in_channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels),
        nn.ReLU(),
    )  # fmt: skip


def plane_head(
    channels: int, planes: int, cells: int, outputs: int, width: int = 0
) -> nn.Sequential:
    """1x1 conv to `planes` planes, flattened, then a linear layer (with a hidden layer of
    `width` if given): AlphaZero's policy and value heads, and MuZero's."""
    layers: list[nn.Module] = [
        nn.Conv2d(channels, planes, 1, bias=False), nn.BatchNorm2d(planes), nn.ReLU(),
        nn.Flatten(),
    ]  # fmt: skip
    if width:
        layers += [nn.Linear(planes * cells, width), nn.ReLU(), nn.Linear(width, outputs)]
    else:
        layers.append(nn.Linear(planes * cells, outputs))
    return nn.Sequential(*layers)


class ResidualBlock(nn.Module):
    """conv-BN-ReLU-conv-BN plus the input, then ReLU."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
        )
        self.act = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        """x [B, C, H, W] -> same shape."""
        return self.act(x + self.body(x))


class GlobalPoolingBlock(ResidualBlock):
    """A residual block whose middle activations get a per-channel bias computed from the
    board-wide mean and max of a quarter of them (KataGo's global pooling): every cell sees a
    summary of the whole board in one layer, however small the convolutions' reach."""

    MIDDLE = 3
    """`body[:MIDDLE]` is conv-BN-ReLU: the activations that get the bias."""

    def __init__(self, channels: int) -> None:
        super().__init__(channels)
        self.pooled = max(1, channels // 4)
        self.bias = nn.Linear(2 * self.pooled, channels)
        # the two halves of `body`, sliced once (a tuple: not registered twice)
        self.halves = (self.body[: self.MIDDLE], self.body[self.MIDDLE :])

    def forward(self, x: Tensor) -> Tensor:
        """x [B, C, H, W] -> same shape."""
        first, second = self.halves
        h = first(x)
        g = h[:, : self.pooled]
        h = h + self.bias(torch.cat([g.mean((2, 3)), g.amax((2, 3))], 1))[:, :, None, None]
        return self.act(x + second(h))


class PolicyValueNet(nn.Module):
    """obs planes [B, C_in, H, W] -> (move logits [B, A], value in [-1, 1] [B])."""

    def __init__(
        self,
        obs_shape: tuple[int, int, int],
        num_actions: int,
        channels: int = 32,
        blocks: int = 3,
        value_hidden: int = 64,
        channels_last: bool = False,
        global_pooling: bool = False,
    ):
        super().__init__()
        in_channels, rows, cols = obs_shape
        cells = rows * cols
        self.stem = conv_bn_relu(in_channels, channels)
        last = GlobalPoolingBlock if global_pooling else ResidualBlock
        kinds = [ResidualBlock] * (blocks - 1) + [last] if blocks else []
        self.tower = nn.Sequential(*[kind(channels) for kind in kinds])
        self.policy_head = plane_head(channels, 2, cells, num_actions)
        self.value_head = nn.Sequential(
            *plane_head(channels, 1, cells, 1, width=value_hidden), nn.Tanh()
        )
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.to(memory_format=self.memory_format)

    def forward(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        """Logits [B, A] and values [B] from the side to move's view."""
        x = self.tower(self.stem(obs.contiguous(memory_format=self.memory_format)))
        return self.policy_head(x), self.value_head(x)[:, 0]
