"""`Trainer`: a learner and the pool that acts for it. What the training loop drives.

One `iterate`: send the learner's weights to the workers, gather their experience, and
`learn` from it. With `max_lag=1` the next collection starts before the update, so it acts
on weights one update old (logged as `policy_lag`). The same stats are logged whichever
pool acts, so a local run and a Ray run of one learner have the same metric names.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

import numpy as np

from marl.core.learner import Learner


class Driven(Protocol):
    """What the run loop drives: a `Trainer`, or K seeds' runs (`marl.run.seed_runs`,
    `marl.run.seed_procs`) with the same verbs."""

    learner: Any
    iteration: int

    @property
    def env_steps(self) -> int: ...

    def iterate(self) -> dict[str, float]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...

    def policy(self) -> Any: ...

    def close(self) -> None: ...


class Trainer:
    """Drives `learner` with `pool`; checkpoints hold the learner's state and the iteration."""

    def __init__(self, learner: Learner, pool: Any, max_lag: int = 0):
        if max_lag not in (0, 1):
            raise ValueError(f"max_lag={max_lag}: expected 0 or 1")
        self.learner, self.pool, self.max_lag = learner, pool, max_lag
        self.iteration = 0
        self.version = 0
        self.restarts = 0
        self._workers: list[str] | None = None
        self._pending: tuple[list[Any], float] | None = None
        self._reset_next = True

    @property
    def env_steps(self) -> int:
        """Env steps learned from so far."""
        return self.learner.env_steps

    def _submit(self) -> tuple[list[Any], float]:
        start = time.perf_counter()
        weights = self.pool.broadcast(self.learner.weights)
        broadcast_ms = (time.perf_counter() - start) * 1e3
        handles = self.pool.submit(weights, self.version, self.iteration, self._reset_next)
        self._reset_next = False
        return handles, broadcast_ms

    def _gather(self) -> tuple[list[Any], dict[str, float]]:
        start = time.perf_counter()
        handles, broadcast_ms = self._pending or self._submit()
        parts = self.pool.gather(handles)
        self._pending = self._submit() if self.max_lag == 1 else None
        names = [p.worker for p in parts]
        if self._workers is not None:
            self.restarts += sum(a != b for a, b in zip(names, self._workers))
        self._workers = names
        return parts, {
            "policy_lag": float(np.mean([self.version - p.version for p in parts])),
            "workers/restarts": float(self.restarts),
            "time/broadcast_ms": broadcast_ms,
            "time/collect_s": float(np.mean([p.seconds for p in parts])),
            "time/gather_s": time.perf_counter() - start,
        }

    def iterate(self) -> dict[str, float]:
        """Gather one round of experience and learn from it."""
        parts, stats = self._gather()
        start = time.perf_counter()
        stats |= self.learner.learn([p.experience for p in parts])
        stats["time/learn_s"] = time.perf_counter() - start
        self.version += 1
        self.iteration += 1
        return stats

    def state_dict(self) -> dict[str, Any]:
        """The learner's state, the iteration and the restart count; the next `iterate`
        starts fresh episodes, as a run resumed from this state does."""
        self._drop_pending()
        self._reset_next = True
        return {
            "learner": self.learner.state_dict(),
            "iteration": self.iteration,
            "restarts": self.restarts,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore `state_dict()`."""
        self._drop_pending()
        self.learner.load_state_dict(state["learner"])
        self.iteration = int(state["iteration"])
        self.restarts = int(state.get("restarts", 0))  # older checkpoints: not counted
        self._reset_next = True
        self.version += 1  # acting copies must reload even if they saw this version before

    def policy(self) -> Any:
        """The learner's current policy."""
        return self.learner.policy()

    def _drop_pending(self) -> None:
        if self._pending is not None:
            self.pool.gather(self._pending[0])  # let it finish; its experience is dropped
            self._pending = None

    def close(self) -> None:
        """Stop the workers and free the learner."""
        try:
            self._drop_pending()
        finally:
            self.pool.close()
            self.learner.close()
