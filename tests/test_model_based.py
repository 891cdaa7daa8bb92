"""Model-based control (MBPO, Dreamer): the ensemble's NLL and elite choice, MBPO's rollout
schedule and mixed batches, Dreamer's lambda-returns, KL, imagination shapes and gradient
isolation, the sequence replay, the pixel Pendulum, checkpoints and resume, bad input."""

from __future__ import annotations

import dataclasses
import io
import math

import numpy as np
import pytest
import torch
from conftest import cli, env_steps, train_until_passed

from marl.algorithms import local_trainer, make_config
from marl.core.config import ConfigError
from marl.envs import vec_spec
from marl.envs.families.pixels import draw_pendulum
from marl.learners.model_based.dreamer import DreamerConfig, lambda_returns, symexp, symlog
from marl.learners.model_based.ensemble import (
    GaussianEnsemble,
    choose_elites,
    fit_ensemble,
    gaussian_nll,
)
from marl.learners.model_based.mbpo import MBPOConfig, make_learner, rollout_length
from marl.learners.model_based.rssm import State, categorical_kl, kl_loss
from marl.learners.model_based.sequences import SequenceReplay, step_fields

PENDULUM = "gym/Pendulum-v1"
SMALL_MBPO = dict(hidden=(32, 32), model_hidden=(32, 32), ensemble_size=3, elites=2,
                  learning_starts=100, batch_size=32, model_train_every=100,
                  model_train_steps=5, rollout_batch=20, rollout_schedule=(100, 200, 1, 3),
                  updates_per_step=1.0, rollout_steps=25, buffer_size=5000)  # fmt: skip
SMALL_DREAMER = dict(deter=16, groups=4, classes=4, hidden=16, cnn_depth=2, batch_size=4,
                     seq_len=8, learning_starts=50, updates_per_step=0.04, horizon=4,
                     rollout_steps=25)  # fmt: skip


# -- the dynamics ensemble -------------------------------------------------------------------


def test_gaussian_nll_by_hand():
    """0.5 ((t - m)^2 / var + log var + log 2 pi), averaged over samples and dims."""
    mean = torch.tensor([[[0.0]], [[1.0]]])  # two members, one sample, one dim
    log_var = torch.tensor([[[0.0]], [[math.log(4.0)]]])
    target = torch.tensor([[[1.0]], [[3.0]]])
    nll = gaussian_nll(mean, log_var, target)
    log_2pi = math.log(2 * math.pi)
    expected = [0.5 * (1.0 + 0.0 + log_2pi), 0.5 * (4.0 / 4.0 + math.log(4.0) + log_2pi)]
    assert nll.tolist() == pytest.approx(expected, abs=1e-6)


def test_elites_are_the_smallest_holdout_errors_ties_to_the_lower_index():
    assert choose_elites([0.5, 0.1, 0.3, 0.1, 0.9], 3).tolist() == [1, 2, 3]
    assert choose_elites([0.2, 0.2, 0.1], 2).tolist() == [0, 2]


