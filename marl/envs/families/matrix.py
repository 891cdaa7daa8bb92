"""`matrix/<name>`: repeated normal-form games and the QMIX paper's two-step game.

Each round every player picks an action at once and receives its payoff. Observations are
the one-hot joint action of the previous round (all zeros at the start) followed by the
one-hot round counter, so a policy can condition on history and time.
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium
import numpy as np
from pettingzoo import ParallelEnv

from marl.envs.teams import Register, each_own_team, one_team


@dataclass(frozen=True)
class NormalFormGame:
    """Payoffs `payoffs[i][a0][a1]` of player i for the joint action (a0, a1)."""

    name: str
    payoffs: tuple[tuple[tuple[float, ...], ...], ...]
    cooperative: bool = False
    description: str = ""

    @property
    def num_actions(self) -> int:
        """Actions per player."""
        return len(self.payoffs[0])


def _symmetric(table: list[list[float]]) -> tuple[tuple[tuple[float, ...], ...], ...]:
    """Both players' payoffs from the row player's table of a symmetric game."""
    row = tuple(tuple(r) for r in table)
    col = tuple(tuple(table[j][i] for j in range(len(table))) for i in range(len(table)))
    return (row, col)


def _zero_sum(table: list[list[float]]) -> tuple[tuple[tuple[float, ...], ...], ...]:
    row = tuple(tuple(r) for r in table)
    return (row, tuple(tuple(-v for v in r) for r in table))


GAMES = {
    g.name: g
    for g in (
        NormalFormGame("prisoners_dilemma", _symmetric([[-1, -3], [0, -2]]),
                       description="actions (cooperate, defect)"),
        NormalFormGame("stag_hunt", _symmetric([[4, 0], [3, 3]]),
                       description="actions (stag, hare)"),
        NormalFormGame("matching_pennies", _zero_sum([[1, -1], [-1, 1]]),
                       description="actions (heads, tails); player_0 wins on a match"),
        NormalFormGame("rock_paper_scissors",
                       _zero_sum([[0, -1, 1], [1, 0, -1], [-1, 1, 0]]),
                       description="actions (rock, paper, scissors)"),
    )
}  # fmt: skip

# Rashid et al. (2018), QMIX, Figure 3: agent 0's first action picks the payoff matrix.
TWO_STEP_2A = ((7.0, 7.0), (7.0, 7.0))
TWO_STEP_2B = ((0.0, 1.0), (1.0, 8.0))


class MatrixGameEnv(ParallelEnv):
    """A normal-form game repeated for `rounds` rounds (simultaneous moves)."""

    metadata = {"name": "matrix_game", "is_parallelizable": True, "render_modes": []}

    def __init__(self, game: str = "prisoners_dilemma", rounds: int = 10) -> None:
        if game not in GAMES:
            raise ValueError(f"unknown matrix game {game!r}; expected one of {sorted(GAMES)}")
        if rounds < 1:
            raise ValueError(f"rounds={rounds}: expected at least 1")
        self.game = GAMES[game]
        self.rounds = rounds
        self.metadata = {**self.metadata, "name": game}
        self.possible_agents = ["player_0", "player_1"]
        self.agents: list[str] = []
        n = self.game.num_actions
        size = n * n + rounds
        self._obs_space = gymnasium.spaces.Box(0.0, 1.0, (size,), np.float32)
        self._act_space = gymnasium.spaces.Discrete(n)
        self._round = 0
        self._last: tuple[int, int] | None = None

    def observation_space(self, agent: str) -> gymnasium.Space:
        """One-hot previous joint action and round."""
        return self._obs_space

    def action_space(self, agent: str) -> gymnasium.Space:
        """One of the game's actions."""
        return self._act_space

    def _observe(self) -> np.ndarray:
        n = self.game.num_actions
        obs = np.zeros(self._obs_space.shape, np.float32)
        if self._last is not None:
            obs[self._last[0] * n + self._last[1]] = 1.0
        obs[n * n + min(self._round, self.rounds - 1)] = 1.0
        return obs

    def state(self) -> np.ndarray:
        """The shared observation (both players see the same history)."""
        return self._observe()

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        """Start a new repeated game (deterministic: the seed only seeds action sampling)."""
        if seed is not None:
            self._act_space.seed(seed)
        self.agents = list(self.possible_agents)
        self._round, self._last = 0, None
        return {a: self._observe() for a in self.agents}, {a: {} for a in self.agents}

    def step(self, actions: dict) -> tuple[dict, dict, dict, dict, dict]:
        """Play one round."""
        joint = (int(actions["player_0"]), int(actions["player_1"]))
        rewards = {a: float(self.game.payoffs[i][joint[0]][joint[1]])
                   for i, a in enumerate(self.agents)}  # fmt: skip
        self._round += 1
        self._last = joint
        over = self._round >= self.rounds
        agents = self.agents
        obs = {a: self._observe() for a in agents}
        if over:
            self.agents = []
        return (
            obs,
            rewards,
            {a: False for a in agents},
            {a: over for a in agents},
            {a: {} for a in agents},
        )


