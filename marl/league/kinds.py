"""Player kinds: each kind's spec and how it is built for a board game or a team env.

This module sits above `players` (the basic players and the specs) and `learned` (players
read from checkpoints), so neither has to know the other.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from marl.core.config import closest
from marl.league.learned import team_player, turn_player
from marl.league.players import (
    AlphaZeroSpec,
    MCTSPlayer,
    MCTSSpec,
    MuZeroSpec,
    PlayerEntry,
    PlayerError,
    PPOSpec,
    RandomPlayer,
    RandomSpec,
    SnapshotSpec,
)
from marl.league.teams import RandomTeamPlayer, TeamGame

Factory = Callable[[Any, PlayerEntry], Any]

KINDS: dict[str, tuple[type, Factory | None, Factory | None]] = {
    "random": (RandomSpec, lambda game, entry: RandomPlayer(), lambda g, e: RandomTeamPlayer()),
    "mcts": (MCTSSpec, lambda game, entry: MCTSPlayer(game, entry.spec), None),
    "alphazero": (AlphaZeroSpec, turn_player, None),
    "muzero": (MuZeroSpec, turn_player, None),
    "ppo": (PPOSpec, None, team_player),
    "snapshot": (SnapshotSpec, turn_player, team_player),
}
"""Player kind -> (its spec dataclass, factory for OpenSpiel games, factory for team envs)."""

TOML_KINDS = ("random", "mcts", "alphazero", "muzero", "ppo")
"""Kinds a league TOML may name (snapshots are added by the league itself)."""


def player_factory(game: Any, entry: PlayerEntry) -> Factory:
    """The factory that builds `entry` for `game`; a clear error if its kind cannot play it."""
    if entry.kind not in KINDS:
        near = closest(entry.kind, KINDS)
        hint = f"; did you mean {' or '.join(near)}?" if near else ""
        raise PlayerError(
            f"player {entry.name!r}: unknown kind {entry.kind!r}{hint} (kinds: {', '.join(KINDS)})"
        )
    team = isinstance(game, TeamGame)
    factory = KINDS[entry.kind][2 if team else 1]
    if factory is None:
        what = "team envs (mpe/...)" if team else "OpenSpiel board games"
        able = [k for k in TOML_KINDS if KINDS[k][2 if team else 1] is not None]
        raise PlayerError(
            f"player {entry.name!r}: kind {entry.kind!r} cannot play {what}; kinds that can: "
            f"{', '.join(able)}"
        )
    return factory


def make_player(game: Any, entry: PlayerEntry) -> Any:
    """Build the player an entry describes, for an OpenSpiel game or a `TeamGame`."""
    return player_factory(game, entry)(game, entry)
