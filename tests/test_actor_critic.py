"""The off-policy actor-critic (DDPG / TD3 / SAC, MADDPG / MATD3 / MASAC): exact numerics,
team critics, checkpoints and determinism, and learning thresholds on Pendulum."""

from __future__ import annotations

import importlib.util
import io
import math

import numpy as np
import pytest
import torch
from conftest import env_steps, train_until_passed

from marl.algorithms import local_trainer, make_config
from marl.core.config import ConfigError
from marl.envs import vec_spec
from marl.envs.vector import make_vec
from marl.learners.actor_critic.loss import td_target, temperature_loss
from marl.learners.actor_critic.networks import (
    ActionCoding,
    gumbel_softmax_st,
    joint_actions,
    smoothed_actions,
    squashed_gaussian,
)
from marl.run.evaluate import run_episodes

# -- pure numerics ---------------------------------------------------------------------------


def test_td3_target_takes_the_smaller_twin_and_clips_the_smoothing_noise():
    # target actor says 0.5 and -0.9; noise 0.8 is clipped to 0.5, -0.3 passes, and the
    # result is kept inside [-1, 1]
    actions = torch.tensor([[0.5], [-0.9]])
    noise = torch.tensor([[0.8], [-0.3]])
    assert smoothed_actions(actions, noise, noise_clip=0.5).tolist() == [[1.0], [-1.0]]
    noise = torch.tensor([[-0.8], [0.3]])
    assert torch.allclose(smoothed_actions(actions, noise, 0.5), torch.tensor([[0.0], [-0.6]]))
    # y = r + discount * min(Q1', Q2'): per entry, the smaller of the two heads
    rewards = torch.tensor([[1.0, -1.0]])  # [B=1, N=2]
    next_q = torch.tensor([[[3.0, 5.0]], [[4.0, 2.0]]])  # [K=2, B, N]
    discount = torch.tensor([[0.5]])
    target = td_target(rewards, discount, next_q, torch.zeros(1, 2), torch.zeros(()))
    assert target.tolist() == [[1.0 + 0.5 * 3.0, -1.0 + 0.5 * 2.0]]
    # terminated (discount 0): the reward alone; SAC subtracts alpha * log pi before discounting
    assert td_target(rewards, torch.zeros(1, 1), next_q, torch.ones(1, 2), 0.1).tolist() == [
        [1.0, -1.0]
    ]
    sac = td_target(rewards, discount, next_q, torch.tensor([[-2.0, 1.0]]), torch.tensor(0.5))
    assert torch.allclose(sac, torch.tensor([[1.0 + 0.5 * (3.0 + 1.0), -1.0 + 0.5 * 1.5]]))


def test_sac_temperature_loss_by_hand_and_its_gradient_sign():
    log_alpha = torch.tensor([math.log(0.2), 0.0], requires_grad=True)
    log_probs = torch.tensor([[-0.5, 1.0], [0.5, -2.0]])  # [B=2, N=2]
    target_entropy = torch.tensor([-1.0, -1.0])
    alive = torch.tensor([[True, True], [True, False]])
    loss = temperature_loss(log_alpha, log_probs, target_entropy, alive)
    # -log_alpha * (log pi + H*) over the 3 alive entries
    by_hand = -(math.log(0.2) * (-1.5) + 0.0 * 0.0 + math.log(0.2) * (-0.5)) / 3
    assert loss.item() == pytest.approx(by_hand)
    loss.backward()
    # agent 0: mean (log pi + H*) = -1 < 0 (entropy above target) -> dL/dlog_alpha = 2/3 > 0,
    # so gradient descent lowers alpha; agent 1: log pi + H* = 0 -> no push
    assert log_alpha.grad.tolist() == pytest.approx([2.0 / 3.0, 0.0])


def test_tanh_log_prob_matches_a_numerical_change_of_variables():
    torch.manual_seed(0)
    mean = torch.tensor([[0.3, -1.2, 2.5]], dtype=torch.float64)
    log_std = torch.tensor([[-0.5, 0.2, 0.4]], dtype=torch.float64)
    noise = torch.tensor([[0.7, -1.1, 1.9]], dtype=torch.float64)
    dims = torch.ones(1, 3, dtype=torch.float64)
    action, log_prob = squashed_gaussian(mean, log_std, noise, dims)
    # density of a = tanh(u): p(a) = N(u) / |da/du|, da/du by central differences
    u = mean + log_std.exp() * noise
    gaussian = torch.distributions.Normal(mean, log_std.exp()).log_prob(u)
    h = 1e-6
    slope = (torch.tanh(u + h) - torch.tanh(u - h)) / (2 * h)
    assert torch.allclose(action, torch.tanh(u))
    assert log_prob.item() == pytest.approx((gaussian - slope.log()).sum().item(), abs=1e-6)
    # a padded action dim (mask 0) adds nothing and is coded as 0
    masked_action, masked = squashed_gaussian(mean, log_std, noise, torch.tensor([[1.0, 1, 0]]))
    assert masked_action[0, 2] == 0
    assert masked.item() == pytest.approx((gaussian - slope.log())[0, :2].sum().item(), abs=1e-6)
    # far in the tail, where tanh(u) rounds to 1, the log-prob stays finite
    _, tail = squashed_gaussian(torch.tensor([[30.0]]), torch.zeros(1, 1), torch.zeros(1, 1),
                                torch.ones(1, 1))  # fmt: skip
    assert torch.isfinite(tail).all()


