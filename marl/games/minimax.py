"""A perfect tic-tac-toe player by exhaustive negamax (for tests and as a league baseline)."""

from __future__ import annotations

from functools import cache

import numpy as np
import torch
from torch import Tensor

from marl.games.lines import TIC_TAC_TOE


@cache
def negamax(cells: tuple[int, ...]) -> int:
    """Game value (+1 win, 0 draw, -1 loss) for the side to move under perfect play."""
    board = torch.tensor([cells], dtype=torch.int8)
    terminal, returns = TIC_TAC_TOE.outcome(board)
    mover = int(TIC_TAC_TOE.to_play(board)[0])
    if bool(terminal[0]):
        return int(returns[0, mover])
    return max(-negamax(child) for _, child in _children(cells))


def _children(cells: tuple[int, ...]) -> list[tuple[int, tuple[int, ...]]]:
    stone = 1 if sum(cells) == 0 else -1
    return [(a, cells[:a] + (stone,) + cells[a + 1 :]) for a in range(9) if cells[a] == 0]


def optimal_moves(board: Tensor) -> list[int]:
    """All moves that keep the best game value for the side to move on one board [9]."""
    cells = tuple(int(v) for v in board.tolist())
    scored = [(a, -negamax(child)) for a, child in _children(cells)]
    if not scored:
        raise ValueError("no legal moves: the board is full")
    best = max(score for _, score in scored)
    return [a for a, score in scored if score == best]


class MinimaxPlayer:
    """Plays an optimal move; ties broken at random (seeded) or to the lowest move."""

    def __init__(self, rng: np.random.Generator | None = None):
        self.rng = rng

    def act_batch(self, boards: Tensor) -> Tensor:
        """[B] moves for tic-tac-toe boards [B, 9]."""
        moves = []
        for board in boards:
            best = optimal_moves(board)
            moves.append(best[self.rng.integers(len(best))] if self.rng is not None else best[0])
        return torch.tensor(moves)


def results_against_all_optimal_replies(act_batch, player_first: bool) -> dict[str, int]:
    """Play `act_batch` (boards [B, 9] -> moves [B]) against EVERY optimal minimax reply.

    Branches over all of minimax's optimal moves (ties included), asking the player about all
    positions of one depth in one batch. Returns counts of final positions: win, draw, loss
    (from the player's side).
    """
    game = TIC_TAC_TOE
    counts = {"win": 0, "draw": 0, "loss": 0}
    frontier = [game.initial(1)[0]]
    player_to_move = player_first
    me = 0 if player_first else 1
    while frontier:
        boards = torch.stack(frontier)
        if player_to_move:
            nexts = list(game.play(boards, act_batch(boards)))
        else:
            nexts = [
                game.play(b[None], torch.tensor([a]))[0] for b in boards for a in optimal_moves(b)
            ]
        frontier = []
        for board in nexts:
            terminal, returns = game.outcome(board[None])
            if not bool(terminal[0]):
                frontier.append(board)
                continue
            result = int(returns[0, me])
            counts[{1: "win", 0: "draw", -1: "loss"}[result]] += 1
        player_to_move = not player_to_move
    return counts
