"""A live progress bar for training: env steps, steps/s, returns per team, ETA."""

from __future__ import annotations

import math
import sys
import time
from typing import Any

from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn


def describe_returns(stats: dict[str, float]) -> str | None:
    """This iteration's outcome: one return per team (teams that oppose each other are not
    averaged), or for self-play of a two-player game the first player's win and draw rates."""
    returns = {k[len("return/") :]: v for k, v in stats.items()
               if k.startswith("return/") and math.isfinite(v)}  # fmt: skip
    if "draw_rate" in stats and "player_0" in returns:  # self-play: the seats mirror each other
        draws = stats["draw_rate"]
        first_wins = (1.0 - draws + returns["player_0"]) / 2  # return = P(win) - P(loss)
        text = f"first player wins {first_wins:.0%}, draws {draws:.0%}"
    elif returns:
        text = "return " + ", ".join(f"{team} {value:.2f}" for team, value in returns.items())
    else:
        return None
    if "eval/score" in stats:
        text += f", score vs baseline {stats['eval/score']:.0%}"
    return text


class TrainProgress:
    """A rich progress bar on a terminal; a line every ~10% when output is not a terminal."""

    def __init__(self, total: int, done: int, label: str, enabled: bool = True) -> None:
        self.total, self.done, self.label, self.enabled = total, done, label, enabled
        self._start, self._start_done = time.perf_counter(), done
        self._last_outcome: str | None = None
        self._next_line = done + total // 10
        self._bar: Progress | None = None

    def __enter__(self) -> TrainProgress:
        if self.enabled and sys.stderr.isatty():
            self._bar = Progress(
                TextColumn("{task.description}"), BarColumn(),
                TextColumn("{task.completed:,.0f}/{task.total:,.0f} steps"),
                TextColumn("{task.fields[rate]:,.0f} steps/s"),
                TextColumn("{task.fields[outcome]}"), TimeRemainingColumn(),
                transient=False,
            )  # fmt: skip
            self._bar.start()
            self._task = self._bar.add_task(self.label, total=self.total, completed=self.done,
                                             rate=0.0, outcome="-")  # fmt: skip
        return self

    def steps_per_second(self) -> float:
        """Env steps per second since this bar started."""
        elapsed = max(time.perf_counter() - self._start, 1e-9)
        return (self.done - self._start_done) / elapsed

    def update(self, done: int, stats: dict[str, float]) -> None:
        """Advance to `done` env steps, showing the latest returns per team."""
        self.done = done
        self._last_outcome = describe_returns(stats) or self._last_outcome
        shown = self._last_outcome or "no episode finished yet"
        if self._bar is not None:
            self._bar.update(
                self._task, completed=done, rate=self.steps_per_second(), outcome=shown
            )
        elif self.enabled and (done >= self._next_line or done >= self.total):
            self._next_line = done + max(self.total // 10, 1)
            print(f"{self.label}: {done:,}/{self.total:,} steps, "
                  f"{self.steps_per_second():,.0f} steps/s, {shown}",
                  file=sys.stderr, flush=True)  # fmt: skip

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.stop()
