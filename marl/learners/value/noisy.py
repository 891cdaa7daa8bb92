"""Factorized Gaussian noisy linear layers (Fortunato et al. 2018, "Noisy Networks").

y = (mu_w + sigma_w * eps_w) x + mu_b + sigma_b * eps_b with eps_w = f(eps_out) f(eps_in)^T,
eps_b = f(eps_out), f(x) = sign(x) sqrt(|x|) and eps_in, eps_out standard normal. The noise
is held fixed between explicit `reset_noise(generator)` calls, so the same generator seed
gives the same noise; in deterministic mode the layer uses the mean weights only (greedy
evaluation).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def scaled_noise(size: int, generator: torch.Generator, device: torch.device | str = "cpu"):
    """f(eps) = sign(eps) sqrt(|eps|) for `size` standard normal draws."""
    eps = torch.randn(size, generator=generator, device=device)
    return eps.sign() * eps.abs().sqrt()


def _uniform(shape: tuple[int, ...], bound: float, generator: torch.Generator | None) -> Tensor:
    return (torch.rand(shape, generator=generator) * 2.0 - 1.0) * bound


class NoisyLinear(nn.Module):
    """A linear layer with learned, factorized Gaussian weight noise.

    Initialisation (paper, factorized case, p = in_features): mu ~ U(-1/sqrt(p), 1/sqrt(p)),
    sigma = sigma_0 / sqrt(p). The noise starts at zero (mean weights) until the first
    `reset_noise`.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        sigma_0: float = 0.5,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        bound = 1.0 / math.sqrt(in_features)
        self.weight_mu = nn.Parameter(_uniform((out_features, in_features), bound, generator))
        self.bias_mu = nn.Parameter(_uniform((out_features,), bound, generator))
        sigma = sigma_0 / math.sqrt(in_features)
        self.weight_sigma = nn.Parameter(torch.full((out_features, in_features), sigma))
        self.bias_sigma = nn.Parameter(torch.full((out_features,), sigma))
        self.register_buffer("eps_in", torch.zeros(in_features))
        self.register_buffer("eps_out", torch.zeros(out_features))
        self.deterministic = False

    def reset_noise(self, generator: torch.Generator) -> None:
        """Draw new factorized noise from `generator` (kept until the next call)."""
        device = self.eps_in.device
        self.eps_in.copy_(scaled_noise(self.in_features, generator, device))
        self.eps_out.copy_(scaled_noise(self.out_features, generator, device))

    def forward(self, x: Tensor) -> Tensor:
        """x [..., in_features] -> [..., out_features], with the current noise unless
        deterministic."""
        if self.deterministic:
            return nn.functional.linear(x, self.weight_mu, self.bias_mu)
        weight = self.weight_mu + self.weight_sigma * torch.outer(self.eps_out, self.eps_in)
        bias = self.bias_mu + self.bias_sigma * self.eps_out
        return nn.functional.linear(x, weight, bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}"


def reset_noise(module: nn.Module, generator: torch.Generator) -> None:
    """Resample the noise of every NoisyLinear in `module`, in module order."""
    for layer in module.modules():
        if isinstance(layer, NoisyLinear):
            layer.reset_noise(generator)


def set_deterministic(module: nn.Module, deterministic: bool) -> None:
    """Switch every NoisyLinear in `module` to mean weights (True) or noisy weights (False)."""
    for layer in module.modules():
        if isinstance(layer, NoisyLinear):
            layer.deterministic = deterministic
