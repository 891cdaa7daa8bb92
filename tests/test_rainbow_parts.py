"""Exact tests of C51's categorical projection and of factorized NoisyLinear layers."""

import pytest
import torch

from marl.learners.value.distributional import (
    CategoricalSupport,
    categorical_target,
    cross_entropy,
    expected_value,
    project,
)
from marl.learners.value.noisy import NoisyLinear, reset_noise, set_deterministic

SMALL = CategoricalSupport(v_min=-2.0, v_max=2.0, atoms=5)  # z = -2, -1, 0, 1, 2


def test_support_atoms_and_mean():
    assert SMALL.delta_z == 1.0
    assert SMALL.values(torch.float64).tolist() == [-2.0, -1.0, 0.0, 1.0, 2.0]
    probs = torch.tensor([[0.1, 0.2, 0.3, 0.2, 0.2]], dtype=torch.float64)
    assert expected_value(probs, SMALL).item() == pytest.approx(-0.2 - 0.2 + 0.2 + 0.4)


def test_projection_matches_hand_worked_example():
    probs = torch.tensor(
        [
            [0.1, 0.2, 0.3, 0.2, 0.2],
            [0.1, 0.2, 0.3, 0.2, 0.2],
            [0.2] * 5,
            [0.1, 0.2, 0.3, 0.2, 0.2],
        ],
        dtype=torch.float64,
    )
    rewards = torch.tensor([0.5, -0.25, 1.5, -3.0], dtype=torch.float64)
    discounts = torch.tensor([1.0, 0.0, 1.0, 1.0], dtype=torch.float64)
    out = project(probs, rewards, discounts, gamma_n=0.5, support=SMALL)
    expected = [
        # 0.5 + 0.5 z = (-.5, 0, .5, 1, 1.5) at positions (1.5, 2, 2.5, 3, 3.5):
        # idx1 .05; idx2 .05 + .2 + .15; idx3 .15 + .2 + .1; idx4 .1
        [0.0, 0.05, 0.4, 0.45, 0.1],
        # terminal: every atom goes to r = -0.25 (position 1.75): .25 to z=-1, .75 to z=0
        [0.0, 0.25, 0.75, 0.0, 0.0],
        # 1.5 + 0.5 z = (.5, 1, 1.5, 2, 2.5): the last is clipped to v_max = 2
        [0.0, 0.0, 0.1, 0.4, 0.5],
        # -3 + 0.5 z = (-4, -3.5, -3, -2.5, -2): all clipped to v_min
        [1.0, 0.0, 0.0, 0.0, 0.0],
    ]
    assert out.tolist() == [pytest.approx(row, abs=1e-12) for row in expected]


def test_projection_conserves_mass():
    gen = torch.Generator().manual_seed(0)
    support = CategoricalSupport(-10.0, 10.0, 51)
    probs = torch.rand(64, 51, generator=gen).softmax(-1)
    rewards = torch.randn(64, generator=gen) * 8
    discounts = (torch.rand(64, generator=gen) > 0.3).float()
    out = project(probs, rewards, discounts, 0.99**3, support)
    assert (out >= 0).all()
    assert torch.allclose(out.sum(-1), probs.sum(-1), atol=1e-6)


def test_value_on_an_atom_puts_all_mass_there():
    support = CategoricalSupport(-10.0, 10.0, 51)  # delta_z = 0.4, not exact in binary
    probs = torch.zeros(2, 51)
    probs[:, 17] = 1.0
    # identity (r = 0, gamma = 1) and a shift by exactly one atom (r = delta_z)
    out = project(probs, torch.tensor([0.0, 0.4]), torch.ones(2), 1.0, support)
    assert out[0].tolist() == probs[0].tolist()
    expected = torch.zeros(51)
    expected[18] = 1.0
    assert out[1].tolist() == expected.tolist()


def test_cross_entropy_by_hand():
    target = torch.tensor([[0.25, 0.75]])
    log_probs = torch.tensor([[0.5, 0.5]]).log()
    assert cross_entropy(log_probs, target).item() == pytest.approx(-torch.tensor(0.5).log().item())


