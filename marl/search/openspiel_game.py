"""Any two-player zero-sum OpenSpiel game as a `BatchedGame` (positions in a numpy object array).

The rules run one pyspiel state at a time, so this is slower than a natively batched game,
but search still asks the network ONE batched question per simulation step.
"""

from __future__ import annotations

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

    def __init__(self, game: str | pyspiel.Game, device: torch.device | str = "cpu"):
        self.game = pyspiel.load_game(game) if isinstance(game, str) else game
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
        self.obs_shape = tuple(self.game.observation_tensor_shape())

    def initial(self, batch: int) -> np.ndarray:
        """[B] fresh initial states."""
        return _objects([self.game.new_initial_state() for _ in range(batch)])

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
        """[B, *obs_shape] observation tensors from the side to move."""
        flat = np.array([s.observation_tensor() for s in states], dtype=np.float32)
        return torch.as_tensor(flat, device=self.device).view(-1, *self.obs_shape)
