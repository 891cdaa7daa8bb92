"""MuZero's value transform, categorical supports and n-step targets, by hand."""

from __future__ import annotations

import math

import pytest
import torch

from marl.search.muzero_targets import from_support, h, h_inverse, n_step_values, to_support


def test_h_by_hand_and_its_inverse():
    x = torch.tensor([0.0, 3.0, -8.0], dtype=torch.float64)
    assert h(x).tolist() == pytest.approx([0.0, 1.003, -2.008])
    grid = torch.linspace(-1e4, 1e4, 2001, dtype=torch.float64)
    assert torch.allclose(h_inverse(h(grid)), grid, rtol=1e-9, atol=1e-6)


def test_two_hot_support_by_hand():
    probs = to_support(torch.tensor([3.0, -0.5, 100.0], dtype=torch.float64), size=2)
    assert probs[0].tolist() == pytest.approx([0, 0, 0, 0.997, 0.003])  # h(3) = 1.003
    low = -(math.sqrt(1.5) - 1) - 0.0005  # h(-0.5), between the points -1 and 0
    assert probs[1].tolist() == pytest.approx([0, -low, 1 + low, 0, 0])
    assert probs[2].tolist() == [0, 0, 0, 0, 1]  # h(100) = 10.05 is clipped to the top point
    decoded = from_support(probs)
    assert decoded[:2].tolist() == pytest.approx([3.0, -0.5])
    assert decoded[2].item() == pytest.approx(h_inverse(torch.tensor(2.0, dtype=torch.float64)))


def test_n_step_values_with_rewards_and_discount():
    rewards = torch.tensor([1.0, 0.0, 2.0, 1.0])
    values = torch.tensor([5.0, 4.0, 3.0, 2.0, 0.0])  # values[4]: after the last move
    targets = n_step_values(rewards, values, n=2, discount=0.5)
    # t=0: 1 + 0.5*0 + 0.25*3;  t=1: 0 + 0.5*2 + 0.25*2;  t=2: 2 + 0.5*1 + 0.25*0;  t=3: 1 + 0
    assert targets.tolist() == [1.75, 1.5, 2.5, 1.0]


def test_n_step_values_flip_sign_between_players():
    rewards = torch.tensor([0.0, 0.0, 0.0, 1.0])  # the fourth move wins
    finished = torch.zeros(5)
    targets = n_step_values(rewards, finished, n=10, discount=1.0, two_player=True)
    assert targets.tolist() == [-1.0, 1.0, -1.0, 1.0]  # the winner moved at steps 1 and 3
    values = torch.tensor([0.0, 0.5, 0.2, -0.4, 0.0])
    one_step = n_step_values(torch.zeros(4), values, n=1, discount=1.0, two_player=True)
    assert one_step.tolist() == pytest.approx([-0.5, -0.2, 0.4, 0.0])
    with pytest.raises(ValueError, match=r"values must have shape \[5\]"):
        n_step_values(rewards, torch.zeros(4), n=1, discount=1.0)
