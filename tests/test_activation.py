"""The PPO family's tanh (`marl.learners.ppo.activation`): both forms, the choice by CPU."""

import pytest
import torch

from marl.learners.ppo import activation
from marl.learners.ppo.nets import mlp


def test_the_choice_by_cpu_and_by_environment():
    assert activation._choose(None, "AuthenticAMD") and activation._choose("", "AuthenticAMD")
    assert not activation._choose(None, "GenuineIntel") and not activation._choose(None, "")
    assert activation._choose("sigmoid", "GenuineIntel")
    assert not activation._choose("torch", "AuthenticAMD")
    with pytest.raises(ValueError, match="MARL_TANH='fast'.*torch, sigmoid"):
        activation._choose("fast", "AuthenticAMD")


def test_both_forms_are_tanh(tanh_form):
    """Within 2e-7 of torch.tanh over [-20, 20] (exact where torch's form is used); the
    in-place form gives the same values; the gradient is tanh's `1 - y^2`, to second
    order (float64)."""
    x = torch.linspace(-20, 20, 400_001)
    y = activation.tanh(x)
    assert torch.equal(activation.tanh_(x.clone()), y)
    error = (y - torch.tanh(x)).abs().max()
    assert error == 0 if tanh_form == "torch" else 0 < error < 2e-7
    leaf = x.clone().requires_grad_()
    activation.tanh(leaf).backward(torch.ones_like(x))
    assert torch.equal(leaf.grad, torch.ops.aten.tanh_backward(torch.ones_like(x), y))
    small = torch.randn(6, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(activation.tanh, (small,))
    assert torch.autograd.gradgradcheck(activation.tanh, (small,))


def test_small_blocks_and_no_grad_take_their_shortcuts(monkeypatch):
    """Below `SMALLEST` elements torch's one op, whatever the CPU; without autograd the
    sigmoid form skips its autograd Function (same values)."""
    monkeypatch.setattr(activation, "BY_SIGMOID", True)
    small = torch.randn(3, activation.SMALLEST // 3 - 1)
    assert torch.equal(activation.tanh(small), torch.tanh(small))
    big = torch.randn(2, activation.SMALLEST, requires_grad=True)
    with torch.no_grad():
        plain = activation.tanh(big)
    tracked = activation.tanh(big)
    assert plain.grad_fn is None and tracked.grad_fn is not None
    assert torch.equal(plain, tracked) and not torch.equal(plain, torch.tanh(big))


def test_mlp_uses_it():
    net = mlp(3, [8], 2, torch.Generator().manual_seed(0))
    assert isinstance(net[1], activation.Tanh)
