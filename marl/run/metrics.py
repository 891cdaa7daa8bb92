"""Metrics of a run: `metrics.csv`, TensorBoard events, and a PNG.

`metrics.csv` grows by one appended line a row; it is rewritten whole (atomically) only
when a row brings a column the header lacks, so logging costs the same at row 10 and at
row 100,000. A last line cut short by a kill is dropped when the file is read back.

TensorBoard gets a row at most every `tensorboard_every_s` seconds of wall time (and the
last row): a scalar costs about 50 us there (its writer thread's queue), which made
TensorBoard a third of a run whose iterations are one env step (tabular Q-learning) and a
fifth of a 4-seed A2C run; `metrics.csv` keeps every row.
"""

from __future__ import annotations

import csv
import io
import math
import time
from pathlib import Path
from typing import Any

from marl.core.checkpoint import atomic_write_bytes
from marl.core.learner import interval95


class MetricsLog:
    """Rows of scalar stats keyed by env steps, kept in memory and mirrored to disk."""

    def __init__(self, out_dir: str | Path, *, tensorboard: bool = True, resume_at: int = 0,
                 tensorboard_every_s: float = 1.0):  # fmt: skip
        self.out_dir = Path(out_dir)
        self.tensorboard_every_s = tensorboard_every_s
        self._tb_last = -math.inf
        self._tb_pending: dict[str, float] | None = None  # a row TensorBoard has not had
        self.path = self.out_dir / "metrics.csv"
        self.rows: list[dict[str, float]] = []
        self._keys: list[str] = []
        if resume_at and self.path.is_file():
            # rows past the checkpoint were not saved by it: the resumed run redoes them
            self.rows = [r for r in read_metrics(self.path) if r["env_steps"] <= resume_at]
        self._writer: Any = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            # events past the checkpoint go (the resumed run redoes them); its own row stays
            purge = resume_at + 1 if resume_at else None
            self._writer = SummaryWriter(str(self.out_dir / "tb"), purge_step=purge)

    def log(self, env_steps: int, stats: dict[str, float]) -> None:
        """Add one row and write it out."""
        row = {"env_steps": float(env_steps), **{k: float(v) for k, v in stats.items()}}
        self.rows.append(row)
        if self._writer is not None:
            self._tb_pending = row
            if time.monotonic() - self._tb_last >= self.tensorboard_every_s:
                self._write_tensorboard()
        if self._keys and set(row) <= set(self._keys):  # no new column: append the line
            self._append(row)
        else:
            self.flush()

    def _append(self, row: dict[str, float]) -> None:
        text = io.StringIO()
        csv.DictWriter(text, fieldnames=self._keys, restval="").writerow(row)
        with open(self.path, "a", newline="") as f:
            f.write(text.getvalue())

    def flush(self) -> None:
        """Atomically rewrite metrics.csv with every row so far (the header: every column)."""
        keys: list[str] = []
        for row in self.rows:
            keys.extend(k for k in row if k not in keys)
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=keys, restval="")
        writer.writeheader()
        writer.writerows(self.rows)
        atomic_write_bytes(self.path, text.getvalue().encode())
        self._keys = keys

    def _write_tensorboard(self) -> None:
        """The latest row's finite stats as TensorBoard scalars."""
        if self._tb_pending is None:
            return
        row = self._tb_pending
        for key, value in row.items():
            if key != "env_steps" and math.isfinite(value):
                self._writer.add_scalar(key, value, int(row["env_steps"]))
        self._tb_pending, self._tb_last = None, time.monotonic()

    def close(self) -> None:
        """Write the last row to TensorBoard if it was held back, and flush it."""
        if self._writer is not None:
            self._write_tensorboard()
            self._writer.close()


def read_metrics(path: str | Path) -> list[dict[str, float]]:
    """Rows of a metrics.csv (empty cells dropped; a last line a kill cut short dropped)."""
    text = Path(path).read_text()
    if text and not text.endswith("\n"):  # the last line was being appended
        text = text[: text.rfind("\n") + 1]
    rows = csv.DictReader(io.StringIO(text, newline=""))
    return [{k: float(v) for k, v in row.items() if v != ""} for row in rows]


SELF_PLAY_LOSSES = ("loss", "policy_loss", "value_loss")
"""What a self-play run's curve shows: its seats' returns mirror each other and say nothing."""


def curve_columns(rows: list[dict[str, float]]) -> tuple[list[str], str]:
    """The columns a learning curve plots and their axis label."""
    present = {k for r in rows for k in r}
    if "draw_rate" in present:  # self-play of a two-player game (alphazero)
        return [k for k in SELF_PLAY_LOSSES if k in present], "training loss"
    keys = sorted(k for k in present if k.startswith("return/"))
    return keys, "episode return per agent (sampled policy)"


def seed_band(rows: list[dict[str, float]], key: str) -> list[tuple[float, float, float]]:
    """(env steps, mean, 95% half-width) across seeds of `key` (`return/team`) in a
    `--seeds K` run's rows (columns `seed{k}/key`); empty for a single-seed run."""
    points = []
    for row in rows:
        values = [v for k, v in row.items() if k.startswith("seed") and k.endswith("/" + key)]
        if len(values) > 1:
            mean, half = interval95(values)
            if not math.isnan(mean):
                points.append((row["env_steps"], mean, half))
    return points


def plot_learning_curve(rows: list[dict[str, float]], path: str | Path, title: str) -> Path:
    """Plot each team's return (self-play: the losses) against env steps into a PNG, and
    the score against a fixed baseline on a second axis when it was measured."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    keys, label = curve_columns(rows)
    for key in keys:
        band = seed_band(rows, key)
        if band:  # --seeds K: the mean across seeds and its 95% interval
            steps, mean, half = (np.array(x) for x in zip(*band))
            half = np.nan_to_num(half)
            seeds = sum(1 for k in rows[-1] if k.startswith("seed") and k.endswith("/" + key))
            line = ax.plot(steps, mean, label=f"{key.removeprefix('return/')} "
                           f"(mean of {seeds} seeds, 95% interval)")[0]  # fmt: skip
            ax.fill_between(steps, mean - half, mean + half, color=line.get_color(), alpha=0.25)
            continue
        pts = [(r["env_steps"], r[key]) for r in rows if key in r]
        ax.plot(*zip(*pts), label=key.removeprefix("return/"))
    ax.set_xlabel("env steps")
    ax.set_ylabel(label)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if keys:
        ax.legend(loc="upper left")
    scores = [(r["env_steps"], r["eval/score"]) for r in rows if "eval/score" in r]
    if scores:
        right = ax.twinx()
        right.plot(*zip(*scores), "k.-", label="score vs baseline")
        right.set_ylim(0, 1)
        right.set_ylabel("score vs fixed baseline (wins + draws/2)")
        right.legend(loc="upper right")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)
