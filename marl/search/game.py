"""What search asks of a game: its rules as functions over a batch of positions."""

from __future__ import annotations

from typing import Any, Protocol

from torch import Tensor


class BatchedGame(Protocol):
    """A two-player, zero-sum, deterministic game whose rules act on B positions at once.

    A batch of positions is a tensor [B, ...] (marl.games.LineGame) or a numpy object array
    [B] (marl.search.openspiel_game.OpenSpielGame); search stores and indexes either kind.
    """

    num_actions: int  # A, the size of the action space
    obs_shape: tuple[int, ...]  # shape of one observation from `observe`

    def to_play(self, states: Any) -> Tensor:
        """[B] long: the player (0 or 1) to move; any value at finished positions."""
        ...

    def legal_mask(self, states: Any) -> Tensor:
        """[B, A] bool legal moves."""
        ...

    def play(self, states: Any, actions: Tensor, check: bool = True) -> Any:
        """The positions after the side to move plays `actions` [B] (inputs unchanged)."""
        ...

    def outcome(self, states: Any) -> tuple[Tensor, Tensor]:
        """(terminal [B] bool, returns [B, 2] float per player, 0 where not terminal)."""
        ...

    def observe(self, states: Any) -> Tensor:
        """[B, *obs_shape] float observations from the side to move's view."""
        ...


class SelfPlayGame(BatchedGame, Protocol):
    """A `BatchedGame` that AlphaZero can play from the start and learn on.

    marl's own board games (`marl.games.LineGame`) and any two-player zero-sum OpenSpiel game
    (`marl.search.openspiel_game.OpenSpielGame`) satisfy it. A game may also offer board
    symmetries (`symmetries()` and `action_permutation(cells)`, as LineGame does); training
    then augments samples with them.
    """

    name: str  # short name, as OpenSpiel knows the game (the rollout bot loads it by it)
    max_moves: int  # no game lasts longer than this many moves

    def initial(self, batch: int, device: Any = None) -> Any:
        """B fresh positions."""
        ...
