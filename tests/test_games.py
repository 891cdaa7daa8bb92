"""Batched k-in-a-row rules: table tests of positions, and the PettingZoo adapters."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pettingzoo.test import api_test, seed_test

from marl.games import CONNECT_FOUR, TIC_TAC_TOE, IllegalMoveError, game_for_env
from marl.games.aec import connect_four_env, tic_tac_toe_env
from marl.games.lines import line_matrix


def board(game, text: str) -> torch.Tensor:
    """One board from rows of X (first player), O (second player) and '.'."""
    values = {"X": 1, "O": -1, ".": 0}
    cells = [values[ch] for ch in text.split()]
    assert len(cells) == game.rows * game.cols
    return torch.tensor([cells], dtype=torch.int8)


def test_line_counts_match_known_totals():
    assert line_matrix(3, 3, 3).shape == (9, 8)
    assert line_matrix(6, 7, 4).shape == (42, 69)
    assert (line_matrix(6, 7, 4).sum(0) == 4).all()


TTT_POSITIONS = [  # board, terminal, winner
    ("X X X  O O .  . . .", True, 0),  # row
    ("X O .  X O .  . . X", False, -1),  # nothing yet
    ("O X X  O X .  O . X", True, 1),  # column
    ("X O O  . X .  . . X", True, 0),  # main diagonal
    ("X X O  X O .  O . .", True, 1),  # anti-diagonal
    ("X O X  X O O  O X X", True, -1),  # full board, draw
]


@pytest.mark.parametrize(("text", "terminal", "winner"), TTT_POSITIONS)
def test_tic_tac_toe_outcomes(text, terminal, winner):
    b = board(TIC_TAC_TOE, text)
    term, returns = TIC_TAC_TOE.outcome(b)
    assert bool(term[0]) == terminal
    assert int(TIC_TAC_TOE.winner(b)[0]) == winner
    expected = {0: [1.0, -1.0], 1: [-1.0, 1.0], -1: [0.0, 0.0]}[winner]
    assert returns[0].tolist() == expected


C4_POSITIONS = [  # board (row 0 on top), winner
    (". . . . . . .  . . . . . . .  . . . . . . .  . . . . . . .  O O O . . . .  X X X X . . .", 0),
    (". . . . . . .  . . . . . . .  . . . . . . O  . . . . X X O  . . . . X X O  . . . . X X O", 1),
    (". . . . . . .  . . . . . . .  . . . X . . .  . . X O . . .  . X O O . . .  X O X X O . .", 0),
    (". . . . . . .  . . . . . . .  . . . O . . .  . . . X O . .  . . . X X O .  . . X X X O O", 1),
    (
        ". . . . . . .  . . . . . . .  . . . . . . .  . . . . . . .  . . . . . . .  X X X O O O X",
        -1,
    ),
]


@pytest.mark.parametrize(("text", "winner"), C4_POSITIONS)
def test_connect_four_wins_in_every_direction(text, winner):
    assert int(CONNECT_FOUR.winner(board(CONNECT_FOUR, text))[0]) == winner


def test_batch_mixes_positions_in_one_call():
    boards = torch.cat([board(TIC_TAC_TOE, t) for t, _, _ in TTT_POSITIONS])
    term, _ = TIC_TAC_TOE.outcome(boards)
    assert term.tolist() == [t for _, t, _ in TTT_POSITIONS]
    assert TIC_TAC_TOE.winner(boards).tolist() == [w for _, _, w in TTT_POSITIONS]


def test_connect_four_full_board_draw():
    rows = ["X X O O X X O", "O O X X O O X"] * 3
    b = board(CONNECT_FOUR, "  ".join(rows))
    term, returns = CONNECT_FOUR.outcome(b)
    assert bool(term[0]) and returns[0].tolist() == [0.0, 0.0]
    assert not CONNECT_FOUR.legal_mask(b).any()


def test_gravity_drops_stones_and_players_alternate():
    boards = CONNECT_FOUR.initial(2)
    boards = CONNECT_FOUR.play(boards, torch.tensor([3, 0]))
    boards = CONNECT_FOUR.play(boards, torch.tensor([3, 6]))
    grid = boards.view(2, 6, 7)
    assert grid[0, 5, 3] == 1 and grid[0, 4, 3] == -1
    assert grid[1, 5, 0] == 1 and grid[1, 5, 6] == -1
    assert CONNECT_FOUR.to_play(boards).tolist() == [0, 0]


def test_full_column_and_occupied_cell_are_illegal():
    b = CONNECT_FOUR.initial(1)
    for _ in range(6):
        b = CONNECT_FOUR.play(b, torch.tensor([2]))
    assert CONNECT_FOUR.legal_mask(b)[0].tolist() == [True, True, False, True, True, True, True]
    with pytest.raises(
        IllegalMoveError, match=r"action 2 on board 0 is illegal \(column is full\)"
    ):
        CONNECT_FOUR.play(b, torch.tensor([2]))
    t = TIC_TAC_TOE.play(TIC_TAC_TOE.initial(1), torch.tensor([4]))
    with pytest.raises(IllegalMoveError, match=r"cell is occupied.*legal actions: \[0, 1, 2, 3, 5"):
        TIC_TAC_TOE.play(t, torch.tensor([4]))
    with pytest.raises(IllegalMoveError, match="outside 0..8"):
        TIC_TAC_TOE.play(t, torch.tensor([9]))


def test_observation_is_from_the_side_to_move_and_invertible():
    b = board(TIC_TAC_TOE, "X . .  . O .  . . X")  # O to move
    obs = TIC_TAC_TOE.observe(b)
    assert obs.shape == (1, 2, 3, 3)
    assert obs[0, 0].flatten().tolist() == [0, 0, 0, 0, 1, 0, 0, 0, 0]
    assert obs[0, 1].flatten().tolist() == [1, 0, 0, 0, 0, 0, 0, 0, 1]
    assert torch.equal(TIC_TAC_TOE.from_observation(obs), b)


def test_mirror_maps_boards_and_actions_consistently():
    b = CONNECT_FOUR.play(CONNECT_FOUR.initial(1), torch.tensor([1]))
    mirror = CONNECT_FOUR.symmetries()[1]
    flipped = b[:, mirror]
    expected = CONNECT_FOUR.play(CONNECT_FOUR.initial(1), torch.tensor([5]))
    assert torch.equal(flipped, expected)
    assert CONNECT_FOUR.action_permutation(mirror).tolist() == [6, 5, 4, 3, 2, 1, 0]
    assert len(TIC_TAC_TOE.symmetries()) == 8
    assert len({tuple(p.tolist()) for p in TIC_TAC_TOE.symmetries()}) == 8


@pytest.mark.parametrize("make_env", [connect_four_env, tic_tac_toe_env])
def test_pettingzoo_api_and_seed(make_env):
    api_test(make_env(), num_cycles=100)
    seed_test(make_env, num_cycles=100)


def test_aec_env_rewards_a_win_and_masks_in_infos():
    env = tic_tac_toe_env()
    env.reset(seed=0)
    for action in (0, 3, 1, 4, 2):
        mask = env.infos[env.agent_selection]["action_mask"]
        assert mask.dtype == np.int8 and mask[action] == 1
        env.step(action)
    assert env.rewards == {"player_0": 1.0, "player_1": -1.0}
    assert all(env.terminations.values())
    obs = env.observe("player_1")
    assert obs[0].flatten().tolist() == [0, 0, 0, 1, 1, 0, 0, 0, 0]


def test_unknown_env_id_names_the_closest():
    with pytest.raises(ValueError, match="did you mean classic/connect_four-v0"):
        game_for_env("classic/connect_for-v0")


def test_registered_ids_make_the_adapters():
    from marl.envs import registry

    env = registry.make("classic/connect_four-v0")
    env.reset(seed=0)
    assert env.agents == ["player_0", "player_1"]
    assert registry.registration("classic/tic_tac_toe-v0").family == "classic"
