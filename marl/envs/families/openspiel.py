"""`openspiel/<game>`: OpenSpiel games as PettingZoo AECEnvs through Shimmy.

Shimmy's `OpenSpielCompatibilityV0` does the conversion; marl adds two things. Game
parameters are kwargs (`marl.make("openspiel/connect_four", rows=5)`). And each env owns
freshly-made action spaces that `reset(seed=...)` seeds, so sampling actions is reproducible
from the seed (Shimmy's own spaces are rebuilt unseeded as the game advances, which fails
PettingZoo's `seed_test`); and after a seeded reset, each later unseeded one (an autoreset)
deals its chance outcomes from a seed drawn from the first, where Shimmy would take fresh
OS entropy, so a seeded run's every episode repeats. Action masks are in
`infos[agent]["action_mask"]`.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import gymnasium
import numpy as np
import pyspiel
from pettingzoo.utils.wrappers import BaseWrapper

from marl.envs.teams import Register, each_own_team

# Games that wrap another game or a file and so cannot load with default parameters
# (`pyspiel.load_game(name)` fails: "Missing parameter game"); load those with pyspiel.
EXCLUDED = frozenset({
    "add_noise", "cached_tree", "efg_game", "misere", "normal_form_extensive_game",
    "repeated_game", "restricted_nash_response", "start_at", "turn_based_simultaneous_game",
    "zerosum", "python_team_dominoes", "universal_poker", "repeated_poker",
})  # fmt: skip


class SeededSpaces(BaseWrapper):
    """Per-instance action and observation spaces, seeded by `reset(seed=...)`."""

    def __init__(self, env: Any) -> None:
        super().__init__(env)
        # Shimmy applies a simultaneous-move game's joint action once every agent has acted,
        # which is exactly what PettingZoo's AEC-to-parallel conversion needs.
        simultaneous = env.game_type.dynamics == pyspiel.GameType.Dynamics.SIMULTANEOUS
        self.metadata = {**env.metadata, "is_parallelizable": simultaneous}
        self._action_spaces = {a: env.action_space(a) for a in env.possible_agents}
        self._observation_spaces = {a: env.observation_space(a) for a in env.possible_agents}
        self._episode_seeds: np.random.Generator | None = None  # set by a seeded reset

    def action_space(self, agent: str) -> gymnasium.Space:
        """This instance's action space of `agent`."""
        return self._action_spaces[agent]

    def observation_space(self, agent: str) -> gymnasium.Space:
        """This instance's observation space of `agent`."""
        return self._observation_spaces[agent]

    def reset(self, seed: int | None = None, options: dict | None = None) -> None:
        """Reset the game; with a seed, seed each agent's action space and the episodes'
        chance outcomes from it (an unseeded reset after a seeded one takes the next seed
        of that stream; one before any seeded reset is unseeded, as in Shimmy)."""
        game_seed = seed
        if seed is not None:
            self._episode_seeds = np.random.default_rng(seed)
        elif self._episode_seeds is not None:
            game_seed = int(self._episode_seeds.integers(2**31))
        super().reset(seed=game_seed, options=options)
        if seed is not None:
            for i, agent in enumerate(self.possible_agents):
                self._action_spaces[agent].seed(seed + i)


def openspiel_env(game_name: str, render_mode: str | None = None, **params: Any) -> SeededSpaces:
    """Make an OpenSpiel game as a PettingZoo AECEnv (game parameters as kwargs)."""
    from shimmy import OpenSpielCompatibilityV0

    # By name and config, not a loaded game: Shimmy reloads the game from these on reset.
    env = OpenSpielCompatibilityV0(
        game_name=game_name, config=params or None, render_mode=render_mode
    )
    return SeededSpaces(env)


@cache
def multiplayer_games() -> tuple[str, ...]:
    """Short names of the OpenSpiel games for two or more players that Shimmy can observe."""
    names = []
    for game_type in pyspiel.registered_games():
        name = game_type.short_name
        if name in EXCLUDED or name.startswith("mfg_") or game_type.max_num_players < 2:
            continue
        if not (
            game_type.provides_observation_tensor or game_type.provides_information_state_tensor
        ):
            continue
        names.append(name)
    return tuple(sorted(names))


def register_all(register: Register) -> None:
    """Register `openspiel/<game>` for every multiplayer game."""
    for name in multiplayer_games():
        register(
            f"openspiel/{name}",
            openspiel_env,
            kind="aec",
            family="openspiel",
            source="open_spiel",
            teams=each_own_team,
            game_name=name,
        )


def kwarg_defaults(env_id: str) -> dict[str, Any]:
    """The game's parameters with their defaults, plus `render_mode`."""
    game_type = pyspiel.load_game(env_id.split("/", 1)[1]).get_type()
    return {**game_type.parameter_specification, "render_mode": None}
