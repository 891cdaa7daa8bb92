"""PNG plots of ratings: intervals, ratings over time, and the win-rate matrix."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from marl.league.ratings import Ratings  # noqa: E402


def _png(fig: plt.Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def ratings_png(ratings: Ratings, title: str = "Ratings") -> bytes:
    """Ratings with their intervals as horizontal error bars, best at the top."""
    order = ratings.ranked()[::-1]
    y = np.arange(len(order))
    rating = ratings.rating[order]
    # a percentile (bootstrap) interval need not contain its estimate: draw its part that does
    err = np.stack([rating - ratings.lower[order], ratings.upper[order] - rating]).clip(min=0)
    fig, ax = plt.subplots(figsize=(7, 0.4 * len(order) + 1.5))
    ax.errorbar(rating, y, xerr=err, fmt="o", capsize=4, color="tab:blue")
    ax.set_yticks(y, [ratings.players[i] for i in order])
    ax.set_xlabel(f"rating (Elo scale), {ratings.config.confidence:.0%} intervals")
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    return _png(fig)


def history_png(rounds: list[int], players: tuple[str, ...], history: np.ndarray) -> bytes:
    """Ratings after each round ([R, P], NaN before a player's first game)."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for p, name in enumerate(players):
        ax.plot(rounds, history[:, p], marker="o", markersize=3, label=name)
    ax.set_xlabel("round")
    ax.set_ylabel("rating (Elo scale)")
    ax.set_title("Ratings over time (fit on all games up to each round)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return _png(fig)


def win_matrix_png(players: tuple[str, ...], score: np.ndarray, count: np.ndarray) -> bytes:
    """Heat map of the row player's mean score against the column player, with game counts."""
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(count > 0, score / count, np.nan)
    fig, ax = plt.subplots(figsize=(0.8 * len(players) + 2.5, 0.7 * len(players) + 2))
    image = ax.imshow(rate, cmap="RdBu", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(len(players)), players, rotation=45, ha="right")
    ax.set_yticks(range(len(players)), players)
    for i in range(len(players)):
        for j in range(len(players)):
            if count[i, j] > 0:
                color = "white" if abs(rate[i, j] - 0.5) > 0.3 else "black"
                ax.text(
                    j,
                    i,
                    f"{rate[i, j]:.2f}\n({int(count[i, j])})",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color=color,
                )
    fig.colorbar(image, ax=ax, label="row player's mean score")
    ax.set_title("Win rate (row vs column), games in brackets")
    return _png(fig)
