"""A live progress bar for training: env steps, steps/s, mean return, ETA."""

from __future__ import annotations

import math
import sys
import time
from typing import Any

from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn


def mean_return(stats: dict[str, float]) -> float | None:
    """Mean over teams of the `return/<team>` stats of one iteration, if any finished."""
    values = [v for k, v in stats.items() if k.startswith("return/") and math.isfinite(v)]
    return sum(values) / len(values) if values else None


class TrainProgress:
    """A rich progress bar on a terminal; a line every ~10% when output is not a terminal."""

    def __init__(self, total: int, done: int, label: str, enabled: bool = True) -> None:
        self.total, self.done, self.label, self.enabled = total, done, label, enabled
        self._start, self._start_done = time.perf_counter(), done
        self._last_return: float | None = None
        self._next_line = done + total // 10
        self._bar: Progress | None = None

    def __enter__(self) -> TrainProgress:
        if self.enabled and sys.stderr.isatty():
            self._bar = Progress(
                TextColumn("{task.description}"), BarColumn(),
                TextColumn("{task.completed:,.0f}/{task.total:,.0f} steps"),
                TextColumn("{task.fields[rate]:,.0f} steps/s"),
                TextColumn("return {task.fields[ret]}"), TimeRemainingColumn(),
                transient=False,
            )  # fmt: skip
            self._bar.start()
            self._task = self._bar.add_task(self.label, total=self.total, completed=self.done,
                                             rate=0.0, ret="-")  # fmt: skip
        return self

    def steps_per_second(self) -> float:
        """Env steps per second since this bar started."""
        elapsed = max(time.perf_counter() - self._start, 1e-9)
        return (self.done - self._start_done) / elapsed

    def update(self, done: int, stats: dict[str, float]) -> None:
        """Advance to `done` env steps, showing this iteration's mean return."""
        self.done = done
        ret = mean_return(stats)
        if ret is not None:
            self._last_return = ret
        shown = "-" if self._last_return is None else f"{self._last_return:.2f}"
        if self._bar is not None:
            self._bar.update(self._task, completed=done, rate=self.steps_per_second(), ret=shown)
        elif self.enabled and (done >= self._next_line or done >= self.total):
            self._next_line = done + max(self.total // 10, 1)
            print(f"{self.label}: {done:,}/{self.total:,} steps, "
                  f"{self.steps_per_second():,.0f} steps/s, return {shown}",
                  file=sys.stderr, flush=True)  # fmt: skip

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.stop()
