"""The league TOML: `[league]` settings, a `[matchmaker]` and `[[players]]`.

```toml
[league]
name = "connect_four_baselines"
env = "openspiel/connect_four"
rounds = 6                 # each round: matchmaking on the games stored so far, then play
matches_per_round = 6      # pairings drawn per round
games_per_match = 2        # games per pairing, sides alternating

[matchmaker]
kind = "pfsp"              # uniform | latest_vs_past | pfsp
weighting = "hard"         # pfsp: hard (1-x)^p or variance x(1-x)

[[players]]
name = "mcts_100"
kind = "mcts"              # random | mcts | alphazero | ppo
simulations = 100
```
Every key is checked against the dataclasses below; unknown keys name the closest valid one.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from marl.league.players import KINDS, PlayerEntry
from marl.run.config import ConfigError, build_config, closest, load_toml


@dataclass(frozen=True)
class LeagueSettings:
    """The `[league]` table: what is played, how much, and how it is seeded."""

    name: str = "league"
    """League name (the default output folder is runs/<name>)."""
    env: str = "openspiel/connect_four"
    """Game to play: openspiel/<game> for any two-player OpenSpiel game."""
    seed: int = 0
    """Seed of matchmaking and of every game."""
    rounds: int = 4
    """Rounds to play; a finished league can be extended by raising it."""
    matches_per_round: int = 4
    """Pairings drawn by the matchmaker each round."""
    games_per_match: int = 2
    """Games per pairing; who moves first alternates."""
    workers: int = 2
    """Worker processes playing games (0: play in the main process)."""

    def validate(self) -> None:
        """Refuse counts below their minimum."""
        for key, low in (("rounds", 1), ("matches_per_round", 1), ("games_per_match", 1)):
            if getattr(self, key) < low:
                raise ConfigError(f"league.{key}={getattr(self, key)}: expected >= {low}")
        if self.workers < 0:
            raise ConfigError(f"league.workers={self.workers}: expected >= 0")


@dataclass(frozen=True)
class MatchmakerConfig:
    """The `[matchmaker]` table: how each round's pairings are drawn."""

    kind: Literal["uniform", "latest_vs_past", "pfsp"] = "uniform"
    """uniform pairs, newest-vs-past versions, or prioritized fictitious self-play."""
    weighting: Literal["hard", "variance"] = "hard"
    """PFSP weighting of an opponent the focal player beats with rate x."""
    p: float = 2.0
    """Exponent of the hard weighting (1 - x)^p."""
    prior_games: float = 1.0
    """Win rates are (score + prior_games/2) / (games + prior_games)."""


@dataclass(frozen=True)
class LeagueConfig:
    """A whole league file."""

    league: LeagueSettings
    """The `[league]` table."""
    matchmaker: MatchmakerConfig
    """The `[matchmaker]` table."""
    players: tuple[PlayerEntry, ...]
    """The `[[players]]` tables, in file order."""

    @property
    def planned_games(self) -> int:
        """Games the league plays in all its rounds."""
        s = self.league
        return s.rounds * s.matches_per_round * s.games_per_match


def _player_entry(index: int, table: Any) -> PlayerEntry:
    where = f"players[{index}]"
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table ([[players]])")
    values = dict(table)
    name, kind = values.pop("name", None), values.pop("kind", None)
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{where} needs a name (a non-empty string)")
    if kind not in KINDS:
        near = closest(str(kind), KINDS)
        hint = f"; did you mean {' or '.join(near)}?" if near else ""
        raise ConfigError(f"{where} ({name}): kind={kind!r} is unknown{hint} ({', '.join(KINDS)})")
    try:
        spec = build_config(KINDS[kind][0], values)
    except ValueError as err:
        raise ConfigError(f"{where} ({name}): {err}") from None
    return PlayerEntry(name, kind, spec)


def league_from_dict(data: dict[str, Any]) -> LeagueConfig:
    """Validate a parsed league TOML."""
    sections = ("league", "matchmaker", "players")
    for key in data:
        if key not in sections:
            near = closest(key, sections)
            hint = f"; did you mean {' or '.join(near)}?" if near else ""
            raise ConfigError(f"unknown section [{key}]{hint} (sections: {', '.join(sections)})")
    league = build_config(LeagueSettings, data.get("league", {}))
    matchmaker = build_config(MatchmakerConfig, data.get("matchmaker", {}))
    players = tuple(_player_entry(i, t) for i, t in enumerate(data.get("players", [])))
    if len(players) < 2:
        raise ConfigError(f"a league needs at least two [[players]], got {len(players)}")
    names = [p.name for p in players]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"player names must be unique; repeated: {', '.join(duplicates)}")
    return LeagueConfig(league, matchmaker, players)


def load_league(path: str | Path) -> LeagueConfig:
    """Read and validate a league TOML file."""
    try:
        return league_from_dict(load_toml(path))
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None


def league_to_dict(config: LeagueConfig) -> dict[str, Any]:
    """The league as plain values (what the store keeps, and compares on resume)."""
    return {
        "league": dataclasses.asdict(config.league),
        "matchmaker": dataclasses.asdict(config.matchmaker),
        "players": [
            {"name": p.name, "kind": p.kind, **dataclasses.asdict(p.spec)} for p in config.players
        ],
    }
