"""The arena: plays scheduled games between two players, in lockstep, in worker processes.

Games of one match (same two players) advance together so that a network player can
answer all of them with one batched call. Each game draws only from its own generator,
seeded by its schedule entry, so its moves do not depend on which games shared its batch
or which worker played it. Two-team envs (MPE) are played by `marl.league.teams`.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyspiel

from marl.league.config import LeagueSettings
from marl.league.kinds import make_player
from marl.league.players import Player, PlayerEntry, PlayerError, PositionBatch
from marl.league.store import GameResult, ScheduledGame

ENV_PREFIX = "openspiel/"
"""League envs are OpenSpiel games named openspiel/<game>."""


class ArenaError(ValueError):
    """A game the arena cannot play, or a player that broke its rules."""


def load_game(
    env: str, env_kwargs: dict[str, Any] | None = None, win_threshold: float = 0.0
) -> Any:
    """The game of a league env: a two-player OpenSpiel turn game, or a two-team `TeamGame`."""
    if not env.startswith(ENV_PREFIX):
        from marl.league.teams import TeamGameError, load_team_game

        try:
            return load_team_game(env, env_kwargs or {}, win_threshold)
        except TeamGameError as err:
            raise ArenaError(
                f"{err} (league envs: openspiel/<game> or a two-team env such as mpe/simple_tag-v3)"
            ) from None
    name = env[len(ENV_PREFIX) :]
    known = pyspiel.registered_names()
    if name not in known:
        from marl.core.config import closest

        near = closest(name, known)
        hint = f"; did you mean {', '.join(ENV_PREFIX + n for n in near)}?" if near else ""
        raise ArenaError(f"unknown OpenSpiel game {name!r}{hint}")
    try:
        game = pyspiel.load_game(name, dict(env_kwargs or {}))
    except pyspiel.SpielError as err:
        raise ArenaError(f"{env} with env_kwargs {env_kwargs or {}}: {err}") from None
    kind = game.get_type()
    if game.num_players() != 2 or kind.dynamics != pyspiel.GameType.Dynamics.SEQUENTIAL:
        raise ArenaError(
            f"{env} has {game.num_players()} players and {kind.dynamics.name.lower()} moves; "
            "leagues need a two-player game with alternating (sequential) moves"
        )
    return game


def position_batch(game: Any, states: list[Any]) -> PositionBatch:
    """Observation, legal-action mask and seat of the player to move in each state."""
    kind = game.get_type()
    seats = np.array([s.current_player() for s in states], dtype=np.int64)
    if kind.provides_observation_tensor:
        obs = [s.observation_tensor(int(p)) for s, p in zip(states, seats)]
    elif kind.provides_information_state_tensor:
        obs = [s.information_state_tensor(int(p)) for s, p in zip(states, seats)]
    else:
        obs = [[] for _ in states]
    mask = np.array([s.legal_actions_mask(int(p)) for s, p in zip(states, seats)], dtype=bool)
    return PositionBatch(states, np.asarray(obs, dtype=np.float32), mask, seats)


def _resolve_chance(state: Any, rng: np.random.Generator) -> None:
    while state.is_chance_node():
        outcomes, probs = zip(*state.chance_outcomes())
        state.apply_action(int(outcomes[rng.choice(len(outcomes), p=np.asarray(probs))]))


def _score_a(state: Any, a_seat: int) -> float:
    returns = state.returns()
    mine, theirs = returns[a_seat], returns[1 - a_seat]
    return 1.0 if mine > theirs else 0.5 if mine == theirs else 0.0


def play_games(
    game: Any, players: tuple[Player, Player], names: tuple[str, str], games: list[ScheduledGame]
) -> list[GameResult]:
    """Play `games` (all between players A and B) in lockstep; results in the same order."""
    rngs = [np.random.default_rng(g.seed) for g in games]
    states = [game.new_initial_state() for _ in games]
    a_seat = [0 if g.a_first else 1 for g in games]
    moves, start = [0] * len(games), time.perf_counter()
    for state, rng in zip(states, rngs):
        _resolve_chance(state, rng)
    while not all(s.is_terminal() for s in states):
        for who in (0, 1):  # 0: player A, 1: player B
            idx = [
                i
                for i, s in enumerate(states)
                if not s.is_terminal() and (s.current_player() == a_seat[i]) == (who == 0)
            ]
            if not idx:
                continue
            batch = position_batch(game, [states[i] for i in idx])
            actions = players[who].act(batch, [rngs[i] for i in idx])
            for row, (i, action) in enumerate(zip(idx, np.asarray(actions).tolist())):
                if not (
                    0 <= action < batch.action_mask.shape[1] and batch.action_mask[row, action]
                ):
                    raise ArenaError(f"player {names[who]!r} chose illegal action {action}")
                states[i].apply_action(int(action))
                moves[i] += 1
                _resolve_chance(states[i], rngs[i])
    seconds = (time.perf_counter() - start) / len(games)
    return [
        GameResult(g.round, g.slot, _score_a(s, seat), n, seconds)
        for g, s, seat, n in zip(games, states, a_seat, moves)
    ]


@dataclass(frozen=True)
class MatchJob:
    """All pending games of one match: what a worker needs to play them."""

    env: str
    """openspiel/<game> or a team env id."""
    player_a: PlayerEntry
    """Player A's entry."""
    player_b: PlayerEntry
    """Player B's entry."""
    games: tuple[ScheduledGame, ...]
    """The games, all between A and B."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """Team env keyword arguments, or the OpenSpiel game's parameters."""
    win_threshold: float = 0.0
    """Team envs: the first team wins above this per-agent return."""


