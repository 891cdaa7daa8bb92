"""The PPO family's tanh (`marl.learners.ppo.activation`): both forms, the choice by CPU."""

import pytest
import torch
from torch.func import jacfwd, jacrev

from marl.learners.ppo import activation, analytic
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
    x = torch.linspace(-20, 20, 400_000).reshape(-1, 64)
    y = activation.tanh(x)
    assert torch.equal(activation.tanh_(x.clone()), y)
    error = (y - torch.tanh(x)).abs().max()
    assert error == 0 if tanh_form == "torch" else 0 < error < 2e-7
    leaf = x.clone().requires_grad_()
    activation.tanh(leaf).backward(torch.ones_like(x))
    assert torch.equal(leaf.grad, torch.ops.aten.tanh_backward(torch.ones_like(x), y))
    small = torch.randn(6, 32, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(activation.tanh, (small,))
    assert torch.autograd.gradgradcheck(activation.tanh, (small,))


def test_a_value_does_not_depend_on_its_block(tanh_form):
    """A seed's values equal whatever block it shares (K seeds stacked, any row count):
    the sigmoid form takes only contiguous blocks with a last axis of a multiple of 32
    (all in the kernel's vectorized body); other widths and strided views take torch's."""
    generator = torch.Generator().manual_seed(0)
    for width in (64, 50):
        for rows in (7, 97, 1536):
            block = torch.randn(4, rows, width, generator=generator)
            alone = activation.tanh(block[1].clone())
            assert torch.equal(activation.tanh(block)[1], alone)
            assert torch.equal(activation.tanh(block[:2])[1], alone)
    odd, view = torch.randn(97, 50), torch.randn(97, 64)[:, 3:35]
    expected = torch.tanh(view)
    assert torch.equal(activation.tanh(odd), torch.tanh(odd))
    assert torch.equal(activation.tanh(view), expected)
    assert torch.equal(activation.tanh_(view), expected)


def test_without_autograd_the_sigmoid_form_skips_its_function(monkeypatch):
    monkeypatch.setattr(activation, "BY_SIGMOID", True)
    big = torch.randn(2, 64, requires_grad=True)
    with torch.no_grad():
        plain = activation.tanh(big)
    tracked = activation.tanh(big)
    assert plain.grad_fn is None and tracked.grad_fn is not None
    assert torch.equal(plain, tracked) and not torch.equal(plain, torch.tanh(big))


def test_forward_mode_is_tanhs(monkeypatch):
    monkeypatch.setattr(activation, "BY_SIGMOID", True)
    x = torch.randn(3, 32, dtype=torch.float64)
    assert torch.allclose(jacfwd(activation.tanh)(x), jacrev(activation.tanh)(x))
    assert torch.autograd.gradcheck(
        activation.tanh, (x.clone().requires_grad_(),), check_forward_ad=True
    )


def test_the_analytic_forward_is_the_modules_to_the_bit(tanh_form):
    """`analytic.mlp_forward` (addmm, in-place tanh) and `mlp`'s modules give the same
    bits, so the update recomputes exactly what acting computed."""
    net = mlp(21, [64, 64], 5, torch.Generator().manual_seed(0))
    x = torch.randn(1536, 21, generator=torch.Generator().manual_seed(1))
    assert isinstance(net[1], activation.Tanh)
    with torch.no_grad():
        assert torch.equal(analytic.mlp_forward(analytic.linears(net), x)[-1], net(x))