def test_categorical_target_hand_worked_double_q_terminal_and_clipping():
    # z = -2, -1, 0, 1, 2; two actions; the bootstrap distributions come from the target net
    point = lambda i: [1.0 if j == i else 0.0 for j in range(5)]  # noqa: E731
    next_probs = torch.tensor(
        [
            [point(2), point(4)],  # a0: all at 0 (mean 0); a1: all at 2 (mean 2)
            [point(0), point(4)],  # ignored: terminal
            [point(2), [0.5, 0.0, 0.0, 0.0, 0.5]],  # a1: half at -2, half at 2
            [point(2), point(2)],  # ignored: no legal action (a dead agent)
        ],
        dtype=torch.float64,
    )
    next_q = torch.tensor([[1.0, 0.5], [0.0, 0.0], [5.0, 0.0], [0.0, 0.0]], dtype=torch.float64)
    mask = torch.tensor([[True, True], [True, True], [False, True], [False, False]])
    rewards = torch.tensor([0.5, 1.25, 1.5, -3.0], dtype=torch.float64)
    discounts = torch.tensor([0.5, 0.0, 1.0, 0.5], dtype=torch.float64)
    target = categorical_target(next_probs, next_q, mask, rewards, discounts, SMALL)
    expected = [
        # next_q picks a0 (not the target net's better-looking a1): 0.5 + 0.5 * 0 = 0.5
        # sits halfway between z = 0 and z = 1
        [0.0, 0.0, 0.5, 0.5, 0.0],
        # terminal (discount 0): r = 1.25 alone, a quarter of the way from z = 1 to z = 2
        [0.0, 0.0, 0.0, 0.75, 0.25],
        # a0 is illegal, so a1: 1.5 - 2 = -0.5 splits over z = -1, 0; 1.5 + 2 = 3.5 is
        # outside the support and lands on v_max = 2
        [0.0, 0.25, 0.25, 0.0, 0.5],
        # nothing legal: no bootstrap, r = -3 lies below v_min and lands on -2
        [1.0, 0.0, 0.0, 0.0, 0.0],
    ]
    assert target.tolist() == [pytest.approx(row, abs=1e-12) for row in expected]


def test_support_refuses_bad_settings():
    with pytest.raises(ValueError, match="atoms"):
        CategoricalSupport(atoms=1)
    with pytest.raises(ValueError, match="v_min"):
        CategoricalSupport(v_min=1.0, v_max=1.0)


# -- NoisyLinear ---------------------------------------------------------------------------


def _layer(seed: int = 0, p: int = 4, q: int = 3) -> NoisyLinear:
    return NoisyLinear(p, q, generator=torch.Generator().manual_seed(seed))


def test_noisy_init_follows_the_paper():
    layer = _layer(p=16, q=8)
    bound = 1 / 16**0.5
    assert layer.weight_mu.abs().max() <= bound and layer.bias_mu.abs().max() <= bound
    assert torch.all(layer.weight_sigma == 0.5 / 4) and torch.all(layer.bias_sigma == 0.5 / 4)
    assert torch.equal(_layer(seed=3).weight_mu, _layer(seed=3).weight_mu)


def test_noisy_shapes_and_same_seed_same_noise():
    a, b = _layer(), _layer()
    x = torch.randn(5, 7, 4, generator=torch.Generator().manual_seed(1))
    assert a(x).shape == (5, 7, 3)
    a.reset_noise(torch.Generator().manual_seed(42))
    b.reset_noise(torch.Generator().manual_seed(42))
    assert torch.equal(a(x), b(x))
    assert torch.equal(a(x), a(x))  # held fixed between resets
    b.reset_noise(torch.Generator().manual_seed(43))
    assert not torch.equal(a(x), b(x))


def test_noise_is_factorized_with_signed_sqrt():
    layer = _layer()
    gen = torch.Generator().manual_seed(7)
    layer.reset_noise(gen)
    ref = torch.Generator().manual_seed(7)
    eps_in, eps_out = torch.randn(4, generator=ref), torch.randn(3, generator=ref)
    f_in, f_out = eps_in.sign() * eps_in.abs().sqrt(), eps_out.sign() * eps_out.abs().sqrt()
    x = torch.eye(4)
    weight = layer.weight_mu + layer.weight_sigma * torch.outer(f_out, f_in)
    bias = layer.bias_mu + layer.bias_sigma * f_out
    assert torch.allclose(layer(x), x @ weight.T + bias)


def test_mean_over_noise_draws_is_the_mean_weight_output():
    layer = _layer(p=4, q=3).double()
    x = torch.randn(6, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    set_deterministic(layer, True)
    mean_out = layer(x)
    set_deterministic(layer, False)
    gen = torch.Generator().manual_seed(0)
    draws = 20_000
    total = torch.zeros_like(mean_out)
    for _ in range(draws):
        layer.reset_noise(gen)
        total += layer(x)
    # one draw's noise has std ~0.25 per output here, so the mean's standard error is ~0.002
    assert torch.allclose(total / draws, mean_out, atol=0.01)
    assert not torch.allclose(layer(x), mean_out, atol=1e-3)  # but single draws differ


def test_gradients_reach_mu_and_sigma():
    net = torch.nn.Sequential(_layer(0, 4, 8), torch.nn.ReLU(), _layer(1, 8, 2))
    reset_noise(net, torch.Generator().manual_seed(5))
    net(torch.ones(3, 4)).pow(2).sum().backward()
    for name, param in net.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_deterministic_mode_ignores_noise():
    layer = _layer()
    x = torch.ones(2, 4)
    plain = torch.nn.functional.linear(x, layer.weight_mu, layer.bias_mu)
    assert torch.equal(layer(x), plain)  # no noise before the first reset
    layer.reset_noise(torch.Generator().manual_seed(0))
    set_deterministic(layer, True)
    assert torch.equal(layer(x), plain)