def play_job(job: MatchJob) -> list[GameResult]:
    """Build the game and players of a job and play its games (a worker's entry point)."""
    from marl.league.teams import TeamGame, play_team_games

    game = load_game(job.env, job.env_kwargs, job.win_threshold)
    players = (make_player(game, job.player_a), make_player(game, job.player_b))
    names, games = (job.player_a.name, job.player_b.name), list(job.games)
    if isinstance(game, TeamGame):
        return play_team_games(game, players, names, games)
    return play_games(game, players, names, games)


def match_jobs(
    settings: LeagueSettings, entries: Sequence[PlayerEntry], games: list[ScheduledGame]
) -> list[MatchJob]:
    """Group pending games by (round, match) into jobs for the league `settings`."""
    by_name = {e.name: e for e in entries}
    groups: dict[tuple[int, int], list[ScheduledGame]] = {}
    for g in games:
        groups.setdefault((g.round, g.match), []).append(g)
    jobs = []
    for group in groups.values():
        a, b = group[0].player_a, group[0].player_b
        if a not in by_name or b not in by_name:
            raise PlayerError(
                f"scheduled player {a if a not in by_name else b!r} is not in the league"
            )
        s = settings
        job = MatchJob(s.env, by_name[a], by_name[b], tuple(group), s.env_kwargs, s.win_threshold)
        jobs.append(job)
    return jobs


def _exit_with_parent(parent: int) -> None:
    """Worker initializer: leave when the league process dies (even by kill -9)."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # torch players: one thread per worker

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


class Arena:
    """Plays match jobs inline (workers=0) or in a pool of worker processes."""

    def __init__(self, workers: int = 0) -> None:
        """Start `workers` processes (none for 0)."""
        self.pool = None
        if workers > 0:
            self.pool = ProcessPoolExecutor(
                workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_exit_with_parent,
                initargs=(os.getpid(),),
            )

    def play(self, jobs: list[MatchJob]) -> Iterator[GameResult]:
        """Results of all jobs' games, each as soon as its job is done."""
        if self.pool is None:
            for job in jobs:
                yield from play_job(job)
            return
        running: set[Future] = {self.pool.submit(play_job, job) for job in jobs}
        while running:
            done, running = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                yield from future.result()

    def close(self) -> None:
        """Stop the worker processes."""
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)

    def __enter__(self) -> Arena:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
