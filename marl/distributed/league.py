"""League matches as Ray tasks; the head alone writes results to the league's SQLite store.

`RayArena` is a drop-in for `marl.league.arena.Arena`: `play(jobs)` yields each job's
`GameResult`s as soon as its task is done, and the league runner stores them (head only),
so the store's crash guarantees hold as before: a game is stored in its own transaction,
keyed by (round, slot), at most once. A task lost with its worker (or node) is rerun by Ray
(`max_retries`); since a game draws only from its own seed, the rerun plays the same game.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from marl.distributed.ray_backend import RayConfig, init_ray, require_ray
from marl.league.arena import MatchJob, play_job
from marl.league.store import GameResult


class RayArena:
    """Plays match jobs as Ray tasks, one task per match (its games advance in lockstep)."""

    def __init__(
        self,
        config: RayConfig | None = None,
        play: Callable[[MatchJob], list[GameResult]] = play_job,
    ) -> None:
        """Join (or start) the cluster; `play` is the task body (tests swap in a flaky one)."""
        self.config = config or RayConfig()
        self.config.validate()
        self.ray = init_ray(self.config.address)
        retries = self.config.max_restarts
        self.task = self.ray.remote(num_cpus=self.config.actor_cpus, max_retries=retries)(play)
        self.running: list[Any] = []

    def play(self, jobs: list[MatchJob]) -> Iterator[GameResult]:
        """Results of all jobs' games, each job's as soon as its task is done."""
        self.running = [self.task.remote(job) for job in jobs]
        while self.running:
            done, self.running = self.ray.wait(self.running, num_returns=1)
            yield from self.ray.get(done[0])

    def close(self) -> None:
        """Cancel the tasks still running (their games stay pending in the store)."""
        for ref in self.running:
            self.ray.cancel(ref, force=True)
        self.running = []

    def __enter__(self) -> RayArena:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def ray_arena_factory(config: RayConfig) -> Callable[[int], RayArena]:
    """`workers -> arena` for `run_league(..., arena=...)`: Ray decides the parallelism."""
    require_ray()
    return lambda workers: RayArena(config)
