"""`VecSpec`: what a learner is built from. The shape of a vector env, with no env inside.

A learner never builds or probes an env: the env layer describes an id once
(`marl.envs.vec_spec`), or a running `VecEnv` describes itself (`VecSpec.of`), and the
learner reads agents, teams, spaces and array widths from here. A league builds a learner
for one team from that team's view in exactly the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class VecSpec:
    """Agents, teams, spaces and array widths of one multi-agent env (the N axis order)."""

    agents: tuple[str, ...]
    """N agent names, the order of every `[.., N, ..]` axis."""
    teams: dict[str, tuple[int, ...]]
    """Team name -> indices into `agents`."""
    observation_spaces: tuple[Any, ...]
    """Each agent's observation space (unpadded)."""
    action_spaces: tuple[Any, ...]
    """Each agent's action space."""
    obs_dim: int
    """O: the largest flat observation size (observations are zero-padded to it)."""
    state_dim: int
    """S: the global state size."""
    num_actions: int
    """A: the largest Discrete action count (0 for continuous actions)."""
    action_dim: int
    """The largest Box action size (0 for discrete actions)."""
    env_id: str = ""
    """The id the env was made from, where there is one."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """The kwargs it was made with."""

    @property
    def n_agents(self) -> int:
        """N."""
        return len(self.agents)

    @classmethod
    def of(cls, env: Any, env_id: str = "", env_kwargs: dict[str, Any] | None = None) -> VecSpec:
        """The spec of a running vector env (anything with the `VecEnv` attributes)."""
        teams = {team: tuple(int(i) for i in members) for team, members in env.teams.items()}
        return cls(
            tuple(env.agents), teams, tuple(env.observation_spaces), tuple(env.action_spaces),
            int(env.obs_dim), int(env.state_dim), int(env.num_actions), int(env.action_dim),
            env_id, dict(env_kwargs or {}),
        )  # fmt: skip
