"""`marl league run`: schedule each round from the stored results, play it, store every game.

A round is scheduled once, in one transaction, from the games stored before it (so its
pairings are the same however often the run is restarted), then its pending games are
played and each is stored as it finishes. Killed at any moment and started again, the
league skips finished games, replays unfinished ones from their seeds, and goes on.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from marl.league.arena import Arena, load_game, match_jobs
from marl.league.config import LeagueConfig, league_to_dict
from marl.league.matchmaking import PoolMember, schedule_matches, win_rates
from marl.league.players import make_player
from marl.league.store import DB_NAME, GameResult, LeagueStore, ScheduledGame, code_version


def pool_of(config: LeagueConfig) -> list[PoolMember]:
    """Matchmaking's view of the players (learners are their own lineage, version 0)."""
    learner_kinds = {"alphazero", "ppo"}
    return [
        PoolMember(p.name, p.name if p.kind in learner_kinds else None, 0) for p in config.players
    ]


def game_seed(league_seed: int, round_: int, slot: int) -> int:
    """The seed of game (round, slot), independent of every other game."""
    return int(np.random.SeedSequence([league_seed, round_, slot]).generate_state(1)[0])


def plan_round(config: LeagueConfig, store: LeagueStore, round_: int) -> list[ScheduledGame]:
    """The games of round `round_`, drawn from the results stored so far."""
    s = config.league
    pool = pool_of(config)
    index = {m.name: i for i, m in enumerate(pool)}
    score = np.zeros((len(pool), len(pool)))
    count = np.zeros_like(score)
    for _, _, a, b, score_a, *_ in store.game_rows():
        score[index[a], index[b]] += score_a
        score[index[b], index[a]] += 1.0 - score_a
        count[index[a], index[b]] += 1
        count[index[b], index[a]] += 1
    rates = win_rates(score, count, config.matchmaker.prior_games)
    rng = np.random.default_rng([s.seed, round_])
    pairs = schedule_matches(
        pool,
        rates,
        s.matches_per_round,
        config.matchmaker,
        rng,
        offset=round_ * s.matches_per_round,
    )
    games = []
    for match, (a, b) in enumerate(pairs):
        for g in range(s.games_per_match):
            slot = match * s.games_per_match + g
            seed = game_seed(s.seed, round_, slot)
            games.append(
                ScheduledGame(round_, slot, match, pool[a].name, pool[b].name, g % 2 == 0, seed)
            )
    return games


def check_players(config: LeagueConfig) -> None:
    """Build every player once so that a kind not available fails before any game."""
    game = load_game(config.league.env)
    for entry in config.players:
        make_player(game, entry)


def run_league(
    config: LeagueConfig,
    out_dir: str | Path,
    on_game: Callable[[GameResult, int], None] | None = None,
) -> Path:
    """Play (or resume) a league into `out_dir`/league.db; returns the database path."""
    check_players(config)
    db = Path(out_dir) / DB_NAME
    with LeagueStore(db) as store, Arena(config.league.workers) as arena:
        store.start_run(league_to_dict(config), code_version())
        for round_ in range(config.league.rounds):
            if not store.has_round(round_):
                store.schedule(plan_round(config, store, round_))
            jobs = match_jobs(config.league.env, config.players, store.pending(round_))
            for result in arena.play(jobs):
                if store.record(result) and on_game is not None:
                    on_game(result, store.num_games())
    return db
