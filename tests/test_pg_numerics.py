"""Pure numerics of REINFORCE and TRPO, checked against hand-worked numbers and autograd."""

import pytest
import torch

from marl.learners.ppo import numerics as nx
from marl.learners.ppo.nets import categorical_kl, gaussian_kl
from marl.learners.ppo.reinforce import whole_episodes


def _col(*xs, dtype=torch.float32):
    return torch.tensor(xs, dtype=dtype)[:, None, None]  # [T, B=1, N=1]


def test_monte_carlo_returns_cut_at_termination_and_bootstrap_at_truncation():
    # t=1 terminates (nothing follows), t=3 is truncated with V(final obs) = 10; gamma 0.5:
    # G3 = 1 + 0.5 * 10 = 6, G2 = 1 + 0.5 * 6 = 4, G1 = 1, G0 = 1 + 0.5 * 1 = 1.5
    rewards, values = _col(1, 1, 1, 1), _col(2, 2, 2, 2)
    final_values = _col(0, 0, 0, 10)
    terminated = torch.tensor([[False], [True], [False], [False]])
    truncated = torch.tensor([[False], [False], [False], [True]])
    next_values, ends = nx.bootstrap_targets(
        values, torch.tensor([[7.0]]), final_values, terminated, truncated,
        torch.ones(4, 1, 1, dtype=torch.bool),
    )  # fmt: skip
    returns = nx.discounted_returns(rewards, next_values, ends, gamma=0.5)
    assert returns.flatten().tolist() == [1.5, 1.0, 4.0, 6.0]


def test_monte_carlo_returns_bootstrap_after_the_rollout_and_match_gae_at_lambda_one():
    rewards = _col(1, 2)
    values, last = _col(0.3, -0.2), torch.tensor([[4.0]])
    no = torch.zeros(2, 1, dtype=torch.bool)
    next_values, ends = nx.bootstrap_targets(
        values, last, torch.zeros(2, 1, 1), no, no, torch.ones(2, 1, 1, dtype=torch.bool)
    )
    returns = nx.discounted_returns(rewards, next_values, ends, gamma=0.5)
    assert returns.flatten().tolist() == [3.0, 4.0]  # G1 = 2 + 0.5 * 4, G0 = 1 + 0.5 * 4
    advantages = nx.gae(rewards, values, next_values, ends, gamma=0.5, lam=1.0)
    assert torch.allclose(advantages + values, returns)


def test_whole_episodes_keep_steps_up_to_each_envs_last_episode_end():
    done = torch.tensor([[False, True], [True, False], [False, False]])
    assert whole_episodes(done).tolist() == [[True, True], [True, False], [False, False]]


def test_conjugate_gradient_solves_a_small_spd_system():
    a = torch.tensor([[4.0, 1.0], [1.0, 3.0]], dtype=torch.float64)
    b = torch.tensor([1.0, 2.0], dtype=torch.float64)
    x = nx.conjugate_gradient(lambda v: a @ v, b, iters=10)
    assert torch.allclose(x, torch.tensor([1 / 11, 7 / 11], dtype=torch.float64), atol=1e-6)
    gen = torch.Generator().manual_seed(0)
    m = torch.randn(6, 6, generator=gen, dtype=torch.float64)
    spd = m @ m.T + 6 * torch.eye(6, dtype=torch.float64)
    rhs = torch.randn(6, generator=gen, dtype=torch.float64)
    x = nx.conjugate_gradient(lambda v: spd @ v, rhs, iters=6)
    assert (spd @ x - rhs).abs().max() < 1e-6


def _tiny_policy_kl(continuous: bool):
    """KL(pi_old || pi_w) of a linear policy on 5 fixed inputs, as a function of flat w."""
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(5, 3, generator=gen, dtype=torch.float64)
    size = 3 * 2 + (2 if continuous else 0)  # weights [3, 2] (+ log-std [2])
    w0 = 0.5 * torch.randn(size, generator=gen, dtype=torch.float64)
    dims = torch.ones(2, dtype=torch.float64)

    def kl_of(w: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
        out, old_out = x @ w[:6].view(3, 2), x @ old[:6].view(3, 2)
        if continuous:
            return gaussian_kl(old_out, old[6:], out, w[6:], dims).mean()
        return categorical_kl(old_out, out).mean()

    return kl_of, w0


@pytest.mark.parametrize("continuous", [False, True])
def test_fisher_vector_product_is_the_kl_hessian_at_the_current_policy(continuous):
    kl_of, w0 = _tiny_policy_kl(continuous)
    w = w0.clone().requires_grad_(True)
    kl = kl_of(w, w0)
    assert abs(kl.item()) < 1e-12  # KL of the policy with itself
    v = torch.linspace(-1.0, 1.0, w0.numel(), dtype=torch.float64)
    fvp = nx.fisher_vector_product(kl, [w], damping=0.0)
    hessian = torch.autograd.functional.hessian(lambda p: kl_of(p, w0), w0)
    assert torch.allclose(fvp(v), hessian @ v, atol=1e-10)
    damped = nx.fisher_vector_product(kl_of(w, w0), [w], damping=0.1)
    assert torch.allclose(damped(v), hessian @ v + 0.1 * v, atol=1e-10)


def test_line_search_rejects_a_step_that_breaks_the_kl_limit():
    def evaluate(fraction):  # surrogate improves with any step; KL = 0.04 fraction^2
        return fraction, 0.04 * fraction**2

    assert nx.backtracking_line_search(evaluate, 0.01, backtracks=1) == (0.0, 1)
    assert nx.backtracking_line_search(evaluate, 0.01, backtracks=5) == (0.5, 1)
    assert nx.backtracking_line_search(evaluate, 0.05, backtracks=5) == (1.0, 0)
    worse = nx.backtracking_line_search(lambda f: (-f, 0.0), 0.01, backtracks=4, shrink=0.8)
    assert worse == (0.0, 4)  # a step that lowers the surrogate is never taken
