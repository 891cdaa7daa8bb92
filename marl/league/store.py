"""The league's SQLite store: config, schedule and every finished game, written durably.

A game counts once it is in the `games` table, written in its own transaction. Every
scheduled game has a unique id (round, slot), the primary key of both `schedule` and
`games`, so a resumed run plays exactly the scheduled games that are not yet stored:
never a finished game again, never one twice. The database runs in WAL mode with
synchronous=FULL, so a killed process (even kill -9) loses at most games in flight. One
process runs a league at a time (`run_lock`); a second one is told the first one's pid.

Learners add rows too: `players` holds each snapshot (its checkpoint file is written inside
the same transaction that inserts the row, so a row always has its file), and `training`
one row per (learner, round) whose training finished and was checkpointed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from marl.league.games import GameTable, game_table

DB_NAME = "league.db"
"""File name of the store inside a league's output folder."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    started_at REAL NOT NULL, code_version TEXT NOT NULL, pid INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS schedule (
    round INTEGER NOT NULL, slot INTEGER NOT NULL, match INTEGER NOT NULL,
    player_a TEXT NOT NULL, player_b TEXT NOT NULL, a_first INTEGER NOT NULL,
    seed INTEGER NOT NULL, PRIMARY KEY (round, slot));
CREATE TABLE IF NOT EXISTS games (
    round INTEGER NOT NULL, slot INTEGER NOT NULL,
    player_a TEXT NOT NULL, player_b TEXT NOT NULL, score_a REAL NOT NULL,
    first TEXT NOT NULL, moves INTEGER NOT NULL, seconds REAL NOT NULL,
    finished_at REAL NOT NULL, PRIMARY KEY (round, slot),
    FOREIGN KEY (round, slot) REFERENCES schedule (round, slot));
