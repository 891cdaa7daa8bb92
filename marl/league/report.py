"""What a league's store says: progress, ratings, ratings over time, and an HTML report.

Everything here is computed from the SQLite store alone, so it works on a league that is
still running (WAL readers do not block the writer) or one that was killed.
"""

from __future__ import annotations

import base64
import html
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from marl.league.ratings import RatingConfig, RatingError, Ratings, fit_ratings
from marl.league.store import LeagueStore, resolve_db


@dataclass(frozen=True)
class LeagueStatus:
    """Progress of a league as its store records it."""

    name: str
    """League name."""
    env: str
    """Game played."""
    planned_games: int
    """Games scheduled, plus the most the unscheduled rounds of the stored config can have."""
    finished_games: int
    """Games stored as finished."""
    rounds_done: int
    """Rounds whose scheduled games are all finished."""
    rounds: int
    """Rounds planned."""
    runs: int
    """Times the league was started (1 + resumes)."""
    code_version: str
    """Code version that started the league."""
    last_game_at: float | None
    """Unix time of the latest stored game."""


def league_status(store: LeagueStore) -> LeagueStatus:
    """Read a league's progress from its store."""
    meta = store.meta()
    if "config" not in meta:
        raise RatingError(f"{store.path} holds no league (no config stored)")
    league = meta["config"]["league"]
    matches = league["matches_per_round"] + meta["config"]["matchmaker"].get(
        "calibration_matches", 0
    )
    q = store.conn.execute
    scheduled, scheduled_rounds = q(
        "SELECT COUNT(*), COUNT(DISTINCT round) FROM schedule"
    ).fetchone()
    # scheduled rounds count exactly (calibration can find fewer pairs); the rest at most
    planned = (
        scheduled + (league["rounds"] - scheduled_rounds) * matches * league["games_per_match"]
    )
    done = q(
        "SELECT COUNT(*) FROM (SELECT s.round FROM schedule s LEFT JOIN games g "
        "ON s.round = g.round AND s.slot = g.slot GROUP BY s.round HAVING COUNT(g.slot) = COUNT(*))"
    ).fetchone()[0]
    return LeagueStatus(
        name=league["name"],
        env=league["env"],
        planned_games=planned,
        finished_games=store.num_games(),
        rounds_done=done,
        rounds=league["rounds"],
        runs=q("SELECT COUNT(*) FROM runs").fetchone()[0],
        code_version=meta.get("code_version", "?"),
        last_game_at=q("SELECT MAX(finished_at) FROM games").fetchone()[0],
    )


@dataclass(frozen=True)
class LearnerProgress:
    """One learner's training so far, as its store records it."""

    name: str
    """Learner name."""
    rounds: int
    """Rounds trained (and checkpointed)."""
    updates: int
    """Updates done."""
    env_steps: int
    """Env steps (self-play moves for AlphaZero) consumed."""
    snapshots: int
    """Snapshots added to the league."""
    seconds: float
    """Time spent training."""


def learner_progress(store: LeagueStore) -> list[LearnerProgress]:
    """Each learner's rounds, updates, env steps and snapshots, from the store."""
    rows = store.training_rows()
    snapshots = [s.lineage for s in store.snapshots()]
    out = []
    for name in dict.fromkeys(r.learner for r in rows):
        mine = [r for r in rows if r.learner == name]
        last = mine[-1]
        out.append(
            LearnerProgress(
                name,
                len(mine),
                last.updates,
                last.env_steps,
                snapshots.count(name),
                sum(r.seconds for r in mine),
            )  # fmt: skip
        )
    return out


def describe_learner(p: LearnerProgress) -> str:
    """One line of a learner's progress."""
    return (
        f"learner {p.name}: {p.rounds} round(s) trained, {p.updates} updates, "
        f"{p.env_steps} env steps, {p.snapshots} snapshot(s), {p.seconds:.0f} s training"
    )


def ratings_history(
    store: LeagueStore, config: RatingConfig | None = None
) -> tuple[list[int], tuple[str, ...], np.ndarray]:
    """(rounds, players, [R, P] ratings fit on all games up to each round; NaN if unseen)."""
    players = store.game_table().players
    rounds = [r for (r,) in store.conn.execute("SELECT DISTINCT round FROM games ORDER BY round")]
    history = np.full((len(rounds), len(players)), np.nan)
    for k, round_ in enumerate(rounds):
        fit = fit_ratings(store.game_table(until_round=round_), config)
        for name, value in zip(fit.players, fit.rating):
            history[k, players.index(name)] = value
    return rounds, players, history


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _ratings_html(ratings: Ratings) -> str:
    rows = []
    for rank, i in enumerate(ratings.ranked(), start=1):
        cells = (
            rank,
            html.escape(ratings.players[i]),
            f"{ratings.rating[i]:.0f}",
            f"[{ratings.lower[i]:.0f}, {ratings.upper[i]:.0f}]",
            f"{ratings.stderr[i]:.0f}",
            int(ratings.games[i]),
            f"{ratings.mean_score[i]:.3f}",
        )
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    head = "".join(
        f"<th>{h}</th>"
        for h in ("#", "player", "rating", "interval", "std. err.", "games", "mean score")
    )
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


_STYLE = (
    "body{font-family:sans-serif;max-width:60em;margin:2em auto}"
    "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3em .7em;"
    "text-align:right}td:nth-child(2){text-align:left}img{max-width:100%}"
)


def write_report(path: str | Path, out: str | Path | None = None) -> Path:
    """Write a self-contained HTML report of the league at `path` (folder or .db)."""
    from marl.league.plots import history_png, ratings_png, win_matrix_png

    db = resolve_db(path)
    out = Path(out) if out is not None else db.parent / "report.html"
    with LeagueStore(db, readonly=True) as store:
        status = league_status(store)
        table = store.game_table()
        ratings = fit_ratings(table)
        rounds, players, history = ratings_history(store)
        learners = learner_progress(store)
    score, count = table.score_matrix()
    order = ratings.ranked()
    ranked_names = tuple(table.players[i] for i in order)
    score, count = score[np.ix_(order, order)], count[np.ix_(order, order)]
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime())
    parts = [
        f"<h1>League {html.escape(status.name)}</h1>",
        f"<p>{html.escape(status.env)}: {status.finished_games} of {status.planned_games} "
        f"games, {status.rounds_done} of {status.rounds} rounds done; {status.runs} run(s); "
        f"{html.escape(status.code_version)}; report written {when}.</p>",
        "<h2>Ratings</h2>",
        f"<p>{html.escape(ratings.describe())}.</p>",
        _ratings_html(ratings),
        "".join(f"<p>{html.escape(describe_learner(p))}.</p>" for p in learners),
        _img(ratings_png(ratings, f"{status.name} ratings"), "ratings with intervals"),
        "<h2>Ratings over time</h2>",
        _img(history_png(rounds, players, history), "ratings over time"),
        "<h2>Win rates</h2>",
        _img(win_matrix_png(ranked_names, score, count), "win-rate matrix"),
    ]
    page = (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(status.name)}"
        f"</title><style>{_STYLE}</style></head><body>{''.join(parts)}</body></html>"
    )
    out.write_text(page)
    return out