class TwoStepGame(ParallelEnv):
    """QMIX's two-step cooperative game: both agents get the same team reward.

    Step 1 (state 1) pays nothing; agent 0's action 0 leads to state 2A (every joint action
    pays 7), action 1 to state 2B (pays 0, 1, 1 or 8). The optimal return is 8. Observation
    and state: one-hot of (1, 2A, 2B).
    """

    metadata = {"name": "two_step", "is_parallelizable": True, "render_modes": []}

    def __init__(self) -> None:
        self.possible_agents = ["agent_0", "agent_1"]
        self.agents: list[str] = []
        self._obs_space = gymnasium.spaces.Box(0.0, 1.0, (3,), np.float32)
        self._act_space = gymnasium.spaces.Discrete(2)
        self._state = 0

    def observation_space(self, agent: str) -> gymnasium.Space:
        """One-hot of the current state."""
        return self._obs_space

    def action_space(self, agent: str) -> gymnasium.Space:
        """Two actions."""
        return self._act_space

    def state(self) -> np.ndarray:
        """One-hot of (1, 2A, 2B)."""
        return np.eye(3, dtype=np.float32)[self._state]

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        """Back to state 1."""
        if seed is not None:
            self._act_space.seed(seed)
        self.agents = list(self.possible_agents)
        self._state = 0
        return {a: self.state() for a in self.agents}, {a: {} for a in self.agents}

    def step(self, actions: dict) -> tuple[dict, dict, dict, dict, dict]:
        """Move to 2A/2B, or pay the second step's team reward and end."""
        a0, a1 = int(actions["agent_0"]), int(actions["agent_1"])
        agents = self.agents
        if self._state == 0:
            self._state = 1 if a0 == 0 else 2
            reward, over = 0.0, False
        else:
            table = TWO_STEP_2A if self._state == 1 else TWO_STEP_2B
            reward, over = table[a0][a1], True
        obs = {a: self.state() for a in agents}
        if over:
            self.agents = []
        done = {a: over for a in agents}
        return (
            obs,
            {a: reward for a in agents},
            done,
            {a: False for a in agents},
            {a: {} for a in agents},
        )


def register_all(register: Register) -> None:
    """Register `matrix/<game>-v0` for each game and `matrix/two_step-v0`."""
    for name, game in GAMES.items():
        teams = one_team if game.cooperative else each_own_team
        register(f"matrix/{name}-v0", MatrixGameEnv, kind="parallel", family="matrix",
                 source="marl", teams=teams, game=name)  # fmt: skip
    register("matrix/two_step-v0", TwoStepGame, kind="parallel", family="matrix",
             source="marl", teams=one_team)  # fmt: skip
