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
kind = "mcts"              # random | mcts | alphazero | muzero | ppo
simulations = 100

[[players]]
name = "az"
kind = "alphazero"         # no checkpoint: a learner the league trains between rounds
iterations_per_round = 4
snapshot_every = 8
[players.config]           # checked against marl.search.alphazero.CONFIG
num_games = 32
```
Every key is checked against the dataclasses below; unknown keys name the closest valid one.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from marl.core.config import ConfigError, build_config, closest, load_toml
from marl.league.kinds import KINDS, TOML_KINDS
from marl.league.players import LearnedSpec, PlayerEntry, is_learner


@dataclass(frozen=True)
class LeagueSettings:
    """The `[league]` table: what is played, how much, and how it is seeded."""

    name: str = "league"
    """League name (the default output folder is runs/<name>)."""
    env: str = "openspiel/connect_four"
    """Game to play: openspiel/<game> (a two-player OpenSpiel game) or a two-team env id."""
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
    env_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    """Keyword arguments of a team env (e.g. max_cycles for mpe/simple_tag-v3)."""
    win_threshold: float = 0.0
    """Team envs: the first team wins a game when its per-agent episode return exceeds this."""

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
    calibration_matches: int = 0
    """Extra pairings per round between two frozen players (baselines, snapshots), drawn
    uniformly, so that their ratings are tied to each other and not only to the learners."""

    def validate(self) -> None:
        """Refuse values outside their range."""
        if self.calibration_matches < 0:
            raise ConfigError(f"calibration_matches={self.calibration_matches}: expected >= 0")
        for name in ("prior_games", "p"):  # 0 prior games: 0/0 win rates of pairs never met
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"{name}={value}: expected a positive number")


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
        return (
            s.rounds
            * (s.matches_per_round + self.matchmaker.calibration_matches)
            * (s.games_per_match)
        )


def _table(where: str, key: str, values: dict[str, Any]) -> dict[str, Any]:
    """Pop the sub-table `key` from `values` (empty if absent), refusing a non-table."""
    table = values.pop(key, {})
    if not isinstance(table, dict):
        raise ConfigError(
            f"{where}: {key} = {table!r}: expected a table ([{key}] or {key} = {{...}})"
        )
    return table


def _learner_config(spec: LearnedSpec) -> None:
    """Check a learner's [players.config] table against its learner's CONFIG."""
    from marl.algorithms import make_config

    make_config(getattr(spec, "algo", "alphazero"), spec.config)


def _player_entry(index: int, table: Any) -> PlayerEntry:
    where = f"players[{index}]"
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table ([[players]])")
    values = dict(table)
    name, kind = values.pop("name", None), values.pop("kind", None)
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{where} needs a name (a non-empty string)")
    if "@" in name:  # a learner's snapshots are named <learner>@<updates>
        raise ConfigError(f"{where} ({name}): '@' is kept for snapshot names; rename the player")
    if kind not in TOML_KINDS:
        near = closest(str(kind), TOML_KINDS)
        hint = f"; did you mean {' or '.join(near)}?" if near else ""
        raise ConfigError(
            f"{where} ({name}): kind={kind!r} is unknown{hint} ({', '.join(TOML_KINDS)})"
        )
    spec_type = KINDS[kind][0]
    learned = issubclass(spec_type, LearnedSpec)
    config = _table(f"{where} ({name})", "config", values) if learned else None
    try:
        spec = build_config(spec_type, values)
        if learned:
            spec = dataclasses.replace(spec, config=config)
            _learner_config(spec)
    except ValueError as err:
        raise ConfigError(f"{where} ({name}): {err}") from None
    if kind == "ppo" and not spec.team:
        raise ConfigError(f"{where} ({name}): a ppo player needs team = <the team it controls>")
    return PlayerEntry(name, kind, spec)


def league_from_dict(data: dict[str, Any]) -> LeagueConfig:
    """Validate a parsed league TOML."""
    sections = ("league", "matchmaker", "players")
    for key in data:
        if key not in sections:
            near = closest(key, sections)
            hint = f"; did you mean {' or '.join(near)}?" if near else ""
            raise ConfigError(f"unknown section [{key}]{hint} (sections: {', '.join(sections)})")
    data = dict(data)
    league_table = _table("the league file", "league", data)
    env_kwargs = _table("[league]", "env_kwargs", league_table)
    league = dataclasses.replace(build_config(LeagueSettings, league_table), env_kwargs=env_kwargs)
    matchmaker = build_config(MatchmakerConfig, _table("the league file", "matchmaker", data))
    tables = data.get("players", [])
    if not isinstance(tables, list):
        raise ConfigError(f"players = {tables!r}: expected [[players]] tables, one per player")
    players = tuple(_player_entry(i, t) for i, t in enumerate(tables))
    if len(players) < 2:
        raise ConfigError(f"a league needs at least two [[players]], got {len(players)}")
    names = [p.name for p in players]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"player names must be unique; repeated: {', '.join(duplicates)}")
    learners = sum(is_learner(p) for p in players)
    if learners > league.matches_per_round:
        raise ConfigError(
            f"league.matches_per_round={league.matches_per_round} is below the {learners} "
            "learners: each learner needs at least one match (its opponents) per round"
        )
    return LeagueConfig(league, matchmaker, players)


def load_league(path: str | Path) -> LeagueConfig:
    """Read and validate a league TOML file."""
    try:
        return league_from_dict(load_toml(path))
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None


def league_to_dict(config: LeagueConfig) -> dict[str, Any]:
    """The league as plain JSON values (what the store keeps, and compares on resume)."""
    plain = {
        "league": dataclasses.asdict(config.league),
        "matchmaker": dataclasses.asdict(config.matchmaker),
        "players": [
            {"name": p.name, "kind": p.kind, **dataclasses.asdict(p.spec)} for p in config.players
        ],
    }
    return json.loads(json.dumps(plain))  # tuples become lists, as they come back from JSON