def test_gumbel_softmax_straight_through_forward_one_hot_backward_softmax():
    logits = torch.tensor([[0.5, 1.5, -0.3, 0.1]], requires_grad=True)
    gumbels = torch.tensor([[0.9, -0.2, 0.1, 0.4]])
    weights = torch.tensor([[1.0, -2.0, 3.0, 0.5]])
    sample = gumbel_softmax_st(logits, gumbels, temperature=0.7)
    # forward: exactly the one-hot of argmax(logits + gumbels) = index 0 (1.4 > 1.3)
    assert sample.tolist() == [[1.0, 0.0, 0.0, 0.0]]
    (sample * weights).sum().backward()
    # backward: the gradient of the relaxed sample softmax((logits + g) / 0.7)
    ref = logits.detach().clone().requires_grad_(True)
    (torch.softmax((ref + gumbels) / 0.7, -1) * weights).sum().backward()
    assert torch.allclose(logits.grad, ref.grad)
    assert logits.grad.abs().sum() > 0


def test_box_actions_scale_to_the_bounds_and_discrete_ones_are_indices():
    import gymnasium

    box = gymnasium.spaces.Box(np.float32([0, -2]), np.float32([1, 2]), dtype=np.float32)
    coding = ActionCoding([box, gymnasium.spaces.Box(-1.0, 1.0, (1,), np.float32)])
    coded = torch.tensor([[[-1.0, 0.5], [1.0, 0.0]]])  # [B=1, N=2, D=2]
    assert coding.to_env(coded).tolist() == [[[0.0, 1.0], [1.0, 0.0]]]
    assert coding.target_entropy(1.0).tolist() == [-2.0, -1.0]
    discrete = ActionCoding([gymnasium.spaces.Discrete(3), gymnasium.spaces.Discrete(2)])
    assert discrete.to_env(torch.tensor([[[0.0, 0, 1], [0, 1, 0]]])).tolist() == [[2, 1]]
    legal = torch.tensor([[[False, True, False], [True, True, True]]])
    for seed in range(5):
        picks = discrete.uniform(legal, torch.Generator().manual_seed(seed)).argmax(-1)
        assert picks[0, 0] == 1 and picks[0, 1] < 2  # agent 1 has only 2 actions


def test_joint_actions_put_each_agents_own_action_in_its_row():
    taken = torch.tensor([[[1.0], [2.0], [3.0]]])  # [B=1, N=3, D=1]
    own = torch.tensor([[[10.0], [20.0], [30.0]]])
    joint = joint_actions(taken, own)[0, :, :, 0]
    assert joint.tolist() == [[10.0, 2.0, 3.0], [1.0, 20.0, 3.0], [1.0, 2.0, 30.0]]
    assert joint_actions(taken)[0, :, :, 0].tolist() == [[1.0, 2.0, 3.0]] * 3


# -- configs, team critics, checkpoints ------------------------------------------------------


def test_presets_and_config_errors_name_the_field():
    assert make_config("matd3").critic == "central" and make_config("matd3").policy_delay == 2
    assert make_config("sac").algorithm == "sac" and make_config("ddpg").twin_critics is False
    with pytest.raises(ConfigError, match="tau"):
        make_config("td3", {"tau": 0.0})
    with pytest.raises(ConfigError, match="buffer_size"):
        make_config("sac", {"buffer_size": 10, "batch_size": 32})


NEEDS_MUJOCO = pytest.mark.skipif(
    importlib.util.find_spec("gymnasium_robotics") is None, reason="no mujoco extra"
)


def _short(algo: str, **over):
    base = dict(hidden=(16,), batch_size=8, learning_starts=8, rollout_steps=4, num_envs=2)
    return make_config(algo, {**base, **over})


def _run(algo: str, env_id: str, iterations: int, seed: int = 0, **kwargs):
    spec = vec_spec(env_id, **kwargs)
    trainer = local_trainer(algo, spec, _short(algo), seed)
    stats = [trainer.iterate() for _ in range(iterations)]
    return trainer, stats


