"""`AsyncTrainer`: actors that run ahead of the learner, within a bound on the policy lag.

Every worker keeps `depth` collections in flight, each started with the weights the learner
had then and tagged with their version. The learner takes one part at a time, the first to
arrive (in process: the oldest), starts that worker's next collection with the current
weights, and learns. A part whose weights are more than `max_lag` versions behind is dropped
(`async/dropped`) and its worker sent newer weights. This is IMPALA's and A3C's queue.

With the in-process pool the collections run when they are started, so one worker with
`depth = max_lag` acts exactly `max_lag` updates behind after the first `max_lag` updates:
a lag that is deterministic and seeded, which the lag experiment relies on. On Ray the lag
depends on timing, and the bound is what holds.
"""

from __future__ import annotations

import time
from typing import Any

from marl.core.learner import Learner
from marl.core.trainer import Trainer


class AsyncTrainer(Trainer):
    """Drives `learner` with `pool`'s workers running up to `max_lag` updates ahead."""

    def __init__(self, learner: Learner, pool: Any, max_lag: int):
        if max_lag < 1:
            raise ValueError(f"max_lag={max_lag}: an asynchronous trainer needs max_lag >= 1")
        super().__init__(learner, pool, 0)
        self.max_lag = max_lag
        self.workers = pool.size
        self.depth = max(1, max_lag // self.workers)
        self.dropped = 0
        self._in_flight: list[tuple[int, Any]] = []  # (worker, handle), oldest first
        # every process each worker has acted in: a part from a new one is a restart (parts
        # from the old process may still arrive after the new one's, and a killed worker's
        # calls in flight are retried in the new process, so neither its last part nor the
        # order of arrival tells a restart)
        self._seen = [{name} for name in pool.incarnations()]
        self._fresh = set(range(self.workers))  # workers whose next collection starts episodes
        self._weights: tuple[int, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        """`Trainer.state_dict` and the count of dropped parts (logged as `async/dropped`)."""
        return {**super().state_dict(), "dropped": self.dropped}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore `state_dict()`."""
        super().load_state_dict(state)
        self.dropped = int(state.get("dropped", 0))

    def _start(self, worker: int) -> None:
        if self._weights is None or self._weights[0] != self.version:
            self._weights = (self.version, self.pool.broadcast(self.learner.weights))
        reset = worker in self._fresh
        handle = self.pool.submit_to(worker, self._weights[1], self.version, self.iteration, reset)
        self._fresh.discard(worker)
        self._in_flight.append((worker, handle))

    def _fill(self) -> None:
        """Start collections until every worker has `depth` in flight."""
        for worker in range(self.workers):
            busy = sum(w == worker for w, _ in self._in_flight)
            for _ in range(self.depth - busy):
                self._start(worker)

    def _next(self) -> Any:
        """The first part to arrive that is within the lag bound."""
        while True:
            self._fill()
            index = self.pool.wait_first([handle for _, handle in self._in_flight])
            worker, handle = self._in_flight.pop(index)
            (part,) = self.pool.gather([handle])
            if part.worker not in self._seen[worker]:
                self._seen[worker].add(part.worker)
                self.restarts += 1
            if self.version - part.version <= self.max_lag:
                return part
            self.dropped += 1

    def _gather(self) -> tuple[list[Any], dict[str, float]]:
        start = time.perf_counter()
        part = self._next()
        self._fill()  # the next collection acts on these weights, while the learner learns
        return [part], {
            "policy_lag": float(self.version - part.version),
            "workers/restarts": float(self.restarts),
            "async/dropped": float(self.dropped),
            "time/collect_s": part.seconds,
            "time/gather_s": time.perf_counter() - start,
        }

    def _drop_pending(self) -> None:
        """Let the collections in flight finish and drop them; every worker starts fresh
        episodes next (as a run resumed from a checkpoint does)."""
        if self._in_flight:
            self.pool.gather([handle for _, handle in self._in_flight])
        self._in_flight = []
        self._fresh = set(range(self.workers))
