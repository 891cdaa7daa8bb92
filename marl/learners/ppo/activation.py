"""The PPO family's tanh, chosen by CPU: `torch.tanh`, or `2 sigmoid(2x) - 1` on AMD CPUs.

torch's CPU tanh runs through MKL's vector math, whose fast code paths are Intel's own: on
an AMD EPYC (Zen 3, AVX2) `torch.tanh` of a 1,536 x 64 block, the hidden layer of a PPO
minibatch at JaxMARL's settings, took 400-430 us of CPU (one thread), twice the 64 x 64
matrix product before it, where `sigmoid` took 105-130 us and the three ops below 134-186
us (at acting's 48 x 64 both take about 12 us). On the Intel Sapphire Rapids host where
this project's earlier figures were measured, the product and tanh together took 106 us,
so there the tanh stays torch's (and those figures still reproduce to the bit).

The form is fixed per process, never by a tensor's size: a seed's values must not depend
on how many seeds share its block (`--seeds`, `--procs`), nor the log-probs recomputed in
the update on the block size they were collected in. One more condition keeps them
independent of layout: torch's CPU sigmoid rounds its vectorized body and its scalar tail
differently, so the sigmoid form takes only contiguous blocks whose last axis is a multiple
of 32 (every element then in the vectorized body, whatever the rows; `mlp`'s default
widths are); other blocks take `torch.tanh`, which rounds alike everywhere.

The two forms differ by at most 1.8e-7 (absolute; over [-20, 20]); the identity's
derivative is `1 - y^2` exactly as tanh's, so `tanh_backward` serves both (backward and
forward mode). `MARL_TANH=torch` or `MARL_TANH=sigmoid` in the environment picks the form
on any CPU (to compare runs across hosts); GPU tensors always take `torch.tanh`.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

CHOICES = ("torch", "sigmoid")


def cpu_fields() -> dict[str, str]:
    """The first CPU's fields in /proc/cpuinfo (`vendor_id`, `model name`, `cpu family`,
    ...); empty where there is no such file."""
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.exists():
        return {}
    fields: dict[str, str] = {}
    for line in cpuinfo.read_text(errors="replace").splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields


def _cpu_vendor() -> str:
    """The CPU's vendor id (`GenuineIntel`, `AuthenticAMD`, ...), or '' when unknown."""
    text = cpu_fields().get("vendor_id") or platform.processor()
    for vendor in ("GenuineIntel", "AuthenticAMD"):
        if vendor in text:
            return vendor
    return ""


def _choose(setting: str | None, vendor: str) -> bool:
    """Whether the sigmoid form is used: `setting` (MARL_TANH) if given, else on AMD."""
    if setting is None or setting == "":
        return vendor == "AuthenticAMD"
    if setting not in CHOICES:
        raise ValueError(f"MARL_TANH={setting!r}: expected one of {', '.join(CHOICES)}")
    return setting == "sigmoid"


BY_SIGMOID = _choose(os.environ.get("MARL_TANH"), _cpu_vendor())
# 0-d tensors: an op with one costs less dispatch than with a Python float (3 against 8 us
# at 48 x 64), and `add` takes the alpha in the same pass
_TWO, _MINUS_ONE = torch.tensor(2.0), torch.tensor(-1.0)
VECTOR = 32  # float32 elements in the sigmoid kernel's unrolled step (2 x 16 with AVX-512)


def _sigmoid_form(x: Tensor) -> bool:
    cpu = x.device.type == "cpu"
    return BY_SIGMOID and cpu and x.shape[-1] % VECTOR == 0 and x.is_contiguous()


def tanh(x: Tensor) -> Tensor:
    """tanh of `x`, differentiable (the form this CPU computes fastest)."""
    if not _sigmoid_form(x):
        return torch.tanh(x)
    if torch.is_grad_enabled() and x.requires_grad:
        return _ViaSigmoid.apply(x)
    return _via_sigmoid(x)


def _via_sigmoid(x: Tensor) -> Tensor:
    return torch.add(_MINUS_ONE, torch.sigmoid(x * _TWO), alpha=2)


class _ViaSigmoid(torch.autograd.Function):
    """`_via_sigmoid` with tanh's own backward, `grad * (1 - y^2)`: what autograd of
    `torch.tanh` computes and `analytic` writes out (autograd of the three ops would
    compute `4 s (1 - s)`, equal in exact arithmetic, not in float32 near saturation)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: Tensor) -> Tensor:
        return _via_sigmoid(x)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Tensor], output: Tensor) -> None:
        ctx.save_for_backward(output)
        ctx.save_for_forward(output)

    @staticmethod
    def jvp(ctx: Any, tangent: Tensor) -> Tensor:
        (y,) = ctx.saved_tensors
        return torch.ops.aten.tanh_backward(tangent, y)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        (y,) = ctx.saved_tensors
        return torch.ops.aten.tanh_backward(grad, y)


def tanh_(x: Tensor) -> Tensor:
    """`tanh(x)` written into `x` (no autograd): the same values as `tanh`."""
    if not _sigmoid_form(x):
        return x.tanh_()
    return torch.add(_MINUS_ONE, x.mul_(_TWO).sigmoid_(), alpha=2, out=x)


class Tanh(nn.Module):
    """`nn.Tanh` through `tanh` above: the activation of `mlp`'s hidden layers."""

    def forward(self, x: Tensor) -> Tensor:
        return tanh(x)
