"""`marl league run`: schedule each round from the stored results, play it, store every game.

A round is scheduled once, in one transaction, from the games stored before it (so its
pairings are the same however often the run is restarted), then its pending games are
played and each is stored as it finishes. Learners then train on (see
`marl.league.learners`) and checkpoint. Killed at any moment and started again, the league
skips finished games, replays unfinished ones from their seeds, resumes each learner from
its last round checkpoint, and goes on.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from marl.league.arena import Arena, load_game, match_jobs
from marl.league.config import LeagueConfig, league_to_dict
from marl.league.kinds import make_player, player_factory
from marl.league.learners import LeagueLearner
from marl.league.matchmaking import (
    PoolMember,
    calibration_pairs,
    schedule_matches,
    win_rates,
)
from marl.league.players import PlayerEntry, PlayerError, SnapshotSpec, is_learner
from marl.league.store import (
    DB_NAME,
    GameResult,
    LeagueStore,
    ScheduledGame,
    code_version,
    run_lock,
)
from marl.league.teams import TeamGame, TeamGameError

LIVE = 2**62
"""Version of a learner itself in matchmaking: newer than any of its snapshots."""


def pool_of(config: LeagueConfig, store: LeagueStore | None = None) -> list[PoolMember]:
    """Matchmaking's view of the players: the TOML's, then the stored snapshots."""
    pool = []
    for p in config.players:
        team = getattr(p.spec, "team", "") or None
        learner = is_learner(p)
        pool.append(PoolMember(p.name, p.name if learner else None, LIVE if learner else 0, team))
    for s in store.snapshots() if store is not None else []:
        pool.append(PoolMember(s.name, s.lineage, s.version, s.team or None))
    return pool


def game_seed(league_seed: int, round_: int, slot: int) -> int:
    """The seed of game (round, slot), independent of every other game."""
    return int(np.random.SeedSequence([league_seed, round_, slot]).generate_state(1)[0])


def a_first(game: Any, a: PoolMember, b: PoolMember, index: int) -> bool:
    """Whether A moves first (board games) or controls the first team (team envs)."""
    if not isinstance(game, TeamGame) or (a.team is None and b.team is None):
        return index % 2 == 0  # alternate within the match
    if a.team is not None:
        return a.team == game.teams[0]
    return b.team != game.teams[0]


def plan_round(
    config: LeagueConfig, store: LeagueStore, round_: int, game: Any = None
) -> list[ScheduledGame]:
    """The games of round `round_`, drawn from the results stored so far."""
    s = config.league
    pool = pool_of(config, store)
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
    offset = round_ * s.matches_per_round
    pairs = schedule_matches(pool, rates, s.matches_per_round, config.matchmaker, rng, offset)
    pairs += calibration_pairs(pool, config.matchmaker.calibration_matches, rng, LIVE)
    games = []
    for match, (a, b) in enumerate(pairs):
        for g in range(s.games_per_match):
            slot = match * s.games_per_match + g
            seed = game_seed(s.seed, round_, slot)
            first = a_first(game, pool[a], pool[b], g)
            games.append(
                ScheduledGame(round_, slot, match, pool[a].name, pool[b].name, first, seed)
            )
    return games


def league_game(config: LeagueConfig) -> Any:
    """The game every match plays: an OpenSpiel game or a `TeamGame`."""
    s = config.league
    return load_game(s.env, s.env_kwargs, s.win_threshold)


def check_players(config: LeagueConfig, game: Any) -> None:
    """Build every fixed player once (and check each learner's kind can play the game), so
    that a player that cannot play fails before any game."""
    for entry in config.players:
        team = getattr(entry.spec, "team", "")
        if team and isinstance(game, TeamGame):
            try:
                game.team_index(team)
            except TeamGameError as err:
                raise PlayerError(f"player {entry.name!r}: {err}") from None
        if is_learner(entry):
            player_factory(game, entry)
        else:
            make_player(game, entry)


def playing_entries(
    config: LeagueConfig, store: LeagueStore, learners: list[LeagueLearner], out: Path
) -> list[PlayerEntry]:
    """Every player as the arena builds it: fixed ones, learners and snapshots from files."""
    current = {learner.name: learner.playing_entry() for learner in learners}
    entries = [current.get(p.name, p) for p in config.players]
    by_lineage = {p.name: p.spec for p in config.players}
    for s in store.snapshots():
        sims = getattr(by_lineage.get(s.lineage), "simulations", 0)
        spec = SnapshotSpec(str(out / s.checkpoint), s.algo, s.team, sims)
        entries.append(PlayerEntry(s.name, "snapshot", spec))
    return entries


def round_opponents(
    store: LeagueStore, round_: int, name: str, game: Any, entries: list[PlayerEntry]
) -> list[Any]:
    """Frozen players of the opponents `name` met in round `round_`, in schedule order."""
    names = []
    for g in store.scheduled(round_):
        other = g.player_b if g.player_a == name else g.player_a if g.player_b == name else None
        if other is not None and other not in names:
            names.append(other)
    by_name = {e.name: e for e in entries}
    return [make_player(game, by_name[n]) for n in names]


def run_league(
    config: LeagueConfig,
    out_dir: str | Path,
    on_game: Callable[[GameResult, int], None] | None = None,
    make_arena: Callable[[int], Any] = Arena,
) -> Path:
    """Play (or resume) a league into `out_dir`/league.db; returns the database path.

    `make_arena(workers)` builds what plays the matches (`marl.distributed.league.RayArena`
    plays them as Ray tasks); whatever plays them, only this process writes the store.
    """
    game = league_game(config)
    check_players(config, game)
    out = Path(out_dir)
    learners = [LeagueLearner(p, game, out) for p in config.players if is_learner(p)]
    s = config.league
    with (
        run_lock(out / DB_NAME),
        LeagueStore(out / DB_NAME) as store,
        make_arena(s.workers) as arena,
        contextlib.ExitStack() as learners_open,
    ):
        for learner in learners:
            learners_open.callback(learner.close)  # closed however the league ends
        store.start_run(league_to_dict(config), code_version())
        for learner in learners:
            learner.start(store)
        for round_ in range(s.rounds):
            if not store.has_round(round_):  # planning reads ratings: skip it when resuming
                store.schedule(plan_round(config, store, round_, game))
            entries = playing_entries(config, store, learners, out)
            jobs = match_jobs(s, entries, store.pending(round_))
            for result in arena.play(jobs):
                if store.record(result) and on_game is not None:
                    on_game(result, store.num_games())
            for learner in learners:
                if learner.rounds_trained == round_:
                    opponents = []  # AlphaZero learns by self-play; PPO against this round's
                    if learner.view is not None:
                        opponents = round_opponents(store, round_, learner.name, game, entries)
                    learner.train_round(round_, opponents, store)
    return out / DB_NAME
