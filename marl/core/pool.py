"""One worker pool for every learner: workers act, the learner learns.

A `Worker` holds an env and an acting copy of a learner (or, in the default one-process
run, the learner itself) and calls the learner's own `start`/`collect`. `InProcessPool`
runs workers here, one after another; `ThreadPool` runs them here in threads of their own;
`marl.distributed.RayPool` runs the same `Worker` class as Ray actors. All answer
`submit`/`gather` the same way, so the `Trainer` above them, and every algorithm, is the
same on each.
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, NamedTuple

from marl.core.learner import Learner
from marl.core.seeding import WORKERS, child_seed


class Part(NamedTuple):
    """One worker's experience of one iteration."""

    experience: Any  # what the learner's `collect` returned
    version: int  # the weights version that acted
    worker: str  # the worker's process (`incarnation()`); changes when a worker is restarted
    seconds: float  # time spent acting


@dataclass(frozen=True)
class WorkerRecipe:
    """How a worker builds its env and its acting copy: picklable, so Ray can rebuild a
    lost worker from it."""

    make_env: Callable[[int], Any]
    """seed -> the env this worker acts on (its number of envs already bound in)."""
    make_learner: Callable[[], Learner]
    """() -> an acting copy of the learner (same spec and config as the learner)."""
    seed: int | tuple[int, ...]
    """The worker's own seed: its env's first reset and every fresh start derive from it
    (one per run for a learner that trains K seeds at once: `--seeds K`)."""


def worker_seed(seed: int, index: int) -> int:
    """The seed of worker `index` in a run seeded `seed`."""
    return child_seed(seed, WORKERS, index)


def start_seed(seed: int | tuple[int, ...], iteration: int) -> int | list[int]:
    """The seed a worker starts fresh episodes with at `iteration` (one per run with K)."""
    if isinstance(seed, int):
        return child_seed(seed, iteration)
    return [child_seed(s, iteration) for s in seed]


def incarnation() -> str:
    """This process on this host: changes when a worker is restarted in a new process."""
    return f"{os.uname().nodename}:{os.getpid()}"


class Worker:
    """An env and an acting learner; `collect` acts once with the weights it is sent."""

    def __init__(
        self,
        recipe: WorkerRecipe,
        learner: Learner | None = None,
        env: Any = None,
        threads: int | None = None,
    ):
        """`learner` (the training learner itself) makes this worker act with it directly,
        with no copy of its weights; `env` replaces the recipe's env (a league's team view);
        `threads` sets torch's thread count (a worker in a process of its own)."""
        if threads is not None:
            from marl.core.device import set_threads  # torch: only where a worker acts

            set_threads(threads)
        self.seed = recipe.seed
        self.env = env if env is not None else recipe.make_env(recipe.seed)
        self.shared = learner is not None
        self.learner = learner if learner is not None else recipe.make_learner()
        self.version = -1
        self.carry: Any = None

    def collect(self, weights: Any, version: int, iteration: int, reset: bool) -> Part:
        """Load `weights` if they are newer, then act once.

        `reset` (or a new worker, with no running episodes) starts fresh episodes seeded by
        (worker seed, iteration): a run resumed from a checkpoint acts as the unbroken one.
        """
        start = time.perf_counter()
        if not self.shared and version != self.version:
            self.learner.load_weights(weights)
        self.version = version
        if reset or self.carry is None:
            self.carry = self.learner.start(self.env, start_seed(self.seed, iteration))
        experience, self.carry = self.learner.collect(self.env, self.carry)
        return Part(experience, version, incarnation(), time.perf_counter() - start)

    def incarnation(self) -> str:
        """The process this worker acts in (a Ray actor's new process after a restart)."""
        return incarnation()

    def close(self) -> None:
        """Close the env."""
        close = getattr(self.env, "close", None)
        if close is not None:
            close()


class InProcessPool:
    """Workers in this process, called one after another."""

    def __init__(self, workers: Sequence[Worker]):
        self.workers = list(workers)

    def broadcast(self, weights_fn: Callable[[], Any]) -> Any:
        """The weights as the workers receive them (not made when every worker shares the
        learner)."""
        return None if all(w.shared for w in self.workers) else weights_fn()

    def incarnations(self) -> list[str]:
        """Each worker's process: this one."""
        return [w.incarnation() for w in self.workers]

    def submit(self, weights: Any, version: int, iteration: int, reset: bool) -> list[Part]:
        """Act on every worker now (in its thread, for a `ThreadPool`); the handles, in
        worker order."""
        return [self.submit_to(i, weights, version, iteration, reset) for i in range(self.size)]

    def gather(self, handles: list[Part]) -> list[Part]:
        """The parts, in worker order."""
        return handles

    @property
    def size(self) -> int:
        """Number of workers."""
        return len(self.workers)

    def submit_to(self, worker: int, weights: Any, version: int, iteration: int,
                  reset: bool) -> Part:  # fmt: skip
        """Act on one worker now (an asynchronous trainer's call); the part is its handle."""
        return self.workers[worker].collect(weights, version, iteration, reset)

    def wait_first(self, handles: list[Part]) -> int:
        """Which of `handles` is ready first: here every part is, so the oldest."""
        return 0

    def close(self) -> None:
        """Close the workers' envs."""
        for worker in self.workers:
            worker.close()


class ThreadPool(InProcessPool):
    """Workers in this process, each acting in a thread of its own: asynchronous actors on one
    machine with no Ray (IMPALA's queue, A3C's gradients), or parallel collection for any
    learner.

    Each worker has its own acting copy and one thread, so its env is stepped in order. Torch
    ops release the GIL, so the threads overlap in the net's forward passes but not in
    Python-level env stepping. Weights are copied before they are handed over, so a worker
    never reads parameters the learner is updating. Synchronous trainers gather parts in
    worker order, so their runs are as repeatable as in-process ones; an asynchronous trainer
    takes the part that finishes first, which timing decides.
    """

    def __init__(self, workers: Sequence[Worker]):
        super().__init__(workers)
        if any(w.shared for w in self.workers):
            raise ValueError("a threaded worker needs an acting copy of its own, not the learner")
        self.threads = [
            ThreadPoolExecutor(1, thread_name_prefix=f"marl-worker-{i}")
            for i in range(len(self.workers))
        ]

    def broadcast(self, weights_fn: Callable[[], Any]) -> Any:
        """A copy of the learner's weights (its tensors change in place as it learns)."""
        return copy.deepcopy(weights_fn())

    def gather(self, handles: list[Future]) -> list[Part]:
        """The parts, in the order of `handles` (a worker's error is raised here)."""
        return [handle.result() for handle in handles]

    def submit_to(self, worker: int, weights: Any, version: int, iteration: int,
                  reset: bool) -> Future:  # fmt: skip
        """Start one worker's collection in its thread."""
        collect = self.workers[worker].collect
        return self.threads[worker].submit(collect, weights, version, iteration, reset)

    def wait_first(self, handles: list[Future]) -> int:
        """The index of the first of `handles` to finish (the oldest among those done)."""
        done, _ = wait(handles, return_when=FIRST_COMPLETED)
        return min(i for i, handle in enumerate(handles) if handle in done)

    def close(self) -> None:
        """Wait for the threads, then close the workers' envs."""
        for thread in self.threads:
            thread.shutdown(wait=True)
        super().close()