@pytest.mark.parametrize(
    "algo, env_id, kwargs",
    [
        ("maddpg", "mpe/simple_tag-v3", {"max_cycles": 10}),
        ("masac", "mpe/simple_adversary-v3", {"max_cycles": 10}),
        ("matd3", "mpe/simple_spread-v3", {"N": 2, "max_cycles": 10, "continuous_actions": True}),
        ("sac", "gym/Pendulum-v1", {}),
        pytest.param("matd3", "mamujoco/HalfCheetah-2x3", {}, marks=NEEDS_MUJOCO),
    ],
)
def test_every_form_trains_on_discrete_and_box_envs(algo, env_id, kwargs):
    trainer, stats = _run(algo, env_id, 6, **kwargs)
    learner = trainer.learner
    assert learner.env_steps == 6 * 4 * 2 and learner.updates > 0
    assert all(np.isfinite(s["critic_loss"]) for s in stats if "critic_loss" in s)
    actions = learner.policy().act(*_first_obs(env_id, kwargs), greedy=True)
    spaces = learner.spec.action_spaces
    for i, space in enumerate(spaces):
        single = actions[:, i] if actions.ndim == 2 else actions[:, i, : space.shape[0]]
        assert all(space.contains(np.asarray(a, space.dtype)) for a in single)


def _first_obs(env_id, kwargs):
    step = make_vec(env_id, 3, seed=0, **kwargs).reset(seed=0)
    return step.obs, step.action_mask


def test_central_critic_sees_the_state_and_every_agents_action():
    spec = vec_spec("mpe/simple_spread-v3", N=2, max_cycles=10, continuous_actions=True)
    learner = local_trainer("matd3", spec, _short("matd3"), 0).learner
    obs = torch.zeros(1, 2, spec.obs_dim)
    state = torch.zeros(1, spec.state_dim)
    taken = torch.zeros(1, 2, learner.actor.coding.width)
    moved = taken.clone()
    moved[0, 1, 0] = 1.0  # only agent 1's action changes
    q0 = learner.critic(obs, state, joint_actions(taken))
    q1 = learner.critic(obs, state, joint_actions(moved))
    assert (q0[:, 0, 0] != q1[:, 0, 0]).all()  # agent 0's Q depends on agent 1's action
    local = local_trainer("td3", spec, _short("td3"), 0).learner
    q0 = local.critic(obs, state, joint_actions(taken))
    q1 = local.critic(obs, state, joint_actions(moved))
    assert torch.equal(q0[:, 0, 0], q1[:, 0, 0])  # an independent critic does not


def test_checkpoint_round_trip_resumes_exactly_and_runs_are_deterministic():
    kwargs = {"max_cycles": 10}
    a, _ = _run("masac", "mpe/simple_adversary-v3", 4, **kwargs)
    buffer = io.BytesIO()
    torch.save(a.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    b, _ = _run("masac", "mpe/simple_adversary-v3", 1, **kwargs)
    b.load_state_dict(state)
    for trainer in (a, b):
        trainer.iterate()
    resumed = b.learner.actor.state_dict()
    for name, weight in a.learner.actor.state_dict().items():
        assert torch.equal(weight, resumed[name]), name
    c, _ = _run("masac", "mpe/simple_adversary-v3", 4, **kwargs)
    d, _ = _run("masac", "mpe/simple_adversary-v3", 4, **kwargs)
    assert all(
        torch.equal(x, y)
        for x, y in zip(c.learner.critic.parameters(), d.learner.critic.parameters())
    )


# -- learning --------------------------------------------------------------------------------

PENDULUM = dict(hidden=(64, 64), rollout_steps=50)


def greedy_return(learner, env_id: str, episodes: int = 10, seed: int = 123) -> float:
    """Mean greedy per-agent return over `episodes` fresh episodes (one per env)."""
    env = make_vec(env_id, episodes, seed=seed)
    return float(run_episodes(learner.policy(), env, episodes, True, seed).mean())


@pytest.mark.slow
@pytest.mark.parametrize(
    "algo, steps, threshold", [("sac", 8_000, -250.0), ("td3", 10_000, -250.0)]
)
def test_pendulum_greedy_return(algo, steps, threshold):
    """SAC and TD3 reach a greedy return >= -250 on Pendulum (10 episodes, checked every 1,000
    env steps) within 8,000 and 10,000 env steps, well within the issue's 20k (seed 0 on an AMD
    EPYC host: SAC -189 at 4,000, TD3 -197 at 6,000)."""
    trainer = local_trainer(algo, vec_spec("gym/Pendulum-v1"), make_config(algo, PENDULUM), 0)
    returns = train_until_passed(
        trainer, range(1_000, steps + 1, 1_000),
        lambda learner: greedy_return(learner, "gym/Pendulum-v1"), lambda r: r >= threshold,
        count=env_steps,
    )  # fmt: skip
    assert returns[-1] >= threshold, f"greedy returns every 1,000 env steps: {returns}"
