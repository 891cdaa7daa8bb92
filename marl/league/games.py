"""A table of two-player game results: the input of every rating fit.

A game is (player_a, player_b, score_a, first): `score_a` is 1 when A won, 0.5 for a draw,
0 when B won (any value in [0, 1] is accepted), and `first` names who moved first (or is
empty when unknown). The table is read from a CSV file or from a league's SQLite store.
"""

from __future__ import annotations

import csv
import reprlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CSV_COLUMNS = ("player_a", "player_b", "score_a")
"""Columns a games CSV must have; an optional `first` column names who moved first."""


class GamesError(ValueError):
    """A games table or file that cannot be read as two-player results."""


@dataclass(frozen=True)
class GameTable:
    """Results of G two-player games between P named players."""

    players: tuple[str, ...]
    """The P player names, sorted, so that a table does not depend on the order of games."""
    a: np.ndarray
    """[G] int: index of player A of each game."""
    b: np.ndarray
    """[G] int: index of player B of each game."""
    score: np.ndarray
    """[G] float in [0, 1]: A's score (1 win, 0.5 draw, 0 loss)."""
    first: np.ndarray
    """[G] int8: +1 when A moved first, -1 when B did, 0 when unknown."""

    @property
    def num_games(self) -> int:
        """G, the number of games."""
        return int(self.a.shape[0])

    @property
    def num_players(self) -> int:
        """P, the number of players."""
        return len(self.players)

    def take(self, index: np.ndarray) -> GameTable:
        """The games at `index` (used to resample games for bootstrap intervals)."""
        return GameTable(
            self.players, self.a[index], self.b[index], self.score[index], self.first[index]
        )

    def games_played(self) -> np.ndarray:
        """[P] number of games each player took part in."""
        p = self.num_players
        return np.bincount(self.a, minlength=p) + np.bincount(self.b, minlength=p)

    def mean_score(self) -> np.ndarray:
        """[P] each player's average score over its games (NaN for a player with none)."""
        p = self.num_players
        total = np.bincount(self.a, self.score, p) + np.bincount(self.b, 1.0 - self.score, p)
        with np.errstate(invalid="ignore", divide="ignore"):
            return total / self.games_played()

    def score_matrix(self) -> tuple[np.ndarray, np.ndarray]:
        """([P, P] summed score of row player against column player, [P, P] games played)."""
        p = self.num_players
        score = np.zeros((p, p))
        count = np.zeros((p, p))
        np.add.at(score, (self.a, self.b), self.score)
        np.add.at(score, (self.b, self.a), 1.0 - self.score)
        np.add.at(count, (self.a, self.b), 1.0)
        np.add.at(count, (self.b, self.a), 1.0)
        return score, count


def _check_row(where: str, a: str, b: str, score: float, first: str | None) -> None:
    if not a or not b:
        raise GamesError(f"{where}: player names must not be empty")
    if a == b:
        raise GamesError(f"{where}: player {a!r} cannot play itself")
    if not 0.0 <= score <= 1.0:
        raise GamesError(f"{where}: score_a={score!r} must be in [0, 1] (1 win, 0.5 draw)")
    if first not in (None, "", a, b):
        raise GamesError(
            f"{where}: first={first!r} must be player_a ({a!r}), player_b ({b!r}) or empty"
        )


def game_table(records: Iterable[tuple[str, str, float, str | None]]) -> GameTable:
    """Build a table from (player_a, player_b, score_a, first_or_None) records."""
    rows = list(records)
    for i, (a, b, score, first) in enumerate(rows, start=1):
        _check_row(f"game {i}", a, b, float(score), first)
    players = tuple(sorted({r[0] for r in rows} | {r[1] for r in rows}))
    index = {name: i for i, name in enumerate(players)}
    a = np.array([index[r[0]] for r in rows], dtype=np.int64)
    b = np.array([index[r[1]] for r in rows], dtype=np.int64)
    score = np.array([float(r[2]) for r in rows], dtype=np.float64)
    first = np.array(
        [1 if r[3] == r[0] else -1 if r[3] == r[1] else 0 for r in rows], dtype=np.int8
    )
    return GameTable(players, a, b, score, first)


def _parse_score(text: str, row: int) -> float:
    try:
        return float(text)
    except ValueError:
        raise GamesError(f"line {row}: score_a={text!r} is not a number (1, 0.5 or 0)") from None


def read_games_csv(path: str | Path) -> GameTable:
    """Read a CSV with columns player_a, player_b, score_a and an optional `first`."""
    path = Path(path)
    if not path.is_file():
        raise GamesError(f"games file {path} does not exist")
    with path.open("rb") as f:
        if f.read(16) == b"SQLite format 3\x00":
            raise GamesError(f"{path} is an SQLite database, not a CSV; a league's is named .db")
    try:
        return _read_csv(path)
    except UnicodeDecodeError:
        raise GamesError(
            f"{path} is not a UTF-8 text CSV (for a league database, pass its folder or .db)"
        ) from None


def _read_csv(path: Path) -> GameTable:
    with path.open(newline="", encoding="utf-8-sig") as f:  # -sig: Excel starts with a BOM
        reader = csv.DictReader(f)
        columns = [c.strip() for c in reader.fieldnames or []]
        missing = [c for c in CSV_COLUMNS if c not in columns]
        if missing:
            raise GamesError(
                f"{path} lacks column(s) {', '.join(missing)}; it has "
                f"{reprlib.repr(columns) if columns else 'no header'} "
                f"but needs {', '.join(CSV_COLUMNS)} (and optionally first)"
            )
        records = []
        for line, raw in enumerate(reader, start=2):
            row = {k.strip(): (v or "").strip() for k, v in raw.items() if k is not None}
            record = (row["player_a"], row["player_b"], _parse_score(row["score_a"], line))
            first = row.get("first") or None
            _check_row(f"{path} line {line}", *record, first)
            records.append((*record, first))
    if not records:
        raise GamesError(f"{path} has a header but no games")
    return game_table(records)
