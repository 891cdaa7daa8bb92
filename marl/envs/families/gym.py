"""`gym/<gymnasium id>`: any gymnasium env as a one-agent ParallelEnv.

The single agent is named `agent_0`. Gymnasium's `terminated` and `truncated` map onto
PettingZoo's per-agent terminations and truncations; `state()` is the observation.
"""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np
from pettingzoo import ParallelEnv

from marl.core.config import MissingExtraError
from marl.envs.families.pixels import register_with_gymnasium
from marl.envs.teams import Register

AGENT = "agent_0"
# Families that install with gymnasium itself; other ids register on demand in `make`.
LISTED_PREFIXES = ("CartPole", "MountainCar", "Pendulum", "Acrobot", "FrozenLake", "Taxi",
                   "CliffWalking", "Blackjack")  # fmt: skip


class GymParallelEnv(ParallelEnv):
    """A gymnasium env seen as a ParallelEnv with one agent."""

    metadata = {"name": "gym_parallel", "is_parallelizable": True}

    def __init__(self, gym_id: str, **kwargs: Any) -> None:
        try:
            self.env = gymnasium.make(gym_id, **kwargs)
        except gymnasium.error.DependencyNotInstalled as err:  # MuJoCo, Box2D: one line
            hint = ' (MuJoCo ids: pip install -e ".[mujoco]")' if "MuJoCo" in str(err) else ""
            raise MissingExtraError(f"gym/{gym_id}: {err}{hint}") from None
        self.metadata = {**self.metadata, "name": gym_id, "render_modes": ["rgb_array"]}
        self.render_mode = kwargs.get("render_mode")
        self.possible_agents = [AGENT]
        self.agents: list[str] = []
        self._last_obs: Any = None

    def observation_space(self, agent: str) -> gymnasium.Space:
        """The wrapped env's observation space."""
        return self.env.observation_space

    def action_space(self, agent: str) -> gymnasium.Space:
        """The wrapped env's action space."""
        return self.env.action_space

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        """Reset the wrapped env."""
        obs, info = self.env.reset(seed=seed, options=options)
        if seed is not None:
            self.env.action_space.seed(seed)
        self.agents = [AGENT]
        self._last_obs = obs
        return {AGENT: obs}, {AGENT: info}

    def step(self, actions: dict) -> tuple[dict, dict, dict, dict, dict]:
        """Step the wrapped env with the one agent's action."""
        obs, reward, terminated, truncated, info = self.env.step(actions[AGENT])
        self._last_obs = obs
        if terminated or truncated:
            self.agents = []
        return (
            {AGENT: obs},
            {AGENT: float(reward)},
            {AGENT: bool(terminated)},
            {AGENT: bool(truncated)},
            {AGENT: info},
        )

    def state(self) -> np.ndarray:
        """The last observation, flattened (the one agent sees everything)."""
        return np.asarray(self._last_obs, dtype=np.float32).ravel()

    def render(self) -> Any:
        """Render the wrapped env."""
        return self.env.render()

    def close(self) -> None:
        """Close the wrapped env."""
        self.env.close()


def register_gym_id(register: Register, gym_id: str) -> None:
    """Register `gym/<gym_id>`."""
    register(f"gym/{gym_id}", GymParallelEnv, kind="parallel", source="gymnasium", gym_id=gym_id)


def register_all(register: Register) -> None:
    """Register the gymnasium ids that need no extra install (and marl's pixel Pendulum)."""
    register_with_gymnasium()
    for gym_id in gymnasium.envs.registry:
        if "/" not in gym_id and gym_id.startswith(LISTED_PREFIXES):
            register_gym_id(register, gym_id)