CREATE TABLE IF NOT EXISTS players (
    name TEXT PRIMARY KEY, lineage TEXT NOT NULL, version INTEGER NOT NULL,
    round INTEGER NOT NULL, algo TEXT NOT NULL, team TEXT NOT NULL,
    checkpoint TEXT NOT NULL, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS training (
    learner TEXT NOT NULL, round INTEGER NOT NULL, updates INTEGER NOT NULL,
    env_steps INTEGER NOT NULL, seconds REAL NOT NULL, stats TEXT NOT NULL,
    run INTEGER NOT NULL, finished_at REAL NOT NULL, PRIMARY KEY (learner, round));
"""


class StoreError(ValueError):
    """A league store that is missing, foreign, or belongs to another league config."""


@dataclass(frozen=True)
class ScheduledGame:
    """One game the matchmaker planned: its id (round, slot), its players and seed."""

    round: int
    """League round."""
    slot: int
    """Position within the round (unique per round)."""
    match: int
    """Pairing index within the round (games of one match share a worker)."""
    player_a: str
    """Player A's name."""
    player_b: str
    """Player B's name."""
    a_first: bool
    """Whether A moves first."""
    seed: int
    """Seed of the game's random draws."""


@dataclass(frozen=True)
class GameResult:
    """A finished game."""

    round: int
    """League round."""
    slot: int
    """Slot within the round."""
    score_a: float
    """1 A won, 0.5 draw, 0 B won."""
    moves: int
    """Actions played (chance outcomes excluded)."""
    seconds: float
    """Wall-clock time of the game."""


def code_version() -> str:
    """marl's version plus the git commit of its source tree, when there is one."""
    import marl

    root = Path(marl.__file__).resolve().parent.parent
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
        return f"marl {marl.__version__} ({out.stdout.strip()})"
    except (OSError, subprocess.SubprocessError):
        return f"marl {marl.__version__}"


def resolve_db(path: str | Path) -> Path:
    """The database behind a league folder or a .db path; refuses a path with neither."""
    path = Path(path)
    db = path / DB_NAME if path.is_dir() else path
    if not db.is_file():
        raise StoreError(f"no league database at {db}: expected a league folder or its {DB_NAME}")
    with db.open("rb") as f:
        if f.read(16) != b"SQLite format 3\x00":
            raise StoreError(f"{db} is not an SQLite database")
    return db


class LeagueRunningError(StoreError):
    """Another process is running the league on this store."""


@contextlib.contextmanager
def run_lock(db: str | Path) -> Iterator[None]:
    """Hold the store's run lock (`league.db.lock` beside it) while the block runs.

    An exclusive `flock` on the lock file, which the kernel releases when its holder dies, so
    a lock left by a killed run never blocks; the file keeps the holder's pid for the message.
    """
    path = Path(f"{db}.lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            pid = f.read().strip() or "unknown"
            raise LeagueRunningError(
                f"league already running (pid {pid}) on {db}; wait for it to finish or stop it"
            ) from None
        f.seek(0)
        f.truncate()
        f.write(str(os.getpid()))
        f.flush()
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@dataclass(frozen=True)
class SnapshotRow:
    """A frozen snapshot of a learner, as the `players` table keeps it."""

    name: str
    """Player name, <learner>@<updates>."""
    lineage: str
    """The learner it was taken from."""
    version: int
    """The learner's update count when it was taken."""
    round: int
    """The round whose training produced it."""
    algo: str
    """alphazero, or the PPO-family preset."""
    team: str
    """The team it plays ('' for board games)."""
    checkpoint: str
    """Its weights file, relative to the league folder."""


@dataclass(frozen=True)
class TrainingRow:
    """A learner's finished (and checkpointed) training of one round."""

    learner: str
    """Learner name."""
    round: int
    """League round."""
    updates: int
    """Learner updates done after this round."""
    env_steps: int
    """Learner env steps (self-play moves for AlphaZero) after this round."""
    seconds: float
    """Wall-clock time of the round's training."""
    stats: dict[str, float]
    """Mean learner stats over the round's updates."""
    run: int
    """Which run of the league (1 = first, 2 = first resume, ...) trained it."""


@contextlib.contextmanager
def _closed_on_error(conn: sqlite3.Connection) -> Iterator[None]:
    """Close `conn` if the block raises: a store that failed to open must not leak it."""
    try:
        yield
    except BaseException:
        conn.close()
        raise


class LeagueStore:
    """Read and write one league's database."""

    def __init__(self, path: str | Path, readonly: bool = False) -> None:
        """Open the database at `path`: created if needed, or read-only for reports."""
        self.path = Path(path)
        try:
            self.conn = self._open_readonly() if readonly else self._open_for_writing()
        except sqlite3.DatabaseError as err:  # a damaged file, or not SQLite past its header
            raise StoreError(f"{self.path} cannot be read as a league database: {err}") from None

    def _open_readonly(self) -> sqlite3.Connection:
        uri = f"{self.path.resolve().as_uri()}?mode=ro"
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=30.0)
        with _closed_on_error(conn):
            tables = {n for (n,) in conn.execute("SELECT name FROM sqlite_master")}
            if not {"meta", "schedule", "games"} <= tables:
                raise StoreError(f"{self.path} is an SQLite database but not a league's")
        return conn

    def _open_for_writing(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
        with _closed_on_error(conn):
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.executescript(_SCHEMA)
        return conn

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()

    def __enter__(self) -> LeagueStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _write(self, sql: str, rows: list[tuple]) -> int:
        """Run `sql` for every row in one transaction; the number of rows changed."""
        with self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            return sum(self.conn.execute(sql, row).rowcount for row in rows)

    def meta(self) -> dict[str, Any]:
        """Stored metadata (config, first code version, creation time)."""
        rows = self.conn.execute("SELECT key, value FROM meta").fetchall()
        return {k: json.loads(v) for k, v in rows}

    def start_run(self, config: dict[str, Any], version: str) -> None:
        """Record the config on first use, refuse a different one later, log this run."""
        stored = self.meta().get("config")
        if stored is None:
            rows = [("config", config), ("code_version", version), ("created_at", time.time())]
            self._write(
                "INSERT OR IGNORE INTO meta VALUES (?, ?)", [(k, json.dumps(v)) for k, v in rows]
            )
        else:
            _check_same_config(stored, config, self.path)
            self._write("UPDATE meta SET value = ? WHERE key = 'config'", [(json.dumps(config),)])
        self._write("INSERT INTO runs VALUES (?, ?, ?)", [(time.time(), version, os.getpid())])

    def has_round(self, round_: int) -> bool:
        """Whether round `round_` has been scheduled."""
        sql = "SELECT 1 FROM schedule WHERE round = ? LIMIT 1"
        return self.conn.execute(sql, (round_,)).fetchone() is not None

    def schedule(self, games: list[ScheduledGame]) -> bool:
        """Store a round's planned games in one transaction; False if it was already scheduled.

        The check and the inserts share the transaction, so two writers cannot both schedule
        a round (the second used to die on the UNIQUE constraint of (round, slot)).
        """
        rows = [
            (g.round, g.slot, g.match, g.player_a, g.player_b, int(g.a_first), g.seed)
            for g in games
        ]
        with self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            if any(self.has_round(r) for r in {g.round for g in games}):
                return False
            self.conn.executemany("INSERT INTO schedule VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
            return True

    def scheduled(self, round_: int) -> list[ScheduledGame]:
        """All scheduled games of a round, finished or not."""
        rows = self.conn.execute(
            "SELECT round, slot, match, player_a, player_b, a_first, seed FROM schedule "
            "WHERE round = ? ORDER BY slot",
            (round_,),
        ).fetchall()
        return [ScheduledGame(r, s, m, a, b, bool(f), seed) for r, s, m, a, b, f, seed in rows]

    def pending(self, round_: int) -> list[ScheduledGame]:
        """Scheduled games of a round that are not stored as finished."""
        rows = self.conn.execute(
            "SELECT s.round, s.slot, s.match, s.player_a, s.player_b, s.a_first, s.seed "
            "FROM schedule s LEFT JOIN games g ON s.round = g.round AND s.slot = g.slot "
            "WHERE s.round = ? AND g.slot IS NULL ORDER BY s.slot",
            (round_,),
        ).fetchall()
        return [ScheduledGame(r, s, m, a, b, bool(f), seed) for r, s, m, a, b, f, seed in rows]

    def record(self, result: GameResult) -> bool:
        """Store a finished game in its own transaction; False if it was already stored."""
        row = self.conn.execute(
            "SELECT player_a, player_b, a_first FROM schedule WHERE round = ? AND slot = ?",
            (result.round, result.slot),
        ).fetchone()
        if row is None:
            raise StoreError(f"game ({result.round}, {result.slot}) was never scheduled")
        first = row[0] if row[2] else row[1]
        values = (result.round, result.slot, row[0], row[1], result.score_a, first)
        values += (result.moves, result.seconds, time.time())
        sql = "INSERT OR IGNORE INTO games VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
        return self._write(sql, [values]) == 1

    def num_games(self) -> int:
        """Finished games stored."""
        return self.conn.execute("SELECT COUNT(*) FROM games").fetchone()[0]

    def game_rows(self, until_round: int | None = None) -> list[tuple]:
        """(round, slot, player_a, player_b, score_a, first, moves, seconds, finished_at)."""
        last = until_round if until_round is not None else 2**62
        return self.conn.execute(
            "SELECT * FROM games WHERE round <= ? ORDER BY round, slot", (last,)
        ).fetchall()

    def run_number(self) -> int:
        """Runs started so far (the current run's number once `start_run` was called)."""
        return self.conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0]

    def add_snapshot(self, row: SnapshotRow, write: Callable[[], None]) -> bool:
        """Call `write` (the snapshot's file) and insert its row in one transaction.

        False, and nothing written, when a snapshot of that name is already stored.
        """
        with self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            sql = "SELECT 1 FROM players WHERE name = ?"
            if self.conn.execute(sql, (row.name,)).fetchone() is not None:
                return False
            write()
            values = (*dataclasses.astuple(row), time.time())
            self.conn.execute("INSERT INTO players VALUES (?, ?, ?, ?, ?, ?, ?, ?)", values)
            return True

    def _select_if_kept(self, table: str, sql: str) -> list[tuple]:
        """The rows `sql` selects, or none from a store written before `table` existed."""
        if table not in self._tables():
            return []
        return self.conn.execute(sql).fetchall()

    def snapshots(self) -> list[SnapshotRow]:
        """Every stored snapshot, oldest first."""
        rows = self._select_if_kept(
            "players",
            "SELECT name, lineage, version, round, algo, team, checkpoint FROM players "
            "ORDER BY created_at, name",
        )
        return [SnapshotRow(*r) for r in rows]

    def record_training(self, row: TrainingRow) -> None:
        """Store a learner's finished round (replacing a row of an earlier, redone attempt)."""
        values = (row.learner, row.round, row.updates, row.env_steps, row.seconds)
        values += (json.dumps(row.stats), row.run, time.time())
        self._write("INSERT OR REPLACE INTO training VALUES (?, ?, ?, ?, ?, ?, ?, ?)", [values])

    def training_rows(self) -> list[TrainingRow]:
        """Every learner's finished rounds, by learner then round."""
        rows = self._select_if_kept(
            "training",
            "SELECT learner, round, updates, env_steps, seconds, stats, run FROM training "
            "ORDER BY learner, round",
        )
        return [TrainingRow(a, r, u, e, s, json.loads(st), run) for a, r, u, e, s, st, run in rows]

    def _tables(self) -> set[str]:
        return {n for (n,) in self.conn.execute("SELECT name FROM sqlite_master")}

    def game_table(self, until_round: int | None = None) -> GameTable:
        """The finished games (up to a round) as a rating table."""
        rows = self.game_rows(until_round)
        return game_table([(a, b, score, first) for _, _, a, b, score, first, *_ in rows])


def _check_same_config(stored: dict, config: dict, path: Path) -> None:
    """Only `rounds` (to extend a league) and `workers` may change between runs."""
    free = {"rounds", "workers"}
    old = {**stored, "league": {k: v for k, v in stored["league"].items() if k not in free}}
    new = {**config, "league": {k: v for k, v in config["league"].items() if k not in free}}
    if old != new:
        changed = [k for k in ("league", "matchmaker", "players") if old.get(k) != new.get(k)]
        raise StoreError(
            f"{path} holds a league started with a different config (changed: "
            f"{', '.join(changed)}); resume it with the original TOML (only league.rounds and "
            f"league.workers may change) or use a new output folder"
        )
