"""AlphaZero on OpenSpiel's own rules: any two-player zero-sum deterministic turn game."""

from __future__ import annotations

import numpy as np
import pyspiel
import pytest
import torch
from conftest import TTT_RECIPE, train_until_passed

from marl.algorithms import local_trainer
from marl.cli import main as marl_main
from marl.core.config import ConfigError, build_config
from marl.envs import vec_spec
from marl.games import TIC_TAC_TOE
from marl.games.minimax import results_against_all_optimal_replies
from marl.league.config import league_from_dict
from marl.league.learned import alphazero_env
from marl.league.runner import run_league
from marl.league.store import LeagueStore
from marl.run.metrics import read_metrics
from marl.search import strength
from marl.search.alphazero import AlphaZeroConfig, rules_for_env
from marl.search.openspiel_game import OpenSpielGame, planes
from marl.search.play import play_terminal

TTT = "openspiel/tic_tac_toe"
HEX = "openspiel/hex"
TINY = {
    "num_games": 8, "search.simulations": 8, "moves_per_iteration": 5, "train_steps": 2,
    "batch_size": 16, "min_buffer": 16, "channels": 8, "blocks": 1, "eval_simulations": 8,
}  # fmt: skip


def test_rules_for_openspiel_ids_take_game_parameters_and_refuse_other_games():
    hex5 = rules_for_env(HEX, {"board_size": 5})
    assert isinstance(hex5, OpenSpielGame)
    assert (hex5.num_actions, hex5.max_moves, hex5.obs_shape) == (25, 25, (10, 5, 5))
    with pytest.raises(ConfigError, match="need DETERMINISTIC"):
        rules_for_env("openspiel/kuhn_poker")
    with pytest.raises(ConfigError, match="Unknown parameter 'size'"):
        rules_for_env(HEX, {"size": 5})
    with pytest.raises(ConfigError, match="take no env kwargs"):
        rules_for_env("classic/tic_tac_toe-v0", {"board_size": 5})
    assert alphazero_env(pyspiel.load_game("hex", {"board_size": 5}))[0] == HEX
    assert alphazero_env(pyspiel.load_game("hex", {"board_size": 5}))[1]["board_size"] == 5
    assert alphazero_env(pyspiel.load_game("tic_tac_toe")) == ("classic/tic_tac_toe-v0", {})
    assert planes((7,)) == (7, 1, 1) and planes((4, 5)) == (1, 4, 5)


def test_observation_planes_add_who_is_to_move():
    game = OpenSpielGame("tic_tac_toe")
    states = game.play(game.initial(2), torch.tensor([0, 4]))  # X played; O is to move
    states = np.concatenate([states, game.initial(1)])
    obs = game.observe(states)
    assert obs.shape == (3, 4, 3, 3)
    assert obs[:2, 3].eq(1).all() and obs[2, 3].eq(0).all()  # the second player's turn plane
    assert obs[0, 2].flatten().tolist() == [1, 0, 0, 0, 0, 0, 0, 0, 0]  # planes: empty, O, X


def test_learner_trains_on_openspiel_rules_deterministically():
    def run() -> dict[str, float]:
        trainer = local_trainer("alphazero", vec_spec(TTT), build_config(AlphaZeroConfig, TINY), 3)
        stats = [trainer.iterate() for _ in range(3)][-1]
        assert trainer.learner.env_steps == 3 * 8 * 5
        return {k: v for k, v in stats.items() if not k.startswith("time/")}

    first = run()
    assert first["games"] > 0 and np.isfinite(first["loss"])
    assert first == run()


def test_train_play_and_eval_an_openspiel_run_with_game_parameters(tmp_path):
    sets = sum((["--set", f"{k}={v}"] for k, v in TINY.items()), [])
    argv = ["train", "alphazero", "--env", HEX, "--env-kwarg", "board_size=3", "--steps", "80"]
    assert marl_main([*argv, "--out", str(tmp_path), "--no-progress", *sets]) == 0
    assert [r["env_steps"] for r in read_metrics(tmp_path / "metrics.csv")] == [40.0, 80.0]
    result = strength.evaluate(tmp_path, episodes=2)  # `marl eval RUN`: vs MCTSBot on hex 3x3
    assert result.games == 2 and result.simulations == 8
    moves = iter(["z9", "a1", "b1", "c1", "a2", "b2", "c2", "a3", "b3", "c3"])
    printed: list[str] = []
    outcome = play_terminal(HEX, tmp_path, input_fn=lambda _: next(moves),
                            print_fn=printed.append, simulations=4)  # fmt: skip
    assert outcome in (-1, 1)  # hex has no draws
    assert any("'z9' is not a legal move" in line for line in printed)


def test_hex_league_rates_an_openspiel_alphazero_learner_against_mcts(tmp_path):
    league = {
        "league": {"env": "openspiel/hex", "env_kwargs": {"board_size": 4}, "rounds": 2,
                   "matches_per_round": 3, "workers": 0},
        "players": [
            {"name": "mcts50", "kind": "mcts", "simulations": 50},
            {"name": "random", "kind": "random"},
            {"name": "az", "kind": "alphazero", "iterations_per_round": 1, "snapshot_every": 1,
             "simulations": 4, "config": {**TINY, "search": {"simulations": 4}}},
        ],
    }  # fmt: skip
    league["players"][2]["config"].pop("search.simulations")
    db = run_league(league_from_dict(league), tmp_path)
    with LeagueStore(db, readonly=True) as store:
        table = store.game_table()
    assert {"az", "az@1", "mcts50", "random"} <= set(table.players)
    assert table.num_games > 0


def _spiel_positions(boards: torch.Tensor) -> np.ndarray:
    """OpenSpiel tic-tac-toe states with the stones of native boards (1 = X, -1 = O)."""
    game = OpenSpielGame("tic_tac_toe")
    states = []
    for cells in boards.tolist():
        xs = [i for i, v in enumerate(cells) if v == 1]
        os = [i for i, v in enumerate(cells) if v == -1]
        state = game.game.new_initial_state()
        for k in range(len(xs) + len(os)):
            state.apply_action(xs[k // 2] if k % 2 == 0 else os[k // 2])
        states.append(state)
    positions = game.positions(states)
    assert torch.equal(game.to_play(positions), TIC_TAC_TOE.to_play(boards).long())
    return positions


@pytest.mark.slow
def test_openspiel_tic_tac_toe_from_scratch_never_loses_to_perfect_play():
    """The native game's learning test (within 45 iterations of 64 games x 9 moves, checked
    every fifth from the 25th; 32 simulations, the recipe `TTT_RECIPE`) on OpenSpiel's rules:
    minimax's every optimal reply, from both seats, stops beating it."""
    config = build_config(AlphaZeroConfig, TTT_RECIPE)
    trainer = local_trainer("alphazero", vec_spec(TTT), config, 0)

    def losses(learner) -> dict[bool, int]:
        player = learner.player(simulations=64)
        return {
            first: results_against_all_optimal_replies(
                lambda boards: player.act_batch(_spiel_positions(boards)), player_first=first
            )["loss"]
            for first in (True, False)
        }

    lost = train_until_passed(trainer, range(25, 46, 5), losses, lambda x: sum(x.values()) == 0)
    assert lost[-1] == {True: 0, False: 0}, f"lines lost, iterations 25, 30, ...: {lost}"
