"""Natively batched rules of k-in-a-row games (tic-tac-toe, connect four) as pure functions.

A batch of positions is one int8 tensor `boards[B, rows * cols]` (row 0 at the top): +1 marks
the first player's stones, -1 the second's, 0 an empty cell. Whose turn it is follows from
the board (the first player moves when both have the same number of stones), so a position
is a single tensor and a search tree can store B x nodes positions as one array. Every
function works on CPU or GPU tensors and never loops over the batch.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import torch
from torch import Tensor


class IllegalMoveError(ValueError):
    """A move into a full column or an occupied cell, or outside the action range."""


def line_matrix(rows: int, cols: int, k: int) -> Tensor:
    """[rows * cols, L] 0/1 matrix: column l marks the k cells of the l-th straight line."""
    lines = []
    for r, c in itertools.product(range(rows), range(cols)):
        for dr, dc in ((0, 1), (1, 0), (1, 1), (1, -1)):
            cells = [(r + i * dr, c + i * dc) for i in range(k)]
            if all(0 <= rr < rows and 0 <= cc < cols for rr, cc in cells):
                lines.append([rr * cols + cc for rr, cc in cells])
    matrix = torch.zeros(rows * cols, len(lines))
    for index, cells in enumerate(lines):
        matrix[cells, index] = 1.0
    return matrix


@dataclass(frozen=True)
class LineGame:
    """A two-player k-in-a-row game on a rows x cols board, with or without gravity."""

    name: str
    """Short name, as in the env id (`tic_tac_toe`, `connect_four`)."""
    rows: int
    """Board height."""
    cols: int
    """Board width."""
    k: int
    """Stones in a row needed to win."""
    gravity: bool
    """True: an action is a column and the stone drops to its lowest empty cell (connect four);
    False: an action is a cell index `row * cols + col` (tic-tac-toe)."""
    lines: Tensor = field(init=False, repr=False, compare=False)
    """[rows * cols, L] line membership matrix (see `line_matrix`)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "lines", line_matrix(self.rows, self.cols, self.k))

    @property
    def num_actions(self) -> int:
        """A: columns for gravity games, cells otherwise."""
        return self.cols if self.gravity else self.rows * self.cols

    @property
    def obs_shape(self) -> tuple[int, int, int]:
        """Observation planes [2, rows, cols]: the side to move's stones, then the opponent's."""
        return (2, self.rows, self.cols)

    @property
    def max_moves(self) -> int:
        """No game lasts longer than the board has cells."""
        return self.rows * self.cols

    def initial(self, batch: int, device: torch.device | str = "cpu") -> Tensor:
        """[B, rows * cols] empty boards."""
        return torch.zeros(batch, self.rows * self.cols, dtype=torch.int8, device=device)

    def to_play(self, boards: Tensor) -> Tensor:
        """[B] long: 0 when the first player moves, 1 when the second does."""
        return boards.sum(dim=1, dtype=torch.long)

    def legal_mask(self, boards: Tensor) -> Tensor:
        """[B, A] bool: legal moves (all False on a finished board is NOT implied; see outcome)."""
        if self.gravity:
            return boards[:, : self.cols] == 0  # a column is open while its top cell is empty
        return boards == 0

    def play(self, boards: Tensor, actions: Tensor, check: bool = True) -> Tensor:
        """New boards after the side to move plays `actions` [B]; raise on an illegal move."""
        actions = torch.as_tensor(actions, dtype=torch.long, device=boards.device)
        if check:
            self._check_moves(boards, actions)
        cells = self._target_cells(boards, actions)
        stone = (1 - 2 * self.to_play(boards)).to(torch.int8)
        out = boards.clone()
        out.scatter_(1, cells[:, None], stone[:, None])
        return out

    def _target_cells(self, boards: Tensor, actions: Tensor) -> Tensor:
        if not self.gravity:
            return actions
        column = boards.view(-1, self.rows, self.cols).gather(
            2, actions[:, None, None].expand(-1, self.rows, 1)
        )[:, :, 0]
        landing_row = (column == 0).sum(dim=1) - 1
        return landing_row * self.cols + actions

    def _check_moves(self, boards: Tensor, actions: Tensor) -> None:
        if actions.shape != boards.shape[:1]:
            raise IllegalMoveError(
                f"expected {boards.shape[0]} actions (one per board), "
                f"got shape {tuple(actions.shape)}"
            )
        out_of_range = (actions < 0) | (actions >= self.num_actions)
        if out_of_range.any():
            b = int(out_of_range.nonzero()[0, 0])
            raise IllegalMoveError(
                f"{self.name}: action {int(actions[b])} on board {b} is outside "
                f"0..{self.num_actions - 1}"
            )
        legal = self.legal_mask(boards).gather(1, actions[:, None])[:, 0]
        if not legal.all():
            b = int((~legal).nonzero()[0, 0])
            ok = self.legal_mask(boards[b : b + 1])[0].nonzero()[:, 0].tolist()
            what = "column is full" if self.gravity else "cell is occupied"
            raise IllegalMoveError(
                f"{self.name}: action {int(actions[b])} on board {b} is illegal ({what}); "
                f"legal actions: {ok}"
            )

    def winner(self, boards: Tensor) -> Tensor:
        """[B] long: 0 or 1 for the player with k in a row, -1 where nobody has one."""
        lines = self.lines.to(boards.device)
        first = ((boards == 1).float() @ lines == self.k).any(dim=1)
        second = ((boards == -1).float() @ lines == self.k).any(dim=1)
        return torch.where(first, 0, torch.where(second, 1, -1))

    def outcome(self, boards: Tensor) -> tuple[Tensor, Tensor]:
        """(terminal [B] bool, returns [B, 2] float: +1 win, -1 loss, 0 draw or unfinished)."""
        winner = self.winner(boards)
        terminal = (winner >= 0) | (boards != 0).all(dim=1)
        sign = torch.where(winner == 0, 1.0, torch.where(winner == 1, -1.0, 0.0))
        return terminal, torch.stack([sign, -sign], dim=1)

    def observe(self, boards: Tensor) -> Tensor:
        """[B, 2, rows, cols] float planes from the side to move: own stones, then opponent's."""
        own = (1 - 2 * self.to_play(boards))[:, None].to(boards.dtype)
        planes = torch.stack([boards == own, boards == -own], dim=1).float()
        return planes.view(-1, 2, self.rows, self.cols)

    def from_observation(self, obs: Tensor) -> Tensor:
        """Boards from `observe` planes (inverse of `observe` for reachable positions)."""
        planes = torch.as_tensor(obs).reshape(-1, 2, self.rows * self.cols)
        own, opp = planes[:, 0] > 0.5, planes[:, 1] > 0.5
        second_to_move = own.sum(1) < opp.sum(1)  # the second player has one stone fewer
        own_stone = torch.where(second_to_move, -1, 1)[:, None]
        return (own * own_stone - opp * own_stone).to(torch.int8)

    def symmetries(self) -> list[Tensor]:
        """Cell permutations (incl. identity) mapping the board to itself, each [rows * cols]."""
        grid = torch.arange(self.rows * self.cols).view(self.rows, self.cols)
        maps = [grid, grid.flip(1)]
        if not self.gravity and self.rows == self.cols:
            maps = [torch.rot90(m, r) for m in maps for r in range(4)]
        return [m.reshape(-1) for m in maps]

    def action_permutation(self, cells: Tensor) -> Tensor:
        """[A] the action each action becomes under the cell permutation `cells`."""
        if self.gravity:  # only the left-right mirror keeps gravity; it maps columns directly
            return cells[: self.cols] % self.cols
        return cells

    def render(self, board: Tensor) -> str:
        """One board as text (X moves first, O second, '.' empty), with column/cell numbers."""
        marks = {1: "X", -1: "O", 0: "."}
        grid = board.view(self.rows, self.cols).tolist()
        text = [" ".join(marks[v] for v in row) for row in grid]
        if self.gravity:
            text.append(" ".join(str(c) for c in range(self.cols)))
        return "\n".join(text)


TIC_TAC_TOE = LineGame("tic_tac_toe", rows=3, cols=3, k=3, gravity=False)
CONNECT_FOUR = LineGame("connect_four", rows=6, cols=7, k=4, gravity=True)
GAMES = {g.name: g for g in (TIC_TAC_TOE, CONNECT_FOUR)}
