"""Exact tests of the PPO numerics: GAE, bootstrapping, clipped losses, running moments."""

import numpy as np
import pytest
import torch

from marl.learners.ppo import numerics as nx

GAMMA, LAM = 0.9, 0.8


def _one_agent(x):
    """[T] -> [T, B=1, N=1]."""
    return torch.tensor(x, dtype=torch.float64)[:, None, None]


def _targets(terminated=(0, 0, 0), truncated=(0, 0, 0), final=(0.0, 0.0, 0.0)):
    values = _one_agent([0.5, 1.0, 1.5])
    next_values, ends = nx.bootstrap_targets(
        values,
        last_values=torch.tensor([[2.0]], dtype=torch.float64),
        final_values=_one_agent(final),
        terminated=torch.tensor(terminated, dtype=torch.bool)[:, None],
        truncated=torch.tensor(truncated, dtype=torch.bool)[:, None],
        next_alive=torch.ones(3, 1, 1, dtype=torch.bool),
    )
    rewards = _one_agent([1.0, 2.0, 3.0])
    return nx.gae(rewards, values, next_values, ends, GAMMA, LAM)[:, 0, 0].tolist()


def test_gae_matches_hand_worked_example_without_episode_end():
    # deltas: 1 + .9*1 - .5 = 1.4; 2 + .9*1.5 - 1 = 2.35; 3 + .9*2 - 1.5 = 3.3; gamma*lam = .72
    assert _targets() == pytest.approx([1.4 + 0.72 * (2.35 + 0.72 * 3.3), 2.35 + 0.72 * 3.3, 3.3])


def test_gae_bootstraps_from_final_value_on_truncation():
    # t=1 truncated with V(final_obs)=10: delta_1 = 2 + .9*10 - 1 = 10, the trace stops there
    adv = _targets(truncated=(0, 1, 0), final=(0.0, 10.0, 0.0))
    assert adv == pytest.approx([1.4 + 0.72 * 10.0, 10.0, 3.3])


def test_gae_does_not_bootstrap_on_termination():
    # t=1 terminated: delta_1 = 2 - 1 = 1, and nothing flows back from t=2
    adv = _targets(terminated=(0, 1, 0), final=(0.0, 10.0, 0.0))
    assert adv == pytest.approx([1.4 + 0.72 * 1.0, 1.0, 3.3])


def test_dead_agent_trajectory_ends_without_bootstrap():
    values = torch.tensor([[[1.0, 1.0]], [[2.0, 7.0]]])  # [T=2, B=1, N=2]
    next_alive = torch.tensor([[[True, False]], [[True, False]]])
    no = torch.zeros(2, 1, dtype=torch.bool)
    next_values, ends = nx.bootstrap_targets(
        values, torch.tensor([[3.0, 9.0]]), torch.zeros_like(values), no, no, next_alive
    )
    # agent 0 lives on: V(s_1)=2 then V(s_2)=3; agent 1 died after t=0: 0, and its trace ends
    assert next_values[:, 0].tolist() == [[2.0, 0.0], [3.0, 0.0]]
    assert ends[:, 0].tolist() == [[False, True], [False, True]]
    rewards = torch.tensor([[[1.0, 5.0]], [[1.0, 0.0]]])
    adv = nx.gae(rewards, values, next_values, ends, 1.0, 1.0)
    assert adv[:, 0, 1].tolist() == [5.0 - 1.0, 0.0 - 7.0]
    assert adv[:, 0, 0].tolist() == [(1 + 2 - 1) + (1 + 3 - 2), 1 + 3 - 2]


def test_autoreset_after_done_uses_new_episode_alive_not_death():
    # the episode ended at t=0; the agent absent at the new episode's start is not "dead at t=0"
    values = torch.ones(1, 1, 1)
    next_values, ends = nx.bootstrap_targets(
        values,
        torch.ones(1, 1),
        torch.full((1, 1, 1), 4.0),
        torch.zeros(1, 1, dtype=torch.bool),
        torch.ones(1, 1, dtype=torch.bool),
        torch.zeros(1, 1, 1, dtype=torch.bool),
    )
    assert next_values.item() == 4.0 and ends.item()


def test_clipped_surrogate_hand_numbers():
    ratio = torch.tensor([1.5, 0.5, 0.5, 1.5, 1.1])
    adv = torch.tensor([2.0, 2.0, -1.0, -1.0, 3.0])
    loss = nx.clipped_surrogate(ratio.log(), adv, clip=0.2)
    # -min(rA, clip(r)A): 1.5*2 vs 1.2*2; .5*2 vs .8*2; -.5 vs -.8; -1.5 vs -1.2; 3.3 unclipped
    assert loss.tolist() == pytest.approx([-2.4, -1.0, 0.8, 1.5, -3.3])


def test_value_loss_clipped_and_unclipped():
    values, old, returns = (
        torch.tensor([3.0, 1.2]),
        torch.tensor([1.0, 1.0]),
        torch.tensor([4.0, 2.0]),
    )
    # sample 0: (3-4)^2 = 1 vs kept 1.5 -> (1.5-4)^2 = 6.25; sample 1 inside the clip range
    assert nx.value_loss(values, old, returns, 0.5).tolist() == pytest.approx([3.125, 0.32])
    assert nx.value_loss(values, old, returns, None).tolist() == pytest.approx([0.5, 0.32])


def test_masked_mean_and_explained_variance():
    x = torch.tensor([1.0, 2.0, 100.0])
    mask = torch.tensor([True, True, False])
    assert nx.masked_mean(x, mask).item() == 1.5
    assert nx.masked_mean(x, torch.zeros(3, dtype=torch.bool)).item() == 0.0
    target = torch.tensor([1.0, 3.0, 5.0])
    full = torch.ones(3, dtype=torch.bool)
    assert nx.explained_variance(target, target, full) == 1.0
    assert nx.explained_variance(torch.full((3,), 3.0), target, full) == 0.0
    assert np.isnan(nx.explained_variance(target, torch.ones(3), full))


def test_running_moments_match_brute_force():
    rng = np.random.default_rng(0)
    chunks = [rng.normal(3.0, 2.0, size=n) for n in (5, 17, 1, 40)]
    f64 = torch.float64
    moments = nx.Moments(
        torch.zeros((), dtype=f64), torch.ones((), dtype=f64), torch.zeros((), dtype=f64)
    )
    for chunk in chunks:
        moments = nx.update_moments(moments, torch.as_tensor(chunk))
    everything = np.concatenate(chunks)
    assert moments.count.item() == len(everything)
    assert moments.mean.item() == pytest.approx(everything.mean(), abs=1e-12)
    assert moments.var.item() == pytest.approx(everything.var(), abs=1e-12)
    assert nx.update_moments(moments, torch.zeros(0)) == moments


def test_normalize_roundtrip_and_values():
    f64 = torch.float64
    moments = nx.Moments(
        torch.tensor(2.0, dtype=f64), torch.tensor(4.0, dtype=f64), torch.tensor(10.0)
    )
    x = torch.tensor([0.0, 2.0, 6.0])
    assert nx.normalize(x, moments, eps=0.0).tolist() == [-1.0, 0.0, 2.0]
    assert torch.allclose(nx.denormalize(nx.normalize(x, moments), moments), x)
    init = nx.init_moments()
    assert init.mean.item() == 0.0 and init.var.item() == 1.0
