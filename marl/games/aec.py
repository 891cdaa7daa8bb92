"""PettingZoo AEC envs over one board of a `LineGame` (the thin adapter over the batched rules)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from pettingzoo import AECEnv

from marl.core.actions import check_action
from marl.games.lines import CONNECT_FOUR, TIC_TAC_TOE, IllegalMoveError, LineGame


class LineGameEnv(AECEnv):
    """Two players alternate on one board; the observation is the mover's-view planes.

    `observe(agent)` is a float32 array [2, rows, cols]: the agent's stones, then the
    opponent's. Legal moves are `infos[agent]["action_mask"]` (int8, 1 = legal). Rewards are
    +1 / -1 for a win / loss at the end, 0 otherwise; a draw ends with 0 for both.
    """

    metadata = {"render_modes": ["ansi", "human"], "is_parallelizable": False}

    def __init__(self, game: LineGame, render_mode: str | None = None):
        super().__init__()
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ValueError(
                f"render_mode={render_mode!r}: expected None or one of "
                f"{self.metadata['render_modes']}"
            )
        self.game = game
        self.render_mode = render_mode
        self.metadata = {**self.metadata, "name": f"{game.name}_v0"}
        self.possible_agents = ["player_0", "player_1"]
        self._obs_space = {
            a: spaces.Box(0.0, 1.0, shape=game.obs_shape, dtype=np.float32)
            for a in self.possible_agents
        }
        self._act_space = {a: spaces.Discrete(game.num_actions) for a in self.possible_agents}
        self.board = game.initial(1)

    def observation_space(self, agent: str) -> spaces.Space:
        """The same Box object on every call (PettingZoo seeds spaces by identity)."""
        return self._obs_space[agent]

    def action_space(self, agent: str) -> spaces.Space:
        """Discrete(A): a column (connect four) or a cell (tic-tac-toe)."""
        return self._act_space[agent]

    def reset(self, seed: int | None = None, options: dict | None = None) -> None:
        """Empty board, first player to move (the game has no randomness; `seed` is accepted)."""
        self.agents = list(self.possible_agents)
        self.board = self.game.initial(1)
        self.rewards = {a: 0.0 for a in self.agents}
        self._cumulative_rewards = {a: 0.0 for a in self.agents}
        self.terminations = {a: False for a in self.agents}
        self.truncations = {a: False for a in self.agents}
        self.agent_selection = self.agents[0]
        self.infos = {a: {} for a in self.agents}
        self._update_masks()

    def _update_masks(self) -> None:
        mask = self.game.legal_mask(self.board)[0].numpy().astype(np.int8)
        for a in self.agents:
            moving = a == self.agent_selection and not self.terminations[a]
            self.infos[a] = {"action_mask": mask if moving else np.zeros_like(mask)}

    def observe(self, agent: str) -> np.ndarray:
        """[2, rows, cols] float32: `agent`'s stones, then the opponent's."""
        planes = self.game.observe(self.board)[0]
        if self.possible_agents.index(agent) != int(self.game.to_play(self.board)[0]):
            planes = planes.flip(0)
        return planes.numpy().astype(np.float32)

    def step(self, action: Any) -> None:
        """Play `action` for the agent to move; raise IllegalMoveError for a masked-out one."""
        agent = self.agent_selection
        if self.terminations[agent] or self.truncations[agent]:
            self._was_dead_step(action)
            return
        if action is None:
            raise IllegalMoveError(f"{agent} must play an action in 0..{self.game.num_actions - 1}")
        check_action(agent, action, self.action_space(agent))  # int(2.7) would play column 2
        self._cumulative_rewards[agent] = 0.0
        self.board = self.game.play(self.board, torch.tensor([int(action)]))
        terminal, returns = self.game.outcome(self.board)
        self.rewards = {a: 0.0 for a in self.agents}
        if bool(terminal[0]):
            for i, a in enumerate(self.agents):
                self.rewards[a] = float(returns[0, i])
                self.terminations[a] = True
        self.agent_selection = self.agents[1 - self.agents.index(agent)]
        self._update_masks()
        self._accumulate_rewards()
        if self.render_mode == "human":
            print(self.render())

    def render(self) -> str | None:
        """The board as text (X = player_0, O = player_1)."""
        if self.render_mode is None:
            return None
        return self.game.render(self.board[0])

    def close(self) -> None:
        """Nothing to free."""


def connect_four_env(render_mode: str | None = None) -> LineGameEnv:
    """Connect four (6 rows x 7 columns) as a PettingZoo AEC env."""
    return LineGameEnv(CONNECT_FOUR, render_mode=render_mode)


def tic_tac_toe_env(render_mode: str | None = None) -> LineGameEnv:
    """Tic-tac-toe (3 x 3) as a PettingZoo AEC env."""
    return LineGameEnv(TIC_TAC_TOE, render_mode=render_mode)
