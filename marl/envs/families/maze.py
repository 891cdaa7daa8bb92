"""`maze/<name>`: deterministic grid mazes with one agent and a Discrete observation.

`maze/dyna_maze-v0` is Sutton & Barto's Dyna maze (Example 8.1, Figure 8.2): a 6 x 9 grid,
start S at (row 2, col 0), goal G at (0, 8), walls # at (1,2), (2,2), (3,2), (4,5), (0,7),
(1,7), (2,7)::

    .......#G
    ..#....#.
    S.#....#.
    ..#......
    .....#...
    .........

Actions 0 up, 1 right, 2 down, 3 left; a move into a wall or off the grid leaves the agent
where it is. Reaching the goal pays 1 and ends the episode (terminated); every other step
pays 0. The observation is the cell index row * cols + col (Discrete(rows * cols)). The book
discounts with gamma = 0.95; the shortest path takes 14 steps. An episode is truncated
after `max_cycles` steps (the book has no limit; the default is long enough that a random
walk almost always reaches the goal first).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import gymnasium
import numpy as np
from pettingzoo import ParallelEnv

from marl.envs.teams import Register

AGENT = "agent_0"
MOVES = ((-1, 0), (0, 1), (1, 0), (0, -1))  # up, right, down, left
Cell = tuple[int, int]


@dataclass(frozen=True)
class MazeLayout:
    """A grid read from rows of '.', '#' (wall), 'S' (start) and 'G' (goal)."""

    rows: tuple[str, ...]

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, cols)."""
        return len(self.rows), len(self.rows[0])

    def find(self, char: str) -> Cell:
        """The one cell holding `char`."""
        return next(
            (r, c) for r, row in enumerate(self.rows) for c, x in enumerate(row) if x == char
        )

    @property
    def start(self) -> Cell:
        """Where every episode begins."""
        return self.find("S")

    @property
    def goal(self) -> Cell:
        """The terminal cell."""
        return self.find("G")

    def is_wall(self, cell: Cell) -> bool:
        """True off the grid or on a '#'."""
        rows, cols = self.shape
        r, c = cell
        return not (0 <= r < rows and 0 <= c < cols) or self.rows[r][c] == "#"

    def index(self, cell: Cell) -> int:
        """The observation of `cell`: row * cols + col."""
        return cell[0] * self.shape[1] + cell[1]


LAYOUTS = {
    "dyna_maze": MazeLayout(
        (
            ".......#G",
            "..#....#.",
            "S.#....#.",
            "..#......",
            ".....#...",
            ".........",
        )
    ),
}


def maze_step(layout: MazeLayout, cell: Cell, action: int) -> tuple[Cell, float, bool]:
    """(next cell, reward, terminated) of moving from `cell` with `action`."""
    dr, dc = MOVES[action]
    target = (cell[0] + dr, cell[1] + dc)
    nxt = cell if layout.is_wall(target) else target
    reached = nxt == layout.goal
    return nxt, float(reached), reached


def shortest_path_length(layout: MazeLayout) -> int:
    """Fewest steps from start to goal (breadth-first search)."""
    dist = {layout.start: 0}
    queue = deque([layout.start])
    while queue:
        cell = queue.popleft()
        for action in range(len(MOVES)):
            nxt, _, _ = maze_step(layout, cell, action)
            if nxt not in dist:
                dist[nxt] = dist[cell] + 1
                queue.append(nxt)
    return dist[layout.goal]


def greedy_path_length(layout: MazeLayout, q: np.ndarray) -> int | None:
    """Steps the greedy policy of `q` [cells, 4] takes from start to goal (ties go to the
    lowest action), or None if it never arrives (it comes back to a cell: a loop)."""
    cell, visited = layout.start, set()
    while cell not in visited:
        visited.add(cell)
        cell, _, reached = maze_step(layout, cell, int(np.argmax(q[layout.index(cell)])))
        if reached:
            return len(visited)
    return None


class MazeEnv(ParallelEnv):
    """A grid maze as a one-agent ParallelEnv (deterministic: the seed seeds sampling only)."""

    metadata = {"name": "maze", "is_parallelizable": True, "render_modes": ["ansi"]}

    def __init__(
        self, layout: str = "dyna_maze", max_cycles: int = 10_000, render_mode: str | None = None
    ) -> None:
        if layout not in LAYOUTS:
            raise ValueError(f"unknown maze layout {layout!r}; expected one of {sorted(LAYOUTS)}")
        if max_cycles < 1:
            raise ValueError(f"max_cycles={max_cycles}: expected at least 1")
        self.layout = LAYOUTS[layout]
        self.max_cycles = max_cycles
        self.render_mode = render_mode
        self.metadata = {**self.metadata, "name": layout}
        self.possible_agents = [AGENT]
        self.agents: list[str] = []
        rows, cols = self.layout.shape
        self._obs_space = gymnasium.spaces.Discrete(rows * cols)
        self._act_space = gymnasium.spaces.Discrete(len(MOVES))
        self._cell = self.layout.start
        self._steps = 0

    def observation_space(self, agent: str) -> gymnasium.Space:
        """The cell index."""
        return self._obs_space

    def action_space(self, agent: str) -> gymnasium.Space:
        """Up, right, down, left."""
        return self._act_space

    def state(self) -> np.ndarray:
        """One-hot of the agent's cell."""
        state = np.zeros(self._obs_space.n, np.float32)
        state[self.layout.index(self._cell)] = 1.0
        return state

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        """Put the agent on the start cell."""
        if seed is not None:
            self._act_space.seed(seed)
        self.agents = [AGENT]
        self._cell, self._steps = self.layout.start, 0
        return {AGENT: self.layout.index(self._cell)}, {AGENT: {}}

    def step(self, actions: dict) -> tuple[dict, dict, dict, dict, dict]:
        """Move one cell."""
        self._cell, reward, terminated = maze_step(self.layout, self._cell, int(actions[AGENT]))
        self._steps += 1
        truncated = not terminated and self._steps >= self.max_cycles
        if terminated or truncated:
            self.agents = []
        return (
            {AGENT: self.layout.index(self._cell)},
            {AGENT: reward},
            {AGENT: terminated},
            {AGENT: truncated},
            {AGENT: {}},
        )

    def render(self) -> str:
        """The grid with the agent as 'A'."""
        rows = [list(row) for row in self.layout.rows]
        rows[self._cell[0]][self._cell[1]] = "A"
        return "\n".join("".join(row) for row in rows)


def register_all(register: Register) -> None:
    """Register `maze/<layout>-v0` for each layout."""
    for name in LAYOUTS:
        register(f"maze/{name}-v0", MazeEnv, kind="parallel", family="maze", source="marl",
                 layout=name)  # fmt: skip
