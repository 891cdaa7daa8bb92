"""AlphaZero training targets: playout cap randomization and value-target mixing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from marl.algorithms import local_trainer
from marl.core.config import ConfigError, build_config
from marl.envs import vec_spec
from marl.games import TIC_TAC_TOE
from marl.search.alphazero import AlphaZeroConfig
from marl.search.config import SearchConfig
from marl.search.evaluator import UniformEvaluator
from marl.search.selfplay import SelfPlay, SelfPlayTargets, value_targets

CAPPED = SelfPlayTargets(full_search_fraction=0.3, cheap_simulations=2)
SMALL_CFG = build_config(AlphaZeroConfig, {"num_games": 2, "channels": 4, "blocks": 1})


def _play(targets: SelfPlayTargets, seed: int, steps: int, num_games: int = 3):
    """Run self-play; return (finished samples, per-step full flags, expected obs)."""
    play = SelfPlay(TIC_TAC_TOE, UniformEvaluator(), SearchConfig(simulations=7),
                    num_games, targets=targets)  # fmt: skip
    rng = np.random.default_rng(seed)
    pending: list[list[torch.Tensor]] = [[] for _ in range(num_games)]  # full-search obs
    samples, flags, expected = [], [], []
    for _ in range(steps):
        obs = TIC_TAC_TOE.observe(play.mcts.root_states())
        before = play.full_searches
        finished = play.step(rng)
        full = play.full_searches > before
        flags.append(full)
        for g in range(num_games):
            if full:
                pending[g].append(obs[g])
        for g in (play.length == 0).nonzero()[:, 0].tolist():  # the games that just ended
            expected += pending[g]
            pending[g] = []
        samples.append(finished.samples)
    return samples, flags, expected


def test_only_full_search_moves_become_training_samples():
    samples, flags, expected = _play(CAPPED, seed=0, steps=40)
    obs = torch.cat([s.obs for s in samples])
    assert 0 < sum(flags) < len(flags)  # both kinds of search happened
    assert len(obs) == len(expected) > 0 and torch.equal(obs, torch.stack(expected))
    policy = torch.cat([s.policy for s in samples])
    assert torch.allclose(policy.sum(1), torch.ones(len(policy)))


def test_which_moves_get_the_full_search_is_seeded():
    flags = [_play(CAPPED, seed, steps=40)[1] for seed in (0, 0, 1)]
    assert flags[0] == flags[1] and flags[0] != flags[2]
    assert 0.1 < np.mean(flags[0]) < 0.6  # about full_search_fraction = 0.3
    uncapped = _play(SelfPlayTargets(), seed=0, steps=12)
    assert all(uncapped[1]) and len(torch.cat([s.obs for s in uncapped[0]])) == len(uncapped[2])


def test_cheap_searches_use_their_own_budget():
    evaluator = UniformEvaluator()
    cheap = SelfPlayTargets(full_search_fraction=1e-9, cheap_simulations=2)
    play = SelfPlay(TIC_TAC_TOE, evaluator, SearchConfig(simulations=7), 4, targets=cheap)
    rng = np.random.default_rng(0)
    calls = evaluator.calls
    play.step(rng)  # a fresh tree: the root was evaluated at reset
    assert play.full_searches == 0 and evaluator.calls - calls <= 2 + 1  # 2 sims + new roots


def test_value_target_mix_by_hand():
    outcome, root = torch.tensor([1.0, -1.0, 0.0]), torch.tensor([0.5, 0.5, -0.25])
    assert torch.equal(value_targets(outcome, root, 0.25), torch.tensor([0.875, -0.625, -0.0625]))
    assert value_targets(outcome, root, 0.0) is outcome


def test_selfplay_mixes_the_outcome_with_the_root_value():
    values = {}
    for mix in (0.0, 0.5, 1.0):
        samples, _, _ = _play(SelfPlayTargets(value_target_mix=mix), seed=4, steps=18)
        values[mix] = torch.cat([s.value for s in samples])
    outcome, root = values[0.0], values[1.0]
    assert set(outcome.tolist()) <= {-1.0, 0.0, 1.0} and not torch.equal(outcome, root)
    assert root.abs().max() <= 1.0
    assert torch.equal(values[0.5], 0.5 * outcome + 0.5 * root)


def test_targets_are_read_from_the_config_and_checked():
    cfg = build_config(
        AlphaZeroConfig,
        {"num_games": 4, "search.simulations": 6, "moves_per_iteration": 9, "train_steps": 1,
         "batch_size": 4, "min_buffer": 4, "channels": 4, "blocks": 1,
         "targets.full_search_fraction": 0.5, "targets.cheap_simulations": 2,
         "targets.value_target_mix": 0.5},
    )  # fmt: skip
    trainer = local_trainer("alphazero", vec_spec("classic/tic_tac_toe-v0"), cfg, 0)
    stats = trainer.iterate()
    learner = trainer.learner
    assert learner.env_steps == 36 and 0 < learner.buffer.size < 36  # cheap moves not stored
    assert stats["buffer_size"] == learner.buffer.size
    bad = [
        ({"targets.full_search_fraction": 0.0}, "full_search_fraction=0.0"),
        ({"targets.full_search_fraction": 0.5, "targets.cheap_simulations": 99},
         "cheap_simulations=99: expected 1..64"),
        ({"targets.value_target_mix": 1.5}, "value_target_mix=1.5: expected 0..1"),
    ]  # fmt: skip
    for values, message in bad:
        with pytest.raises(ConfigError, match=message):
            build_config(AlphaZeroConfig, values).validate()


def test_strength_match_can_face_the_solving_bot():
    pytest.importorskip("pyspiel")
    from marl.search.strength import versus_mcts_bot

    trainer = local_trainer("alphazero", vec_spec("classic/tic_tac_toe-v0"), SMALL_CFG, 0)
    result = versus_mcts_bot(trainer.learner.player(4), games=2, bot_simulations=8, solve=True)
    assert result.games == 2 and result.solve and "sims/move, solve=True)" in result.summary()