def _line_data(count: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """obs 1-D, action 1-D; next obs change = obs + action, reward = -obs^2 (+ N(0, 0.1^2))."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(count, 2, generator=gen) * 2 - 1
    y = torch.stack([x.sum(1), -(x[:, 0] ** 2)], 1) + 0.1 * torch.randn(count, 2, generator=gen)
    return x, y


def test_log_variance_stays_inside_its_learned_bounds():
    model = GaussianEnsemble(1, 1, 3, 2, (8,), torch.Generator().manual_seed(0))
    with torch.no_grad():
        model.head.bias[..., 2:] = 1e4  # raw log-variance far above the max bound
    _, log_var = model(torch.zeros(5, 2))
    assert (log_var <= model.max_log_var + 1e-3).all()
    with torch.no_grad():
        model.head.bias[..., 2:] = -1e4
    _, log_var = model(torch.zeros(5, 2))
    assert (log_var >= model.min_log_var - 1e-3).all()


def test_fit_keeps_the_members_with_the_smallest_holdout_error():
    """Members 0 and 2 are broken (huge output bias); with a learning rate of ~0 the fit
    ranks members as they are, so the elites are the two intact ones."""
    model = GaussianEnsemble(1, 1, 4, 2, (8,), torch.Generator().manual_seed(0))
    with torch.no_grad():
        model.head.bias[[0, 2], :, :2] = 50.0
    opt = torch.optim.SGD(model.parameters(), lr=1e-12)
    x, y = _line_data(200)
    fit_ensemble(model, opt, x, y, 1, 32, 0.2, np.random.default_rng(0))
    assert model.elites.tolist() == [1, 3]


def test_fit_learns_the_mean_and_the_noise_variance():
    model = GaussianEnsemble(1, 1, 3, 2, (32, 32), torch.Generator().manual_seed(0))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    x, y = _line_data(1000)
    stats = fit_ensemble(model, opt, x, y, 400, 128, 0.1, np.random.default_rng(0))
    assert stats["model/elite_holdout_mse"] < 0.02  # the noise variance is 0.01
    _, log_var = model(x[:200])
    assert 0.003 < float(log_var.detach().exp().mean()) < 0.03
    assert stats["model/nll"] < -0.5  # 0.5 (1 + log(0.01 * 2 pi)) = -0.88 at the optimum


# -- MBPO ------------------------------------------------------------------------------------


def test_rollout_length_grows_linearly_between_its_env_steps():
    schedule = (1000, 4000, 1, 5)
    lengths = [rollout_length(schedule, t) for t in (0, 1000, 2500, 3999, 4000, 9000)]
    assert lengths == [1, 1, 3, 4, 5, 5]


def _mbpo(iterations: int, seed: int = 0):
    trainer = local_trainer("mbpo", vec_spec(PENDULUM), make_config("mbpo", SMALL_MBPO), seed)
    for _ in range(iterations):
        trainer.iterate()
    return trainer


def test_mbpo_rolls_the_model_out_and_mixes_its_batches():
    trainer = _mbpo(6)  # 150 env steps: one model fit, rollouts at 100, 125 and 150
    learner = trainer.learner
    assert learner.env_steps == 150 and learner.model_fits == 1
    # rollout_batch starts each, k = 1, 1 and 2 (k grows from 1 to 3 over env steps 100-200)
    assert len(learner.model_replay) == 20 + 20 + 2 * 20
    model = learner.model_replay.data
    assert torch.all(model["discount"][:80] == learner.config.gamma)  # Pendulum never ends
    batch = learner._sample()
    real = 32 - round(32 * learner.config.real_ratio)
    assert batch.obs.shape == (32, 1, 3)
    # the rows after the real ones are model transitions (each is in the model replay)
    stored = model["obs"][:80, 0]
    for row in batch.obs[32 - real :, 0]:
        assert (stored == row).all(-1).any()


def test_mbpo_checkpoint_resumes_exactly():
    a = _mbpo(6)
    buffer = io.BytesIO()
    torch.save(a.state_dict(), buffer)
    buffer.seek(0)
    b = _mbpo(1)
    b.load_state_dict(torch.load(buffer, weights_only=True))
    for trainer in (a, b):
        trainer.iterate()
    for net in ("actor", "model"):
        mine, theirs = getattr(a.learner, net).state_dict(), getattr(b.learner, net).state_dict()
        assert all(torch.equal(mine[k], theirs[k]) for k in mine), net


def test_mbpo_refuses_unknown_terminations_and_teams():
    spec = dataclasses.replace(vec_spec(PENDULUM), env_id="gym/Made-up-v0")
    with pytest.raises(ConfigError, match="termination=never"):
        make_learner(spec, make_config("mbpo", SMALL_MBPO), 0)
    config = make_config("mbpo", {**SMALL_MBPO, "termination": "never"})
    assert make_learner(spec, config, 0).terminated(torch.zeros(2, 3)).tolist() == [False] * 2
    team = vec_spec("mpe/simple_spread-v3", continuous_actions=True)
    with pytest.raises(ConfigError, match="one agent"):
        local_trainer("mbpo", team, make_config("mbpo", SMALL_MBPO), 0)
    with pytest.raises(ConfigError, match="elites"):
        MBPOConfig(ensemble_size=3, elites=4).validate()


# -- Dreamer numerics ------------------------------------------------------------------------


def test_lambda_returns_by_hand():
    rewards = torch.tensor([[1.0], [2.0]])
    values = torch.tensor([[10.0], [20.0], [30.0]])
    discounts = torch.tensor([[0.5], [0.5]])
    # R1 = 2 + 0.5 * 30 = 17 for every lambda (the last step bootstraps from v2)
    # lambda 0.5: R0 = 1 + 0.5 (0.5 * 20 + 0.5 * 17) = 10.25
    assert lambda_returns(rewards, values, discounts, 0.5)[:, 0].tolist() == [10.25, 17.0]
    assert lambda_returns(rewards, values, discounts, 1.0)[:, 0].tolist() == [9.5, 17.0]
    assert lambda_returns(rewards, values, discounts, 0.0)[:, 0].tolist() == [11.0, 17.0]


def test_symlog_and_symexp_invert_each_other():
    x = torch.tensor([-1000.0, -1.0, 0.0, 0.5, 16.0])
    assert symlog(torch.tensor([math.e - 1])).item() == pytest.approx(1.0)
    assert torch.allclose(symexp(symlog(x)), x, rtol=1e-5)


def test_balanced_kl_with_free_bits():
    post = torch.log(torch.tensor([[[0.5, 0.5]]])).requires_grad_()
    prior = torch.log(torch.tensor([[[0.25, 0.75]]])).requires_grad_()
    kl = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    assert float(categorical_kl(post, prior).detach()) == pytest.approx(kl)
    loss, raw = kl_loss(post, prior, 1.0, 0.5, 0.1)
    assert float(loss.detach()) == pytest.approx(0.6) and float(raw) == pytest.approx(kl)
    loss.backward()  # under the free bits: no gradient at all
    assert float(post.grad.abs().sum()) == 0.0 and float(prior.grad.abs().sum()) == 0.0
    loss, _ = kl_loss(post, prior, 0.0, 1.0, 0.0)  # the dynamics term trains the prior only
    post.grad = prior.grad = None
    loss.backward()
    assert post.grad is None or float(post.grad.abs().sum()) == 0.0
    assert float(prior.grad.abs().sum()) > 0.0


def _dreamer(env_id: str = PENDULUM, iterations: int = 0, seed: int = 0, **extra):
    config = make_config("dreamer", {**SMALL_DREAMER, **extra})
    trainer = local_trainer("dreamer", vec_spec(env_id), config, seed)
    for _ in range(iterations):
        trainer.iterate()
    return trainer


def test_imagination_keeps_shapes_and_the_actor_loss_leaves_the_world_model_alone():
    learner = _dreamer().learner
    cfg, rssm = learner.config, learner.model.rssm
    gen = torch.Generator().manual_seed(0)
    start = rssm.imagine(rssm.initial(5), torch.zeros(5, 1), gen)
    start = State(*(x.detach() for x in start))
    loss, imagined, returns, weights, _ = learner.actor_loss(start)
    feature_dim = cfg.deter + cfg.groups * cfg.classes
    assert imagined.features.shape == (cfg.horizon + 1, 5, feature_dim)
    assert returns.shape == weights.shape == imagined.log_probs.shape == (cfg.horizon, 5)
    assert torch.equal(weights[0], torch.ones(5))
    loss.backward()
    for module in (learner.model, learner.critic, learner.critic_target):
        assert all(p.grad is None for p in module.parameters())
        assert all(p.requires_grad for p in module.parameters()) or module is (
            learner.critic_target)  # fmt: skip
    assert sum(float(p.grad.abs().sum()) for p in learner.actor.parameters()) > 0


def test_sequence_replay_windows_are_consecutive_steps_of_one_stream_across_the_wrap():
    replay = SequenceReplay(step_fields(1, 1, False), streams=2, capacity=8)
    for stream, offset in ((0, 0.0), (1, 100.0)):
        steps = np.arange(10, dtype=np.float32) + offset  # stream 0 keeps 2..9 after the wrap
        replay.add(stream, {"obs": steps[:, None], "action": np.zeros((10, 1)),
                            "reward": steps, "is_first": steps == offset,
                            "terminal": np.zeros(10, bool)})  # fmt: skip
    batch = replay.sample(64, 4, np.random.default_rng(0))
    obs = batch["obs"][..., 0]
    assert obs.shape == (4, 64)
    assert torch.all(obs[1:] - obs[:-1] == 1.0)  # consecutive, never across the write point
    assert set(obs[0].remainder(100).tolist()) <= {2.0, 3.0, 4.0, 5.0, 6.0}
    with pytest.raises(ValueError, match="holds 9 steps"):
        replay.sample(1, 9, np.random.default_rng(0))


def test_dreamer_learns_records_episode_ends_and_resumes_exactly():
    a = _dreamer(iterations=10)  # 250 env steps: one finished episode, some updates
    learner = a.learner
    replay = learner.replay
    assert len(replay) == 251  # every observation, plus the finished episode's final one
    assert int(replay.data["is_first"][0, :251].sum()) == 2
    assert learner.updates == 9  # one per 25 env steps from env step 50 on
    buffer = io.BytesIO()
    torch.save(a.state_dict(), buffer)
    buffer.seek(0)
    b = _dreamer(iterations=1)
    b.load_state_dict(torch.load(buffer, weights_only=True))
    for trainer in (a, b):
        trainer.iterate()
    for net in ("actor", "model", "critic"):
        mine, theirs = getattr(a.learner, net).state_dict(), getattr(b.learner, net).state_dict()
        assert all(torch.equal(mine[k], theirs[k]) for k in mine), net


def test_dreamer_divides_by_max_one_and_the_ema_not_a_clamped_ema():
    """DreamerV3 keeps the raw EMA S of the returns' 5-95% range and divides by max(1, S):
    after a spell of small ranges the scale stays 1 until S itself passes 1."""
    learner = _dreamer().learner
    learner.return_scale = 0.2  # the EMA after small ranges
    returns = torch.linspace(0.0, 5.0, 101)  # a 5-95% range of 4.5
    learner._track_scale(returns)
    assert learner.return_scale == pytest.approx(0.99 * 0.2 + 0.01 * 4.5)  # unclamped
    assert max(1.0, learner.return_scale) == 1.0  # the clamped EMA had made it 1.035


def test_dreamer_config_errors_name_the_field():
    with pytest.raises(ConfigError, match="seq_len"):
        DreamerConfig(seq_len=1).validate()
    with pytest.raises(ConfigError, match="one agent"):
        _dreamer("mpe/simple_spread-v3")


# -- pixels ----------------------------------------------------------------------------------


def test_pixel_pendulum_draws_the_pole_at_its_angle():
    up, down = draw_pendulum(0.0), draw_pendulum(math.pi)
    assert up.shape == (64, 64, 3) and up.dtype == np.uint8
    red = (up[..., 0] > 150) & (up[..., 1] < 120)
    assert red[5:28, 30:34].any() and not red[36:, :].any()  # above the pivot only
    red_down = (down[..., 0] > 150) & (down[..., 1] < 120)
    assert red_down[36:60, 30:34].any() and not red_down[:28, :].any()
    spec = vec_spec("gym/PendulumPixels-v1")
    assert spec.obs_dim == 64 * 64 * 3 and spec.action_dim == 1


def test_dreamer_trains_from_pixels():
    trainer = _dreamer("gym/PendulumPixels-v1", iterations=3, learning_starts=25,
                       updates_per_step=0.02, buffer_size=200)  # fmt: skip
    learner = trainer.learner
    assert learner.pixels and learner.replay.data["obs"].dtype == torch.uint8
    assert learner.updates == 1
    stats = trainer.iterate()
    assert {"model/recon_loss", "model/kl", "actor_loss", "critic_loss"} <= set(stats)


# -- the CLI ---------------------------------------------------------------------------------


@pytest.mark.parametrize("algo, config", [("mbpo", SMALL_MBPO), ("dreamer", SMALL_DREAMER)])
def test_train_resume_and_eval_from_the_cli(algo, config, tmp_path, capsys):
    out = tmp_path / algo
    sets = [arg for key, value in config.items() for arg in ("--set", f"{key}={value}")]
    status, _, err = cli(capsys, "train", algo, "--env", PENDULUM, "--steps", "150",
                         "--out", str(out), "--no-progress", *sets)  # fmt: skip
    assert status == 0, err
    header = (out / "metrics.csv").read_text().splitlines()[0]
    assert "model/" in header  # the model losses are logged
    status, _, err = cli(capsys, "train", "--resume", str(out), "--steps", "250",
                         "--no-progress")  # fmt: skip
    assert status == 0, err
    status, printed, err = cli(capsys, "eval", str(out), "--episodes", "1")
    assert status == 0, err
    assert "return" in printed.lower()


# -- learning --------------------------------------------------------------------------------


@pytest.mark.slow
def test_mbpo_swings_pendulum_up_within_2000_env_steps():
    """MBPO (64x64 SAC, ten updates per env step, defaults otherwise) reaches a greedy
    return >= -250 over 10 episodes (eval seed 123, checked every 250 env steps from 1,000)
    within 2,000 real env steps, where SAC needs 4,000-8,000 (tests/test_actor_critic.py);
    seed 0 on an AMD EPYC host: -942 at 1,500, -181 at 1,750 (100 s in pytest there)."""
    from test_actor_critic import greedy_return

    config = make_config("mbpo", {"hidden": (64, 64)})
    trainer = local_trainer("mbpo", vec_spec(PENDULUM), config, 0)
    returns = train_until_passed(
        trainer, range(1_000, 2_001, 250), lambda learner: greedy_return(learner, PENDULUM),
        lambda r: r >= -250.0,
        count=env_steps,
    )  # fmt: skip
    assert returns[-1] >= -250.0, f"greedy returns every 250 env steps: {returns}"
