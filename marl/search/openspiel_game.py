"""Any two-player zero-sum OpenSpiel game as a `SelfPlayGame` (positions in a numpy object array).

The rules run one pyspiel state at a time, so this is slower than a natively batched game,
but search still asks the network ONE batched question per simulation step, and AlphaZero
self-play and training run on it as on marl's own board games.

Observations are OpenSpiel's observation tensor of the side to move, shaped as planes
[C, H, W] (a flat tensor becomes [C, 1, 1]), plus one plane that is 1 where the second
player is to move: OpenSpiel's tensors are not all written from the mover's view (tic-tac-toe
has absolute X and O planes), and the value the net predicts is the mover's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyspiel
import torch
from torch import Tensor


def _objects(items: list) -> np.ndarray:
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out


class OpenSpielGame:
    """Adapter from a pyspiel game (sequential, deterministic, 2 players, zero-sum)."""

    def __init__(
        self,
        game: str | pyspiel.Game,
        device: torch.device | str = "cpu",
        params: dict[str, Any] | None = None,
    ):
        if isinstance(game, str):
            try:
                game = pyspiel.load_game(game, params or {})
            except pyspiel.SpielError as err:
                raise ValueError(f"OpenSpiel game {game!r} with {params}: {err}") from None
        self.game = game
        info = self.game.get_type()
        problems = []
        if self.game.num_players() != 2:
            problems.append(f"{self.game.num_players()} players (need 2)")
        if info.utility != pyspiel.GameType.Utility.ZERO_SUM:
            problems.append(f"utility {info.utility} (need ZERO_SUM)")
        if info.dynamics != pyspiel.GameType.Dynamics.SEQUENTIAL:
            problems.append(f"dynamics {info.dynamics} (need SEQUENTIAL)")
        if info.chance_mode != pyspiel.GameType.ChanceMode.DETERMINISTIC:
            problems.append(f"chance mode {info.chance_mode} (need DETERMINISTIC)")
        if problems:
            raise ValueError(
                f"OpenSpiel game {info.short_name!r} cannot be searched: {'; '.join(problems)}"
            )
        self.name = info.short_name
        self.device = torch.device(device)
        self.num_actions = self.game.num_distinct_actions()
        if not info.provides_observation_tensor:
            raise ValueError(f"OpenSpiel game {self.name!r} has no observation tensor to learn on")
        self.planes = planes(tuple(self.game.observation_tensor_shape()))
        self.obs_shape = (self.planes[0] + 1, *self.planes[1:])
        self.max_moves = self.game.max_game_length()

    def initial(self, batch: int, device: torch.device | str | None = None) -> np.ndarray:
        """[B] fresh initial states (`device` is accepted for the protocol; states are Python)."""
        return _objects([self.game.new_initial_state() for _ in range(batch)])

    def positions(self, states: Sequence[pyspiel.State]) -> np.ndarray:
        """[B] copies of OpenSpiel states (a league's or a bot's) as positions to search from."""
        return _objects([s.clone() for s in states])

    def to_play(self, states: np.ndarray) -> Tensor:
        """[B] player to move (0 at finished positions)."""
        return torch.tensor([max(s.current_player(), 0) for s in states], device=self.device)

    def legal_mask(self, states: np.ndarray) -> Tensor:
        """[B, A] bool legal moves (none at finished positions)."""
        rows = [
            s.legal_actions_mask() if not s.is_terminal() else [0] * self.num_actions
            for s in states
        ]
        return torch.tensor(rows, dtype=torch.bool, device=self.device).view(-1, self.num_actions)

    def play(self, states: np.ndarray, actions: Tensor, check: bool = True) -> np.ndarray:
        """New states after `actions` [B]; raise ValueError for an illegal one when `check`."""
        moves = torch.as_tensor(actions).tolist()
        if check:
            for b, (s, a) in enumerate(zip(states, moves)):
                if s.is_terminal() or a not in s.legal_actions():
                    raise ValueError(
                        f"{self.name}: action {a} on state {b} is illegal; legal actions: "
                        f"{[] if s.is_terminal() else s.legal_actions()}"
                    )
        return _objects([s.child(a) for s, a in zip(states, moves)])

    def outcome(self, states: np.ndarray) -> tuple[Tensor, Tensor]:
        """(terminal [B], returns [B, 2]; zeros for unfinished games)."""
        terminal = [s.is_terminal() for s in states]
        returns = [s.returns() if t else [0.0, 0.0] for s, t in zip(states, terminal)]
        return (
            torch.tensor(terminal, dtype=torch.bool, device=self.device),
            torch.tensor(returns, dtype=torch.float32, device=self.device).view(-1, 2),
        )

    def observe(self, states: np.ndarray) -> Tensor:
        """[B, *obs_shape] the mover's observation planes plus a second-player-to-move plane."""
        flat = np.array([s.observation_tensor(max(s.current_player(), 0)) for s in states],
                        dtype=np.float32).reshape(len(states), *self.planes)  # fmt: skip
        second = np.array([s.current_player() == 1 for s in states], dtype=np.float32)
        turn = np.broadcast_to(second[:, None, None, None], (len(states), 1, *self.planes[1:]))
        return torch.as_tensor(np.concatenate([flat, turn], axis=1), device=self.device)

    def render(self, state: pyspiel.State) -> str:
        """OpenSpiel's text picture of one position."""
        return str(state)

    def describe_moves(self, state: pyspiel.State) -> dict[str, int]:
        """The legal moves of `state` as OpenSpiel names them (text -> action id)."""
        player = state.current_player()
        return {state.action_to_string(player, a): a for a in state.legal_actions()}


def planes(shape: tuple[int, ...]) -> tuple[int, int, int]:
    """An observation tensor shape as [C, H, W] planes: [N] -> [N, 1, 1], [H, W] -> [1, H, W]."""
    if len(shape) == 1:
        return (shape[0], 1, 1)
    if len(shape) == 2:
        return (1, *shape)
    if len(shape) == 3:
        return shape
    channels = int(np.prod(shape[:-2]))
    return (channels, shape[-2], shape[-1])
