"""The MuZero learner: trajectory replay, unrolled losses, self-play in both settings,
checkpoints, the CLI, and (slow) learning tic-tac-toe and CartPole."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import train_until_passed

from marl.algorithms import local_trainer
from marl.cli import main as marl_main
from marl.core.checkpoint import load_checkpoint
from marl.core.config import ConfigError, build_config
from marl.core.seeding import torch_generator
from marl.envs.vector import vec_spec
from marl.run.metrics import read_metrics
from marl.search import muzero_eval
from marl.search.muzero import MuZeroConfig, make_learner, unroll_loss
from marl.search.muzero_replay import Episode, TrajectoryReplay

TTT, CARTPOLE = "classic/tic_tac_toe-v0", "gym/CartPole-v1"
SMALL = {"num_envs": 4, "search.simulations": 4, "moves_per_iteration": 5, "train_steps": 2,
         "batch_size": 8, "min_buffer": 8, "hidden": 16, "width": 16, "support": 5,
         "eval_simulations": 4}  # fmt: skip
CONV = {"net": "conv", "channels": 4, "blocks": 1}
"""Residual conv towers with a hidden state of 4 board planes (board games only)."""


def _episode(rewards: list[float], actions: int = 3) -> Episode:
    t = len(rewards)
    return Episode(
        obs=torch.arange(t, dtype=torch.float32)[:, None].repeat(1, 2),
        legal=torch.ones(t, actions, dtype=torch.bool),
        to_play=torch.zeros(t, dtype=torch.long),
        actions=torch.arange(t) % actions,
        rewards=torch.tensor(rewards),
        policies=torch.eye(actions)[torch.arange(t) % actions],
        values=torch.full((t,), 10.0),
    )


def test_replay_unrolls_stop_at_the_episode_end():
    """Episode of 3 moves, rewards 1, 2, 3, values 10, n = 2, discount 0.5: targets
    1 + 0.5 * 2 + 0.25 * 10 = 4.5, 2 + 1.5 + 0 (value after the end) = 3.5, 3. An unroll
    from the last position sees zeros past the end and a masked policy."""
    replay = TrajectoryReplay(capacity=100, td_steps=2, discount=0.5, two_player=False)
    replay.add(_episode([1.0, 2.0, 3.0]))
    assert replay.targets[0].tolist() == [4.5, 3.5, 3.0]
    replay.add(_episode([5.0])._replace(obs=torch.full((1, 2), 7.0)))
    assert replay.sample(4, unroll=2, gen=torch_generator(0)).later_obs is None
    batch = replay.sample(64, unroll=2, gen=torch_generator(0), later_obs=True)
    from_last = batch.obs[:, 0] == 2.0
    assert from_last.any()
    assert batch.values[from_last].tolist()[0] == [3.0, 0.0, 0.0]
    assert batch.rewards[from_last].tolist()[0] == [3.0, 0.0]
    assert batch.policy_mask[from_last].tolist()[0] == [1.0, 0.0, 0.0]
    assert batch.value_mask.all()  # terminated: the zeros past the end are targets (absorbing)
    from_first = batch.obs[:, 0] == 0.0
    assert batch.values[from_first].tolist()[0] == [4.5, 3.5, 3.0]
    assert batch.actions[from_first].tolist()[0] == [0, 1]
    # the real positions after each unrolled move (the consistency loss's targets); past the
    # end the unroll's own start stands in, and the policy mask leaves it out
    assert batch.later_obs[from_first][0, :, 0].tolist() == [1.0, 2.0]
    assert batch.later_obs[from_last][0, :, 0].tolist() == [2.0, 2.0]


def test_replay_drops_the_oldest_episodes_and_round_trips():
    replay = TrajectoryReplay(capacity=4, td_steps=1, discount=1.0, two_player=True)
    for rewards in ([0.0, 1.0], [0.0, 0.0, 1.0], [1.0]):
        replay.add(_episode(rewards))
    assert replay.size == 4 and [len(e.actions) for e in replay.episodes] == [3, 1]
    copy = TrajectoryReplay(capacity=4, td_steps=1, discount=1.0, two_player=True)
    copy.add(_episode([1.0, 0.0, 1.0]))  # what a load replaces, size included
    copy.load_state_dict(replay.state_dict())
    assert copy.size == 4
    assert all(torch.equal(a, b) for a, b in zip(copy.flat().values(), replay.flat().values()))


def test_an_episode_cut_by_a_time_limit_bootstraps_from_its_final_value():
    """Rewards 1, 2, 3, values 10, n = 2, discount 0.5, cut with V(final obs) = 4: the last
    targets are 2 + 0.5 * 3 + 0.25 * 4 = 4.5 and 3 + 0.5 * 4 = 5 (a terminated episode's
    are 3.5 and 3), and an unroll past the cut has no value target; the final value
    survives a checkpoint, and an older checkpoint without final values loads as
    terminated episodes."""
    replay = TrajectoryReplay(capacity=100, td_steps=2, discount=0.5, two_player=False)
    cut = _episode([1.0, 2.0, 3.0])._replace(
        final_obs=torch.ones(1, 2), final_value=torch.ones(1) * 4
    )
    replay.add(cut)
    assert replay.targets[0].tolist() == [4.5, 4.5, 5.0] and replay.episodes[0].cut
    batch = replay.sample(64, unroll=2, gen=torch_generator(0))
    from_last = batch.obs[:, 0] == 2.0
    assert batch.values[from_last].tolist()[0] == [5.0, 0.0, 0.0]
    assert batch.value_mask[from_last].tolist()[0] == [1.0, 0.0, 0.0]  # no target past a cut
    copy = TrajectoryReplay(capacity=100, td_steps=2, discount=0.5, two_player=False)
    copy.load_state_dict(replay.state_dict())
    assert copy.targets[0].tolist() == [4.5, 4.5, 5.0]
    old = {k: v for k, v in replay.state_dict().items() if not k.startswith("final")}
    copy.load_state_dict(old)
    assert copy.targets[0].tolist() == [4.5, 3.5, 3.0] and not copy.episodes[0].cut


@pytest.mark.parametrize("value_target", ["search", "fresh"])
def test_self_play_bootstraps_time_limited_episodes_from_the_net(value_target):
    """CartPole cut at 3 steps never terminates: every stored episode is cut, its final value
    is the bootstrapping net's value of the final observation, and the last position's
    target is its reward plus the discounted final value."""
    overrides = SMALL | {"value_target": value_target, "target_update": 1, "td_steps": 5}
    config = build_config(MuZeroConfig, overrides)
    trainer = local_trainer("muzero", vec_spec(CARTPOLE, max_episode_steps=3), config, seed=0)
    for _ in range(3):
        trainer.iterate()
    learner = trainer.learner
    net = learner.target if value_target == "fresh" else learner.net
    assert learner.replay.episodes
    for episode, target in zip(learner.replay.episodes, learner.replay.targets):
        assert episode.cut and len(episode.actions) == 3
        if value_target == "fresh":  # the target net re-bootstraps every stored episode
            with torch.no_grad():
                assert torch.allclose(episode.final_value, net.value(episode.final_obs))
        expected = episode.rewards[-1] + config.discount * episode.final_value[0]
        assert target[-1].item() == pytest.approx(expected.item(), rel=1e-6)
        assert episode.final_value.abs().item() > 0


def test_two_player_targets_flip_sign_each_move():
    """The winner's last move (reward 1) is worth +1 to the side to move two plies earlier and
    -1 one ply earlier (td_steps cover the game)."""
    replay = TrajectoryReplay(capacity=10, td_steps=10, discount=1.0, two_player=True)
    replay.add(_episode([0.0, 0.0, 0.0, 1.0]))
    assert replay.targets[0].tolist() == [-1.0, 1.0, -1.0, 1.0]


@pytest.mark.parametrize("net", [{}, CONV, CONV | {"consistency_weight": 2.0}])
def test_a_few_updates_on_one_batch_lower_the_unrolled_loss(net):
    learner = make_learner(vec_spec(TTT), build_config(MuZeroConfig, SMALL | net), seed=0)
    learner.replay.add(_episode([0.0, 0.0, 1.0], actions=9)._replace(
        obs=torch.zeros(3, *learner.game.obs_shape)))  # fmt: skip
    consistency = "consistency_weight" in net
    batch = learner.replay.sample(16, learner.config.unroll_steps, learner.gen, consistency)
    before = unroll_loss(learner.net, batch, learner.config)[0].item()
    for _ in range(100):
        loss, _ = unroll_loss(learner.net, batch, learner.config)
        learner.optimizer.zero_grad()
        loss.backward()
        learner.optimizer.step()
    loss, stats = unroll_loss(learner.net, batch, learner.config)
    assert loss.item() < 0.5 * before
    assert ("consistency_loss" in stats) == consistency


def test_consistency_loss_is_zero_when_the_dynamics_reproduces_the_representation():
    """1 - cosine similarity between the dynamics' hidden state and the representation of the
    real next position: 0 for a model whose dynamics returns exactly that representation."""
    config = build_config(MuZeroConfig, SMALL | {"consistency_weight": 1.0})
    learner = make_learner(vec_spec(TTT), config, seed=0)
    replay = TrajectoryReplay(capacity=10, td_steps=1, discount=1.0, two_player=True)
    obs = torch.rand(4, *learner.game.obs_shape, generator=torch_generator(1))
    replay.add(_episode([0.0, 0.0, 0.0, 1.0], actions=9)._replace(obs=obs))
    batch = replay.sample(8, unroll=2, gen=torch_generator(0), later_obs=True)
    net = learner.net.eval()
    assert unroll_loss(net, batch, config)[1]["consistency_loss"] > 0.0
    lookup = {tuple(o.flatten().tolist()): net.initial(o[None])[0] for o in obs}
    later = iter(batch.later_obs.transpose(0, 1))  # the next position of each unrolled move
    net.recurrent = lambda hidden, actions: (
        torch.stack([lookup[tuple(o.flatten().tolist())] for o in next(later)]),
        torch.zeros(len(actions), 2 * net.support + 1),
    )
    assert unroll_loss(net, batch, config)[1]["consistency_loss"] == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("env_id", [TTT, CARTPOLE])
@pytest.mark.parametrize(
    "options",
    [{}, {"search.gumbel": True, "reanalyse": 0.5, "value_target": "fresh", "target_update": 1}],
)
def test_self_play_trains_in_both_settings(env_id, options):
    config = build_config(MuZeroConfig, SMALL | options)
    trainer = local_trainer("muzero", vec_spec(env_id), config, seed=0)
    rows = [trainer.iterate() for _ in range(4)]
    assert trainer.learner.env_steps == 4 * 4 * 5
    assert np.isfinite(rows[-1]["loss"]) and rows[-1]["reward_loss"] >= 0
    key = "draw_rate" if env_id == TTT else "return/agent"
    assert any(key in row for row in rows)


def test_same_seed_same_run_and_state_round_trip():
    def run():
        trainer = local_trainer("muzero", vec_spec(TTT), build_config(MuZeroConfig, SMALL), 3)
        return trainer, [trainer.iterate().get("loss") for _ in range(4)]

    (first, losses), (_, again) = run(), run()
    assert losses == again and losses[-1] is not None
    copy = make_learner(vec_spec(TTT), build_config(MuZeroConfig, SMALL), seed=9)
    copy.load_state_dict(first.learner.state_dict())
    assert copy.update() == first.learner.update()


def test_players_move_legally_from_the_real_mask():
    learner = make_learner(vec_spec(TTT), build_config(MuZeroConfig, SMALL), seed=0)
    game = learner.game
    boards = game.play(game.initial(2), torch.tensor([4, 0]))
    moves = learner.player().act_batch(boards)
    assert bool(game.legal_mask(boards)[torch.arange(2), moves].all())
    policy = make_learner(vec_spec(CARTPOLE), build_config(MuZeroConfig, SMALL), 0).policy()
    actions = policy.act(np.zeros((3, 1, 4), np.float32), np.ones((3, 1, 2), bool))
    assert actions.shape == (3, 1) and set(actions.ravel()) <= {0, 1}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [({"value_target": "target"}, "'search' or 'fresh'"), ({"reanalyse": 2.0}, "0..1"),
     ({"unroll_steps": 0}, "unroll_steps=0"), ({"net": "cnn"}, "'mlp' or 'conv'")],
)  # fmt: skip
def test_bad_config_is_refused_clearly(overrides, message):
    with pytest.raises(ConfigError, match=message):
        build_config(MuZeroConfig, SMALL | overrides).validate()


def test_the_conv_net_needs_board_planes():
    with pytest.raises(ConfigError, match=r"board planes \[C, H, W\].*shape \(4,\).*net='mlp'"):
        make_learner(vec_spec(CARTPOLE), build_config(MuZeroConfig, SMALL | CONV), seed=0)


def test_the_conv_hidden_state_is_planes_of_the_board():
    learner = make_learner(vec_spec(TTT), build_config(MuZeroConfig, SMALL | CONV), seed=0)
    boards = learner.game.initial(3)
    with torch.no_grad():
        hidden = learner.net.initial(learner.game.observe(boards))
    assert hidden.shape == (3, 4 * 3 * 3)  # 4 planes of the 3x3 board, one row each
    assert float(hidden.min()) >= 0.0 and float(hidden.max()) <= 1.0  # min-max scaled
    with torch.no_grad():
        nxt, reward_logits = learner.net.recurrent(hidden, torch.tensor([0, 4, 8]))
        logits, value_logits = learner.net.predict(nxt)
    assert nxt.shape == hidden.shape and reward_logits.shape == (3, 2 * 5 + 1)
    assert logits.shape == (3, 9) and value_logits.shape == (3, 11)


def test_continuous_envs_are_refused():
    with pytest.raises(ConfigError, match="discrete actions"):
        make_learner(vec_spec("gym/Pendulum-v1"), MuZeroConfig(), seed=0)


def test_train_cli_runs_and_checkpoints(tmp_path):
    sets = sum((["--set", f"{k}={v}"] for k, v in SMALL.items()), [])
    argv = ["train", "muzero", "--env", CARTPOLE, "--steps", "40", "--out", str(tmp_path)]
    assert marl_main([*argv, "--no-progress", *sets]) == 0
    rows = read_metrics(tmp_path / "metrics.csv")
    assert [r["env_steps"] for r in rows] == [20.0, 40.0]
    record = load_checkpoint(tmp_path / "checkpoint.pt", env_id=CARTPOLE, algo="muzero")
    assert record["learner"]["counters"][0] == 40 and record["config"]["hidden"] == 16
    assert muzero_eval.evaluate(tmp_path, episodes=2) is None  # no bot: `marl eval` gives returns
    assert marl_main(["eval", str(tmp_path), "--episodes", "2"]) == 0


@pytest.mark.parametrize("net", [{}, CONV])
def test_board_runs_load_as_players_for_play_and_the_mcts_bot(tmp_path, net):
    from marl.search import strength
    from marl.search.muzero import MuZeroPlayer
    from marl.search.play import load_player, play_terminal

    sets = sum((["--set", f"{k}={v}"] for k, v in (SMALL | net).items()), [])
    argv = ["train", "muzero", "--env", TTT, "--steps", "40", "--out", str(tmp_path)]
    assert marl_main([*argv, "--no-progress", *sets]) == 0
    player = load_player(None, tmp_path, simulations=6)
    assert isinstance(player, MuZeroPlayer) and player.search.simulations == 6
    assert type(player.net).__name__ == ("ConvMuZeroNet" if net else "MuZeroNet")
    printed: list[str] = []
    moves = iter(str(m) for m in range(9))
    result = play_terminal(TTT, tmp_path, input_fn=lambda _: next(moves),
                           print_fn=printed.append, simulations=4)  # fmt: skip
    assert "against MuZero" in printed[0] and any("MuZero plays" in line for line in printed)
    assert printed[-1] == {1: "You win!", 0: "Draw.", -1: "MuZero wins."}[result]
    result = strength.versus_mcts_bot(player, games=2, bot_simulations=10)
    assert result.games == 2 and result.simulations == 6
    result = muzero_eval.evaluate(tmp_path, episodes=2)  # what `marl eval RUN` calls
    assert result.games == 2 and result.bot_simulations == 1000
    learner = make_learner(vec_spec(TTT), build_config(MuZeroConfig, SMALL), seed=0)
    stats = muzero_eval.score_learner(learner, seed=0)  # `marl train --eval-every`
    assert 0.0 <= stats["eval/score"] <= 1.0 and set(stats) >= {"eval/win_rate"}


def _lost_lines(learner) -> int:
    from marl.games.minimax import results_against_all_optimal_replies

    player = learner.player(simulations=64)
    return sum(
        results_against_all_optimal_replies(player.act_batch, player_first=first)["loss"]
        for first in (True, False)
    )


@pytest.mark.slow
def test_tic_tac_toe_learns_to_defend_against_minimax():
    """The benchmark's recipe for up to 120 iterations (576 self-play moves each), checked
    every tenth from the 40th: the lines lost against every optimal minimax reply (both seats)
    drop below half the untrained net's (160). Seed 0 on an AMD EPYC host lost 130/90/75 lines
    at iterations 40/50/60, so it stops at 60 (145 s in pytest there); the count swings by
    20-40 from one check to the next (76/102/62 at 70-90), hence the checks. (The earlier
    version trained a fixed 120 iterations and also asked for fewer than 60 lines: 57 there.
    Zero losses took 300 iterations: benchmarks/muzero.py.)"""
    from benchmarks.muzero import TTT as RECIPE

    trainer = local_trainer("muzero", vec_spec(TTT), build_config(MuZeroConfig, RECIPE), 0)
    untrained = _lost_lines(trainer.learner)
    lost = train_until_passed(
        trainer, range(40, 121, 10), _lost_lines, lambda lines: lines < untrained / 2
    )
    assert lost[-1] < untrained / 2, f"untrained {untrained}; iterations 40, 50, ...: {lost}"


@pytest.mark.slow
def test_cartpole_greedy_return_rises():
    """The benchmark's CartPole recipe for up to 100 iterations (256 env steps each), checked
    at 60, 80 and 100: the greedy return of 10 episodes passes 100 (a random policy gets ~22;
    seed 0 had 91 at 50 and 115 at 60; 475 took the benchmark longer: see the README)."""
    from benchmarks.muzero import CARTPOLE as RECIPE
    from benchmarks.muzero import _greedy

    trainer = local_trainer("muzero", vec_spec(CARTPOLE), build_config(MuZeroConfig, RECIPE), 0)
    returns = train_until_passed(trainer, (60, 80, 100), _greedy, lambda r: r >= 100)
    assert returns[-1] >= 100, f"greedy returns at iterations 60, 80, 100: {returns}"


def test_a_muzero_learner_trains_and_snapshots_in_a_league(tmp_path):
    """kind = "muzero": trained between rounds on the batched rules, rated in league games
    through its snapshots (read back as MuZero players)."""
    from marl.league.config import league_from_dict
    from marl.league.runner import run_league
    from marl.league.store import LeagueStore

    players = [
        {"name": "mz", "kind": "muzero", "iterations_per_round": 2, "snapshot_every": 2,
         "simulations": 4, "config": {**SMALL, "search": {"simulations": 4}}},
        {"name": "mcts", "kind": "mcts", "simulations": 10},
        {"name": "random", "kind": "random"},
    ]  # fmt: skip
    for player in players:
        player.get("config", {}).pop("search.simulations", None)
    league = {"name": "mz", "env": "openspiel/tic_tac_toe", "seed": 0, "rounds": 2,
              "matches_per_round": 2, "games_per_match": 2, "workers": 0}  # fmt: skip
    db = run_league(league_from_dict({"league": league, "players": players}), tmp_path)
    with LeagueStore(db, readonly=True) as store:
        rated = store.game_table().players
    assert "mz@2" in rated and "mz" in rated
    snapshot = load_checkpoint(tmp_path / "snapshots" / "mz@2.pt", env_id=TTT, algo="muzero")
    assert set(snapshot["learner"]) == {"weights"}
