"""`marl elo GAMES`: Bradley-Terry/Elo ratings with intervals from a games CSV or a league."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from marl.cli.argtypes import at_least
from marl.league.games import GamesError, GameTable, read_games_csv
from marl.league.ratings import RatingConfig, RatingError, Ratings, fit_ratings
from marl.league.store import LeagueStore, StoreError, resolve_db

HELP = "rate players from game results (CSV or league database) with Bradley-Terry/Elo"


def _prior(text: str) -> float | None:
    if text.lower() == "none":
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'none', got {text!r}") from None


def _resamples(text: str) -> int:
    """--bootstrap N: 0 (Hessian intervals) or at least 2 resamples."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if n != 0 and n < 2:
        raise argparse.ArgumentTypeError(
            f"{n}: expected 0 (Hessian intervals) or at least 2 resamples"
        )
    return n


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the `elo` subcommand to an argparse subparsers object."""
    p = subparsers.add_parser("elo", help=HELP, description=HELP)
    p.add_argument("games", help="CSV (player_a,player_b,score_a[,first]) or league folder/.db")
    p.add_argument("--anchor", default=None, help="player pinned to --anchor-rating")
    p.add_argument(
        "--anchor-rating",
        type=float,
        default=1000.0,
        help="anchor player's rating, or the mean rating without --anchor (1000)",
    )
    p.add_argument(
        "--draws",
        choices=("half", "davidson"),
        default="half",
        help="draws as half a win (default) or Davidson's draw model",
    )
    p.add_argument("--first-move", action="store_true", help="fit a first-move advantage")
    p.add_argument(
        "--prior-std",
        type=_prior,
        default=1000.0,
        help="std (Elo) of the ridge prior on ratings, or 'none' (default 1000)",
    )
    p.add_argument(
        "--bootstrap",
        type=_resamples,
        default=0,
        metavar="N",
        help="percentile intervals from N bootstrap resamples (default: Hessian)",
    )
    p.add_argument("--confidence", type=float, default=0.95, help="interval coverage (0.95)")
    p.add_argument("--seed", type=at_least(0), default=0, help="seed of the bootstrap")
    p.add_argument("--plot", default=None, help="PNG path (default: next to the input)")
    p.add_argument("--no-plot", action="store_true", help="do not write the PNG")
    p.set_defaults(handler=run_elo)
    return p


def load_games(path: str | Path) -> GameTable:
    """Games from a CSV file, or from a league folder or its SQLite database."""
    path = Path(path)
    if path.is_dir() or path.suffix in (".db", ".sqlite", ".sqlite3"):
        with LeagueStore(resolve_db(path), readonly=True) as store:
            return store.game_table()
    return read_games_csv(path)


def ratings_table(ratings: Ratings, title: str, top: int | None = None) -> Any:
    """A rich table of ranked ratings with intervals (caption: how they were computed)."""
    from rich.table import Table

    table = Table(title=title, caption=ratings.describe())
    for name, justify in (
        ("#", "right"),
        ("player", "left"),
        ("rating", "right"),
        ("interval", "right"),
        ("games", "right"),
        ("score", "right"),
    ):
        table.add_column(name, justify=justify)
    for rank, i in enumerate(ratings.ranked()[:top], start=1):
        table.add_row(
            str(rank),
            ratings.players[i],
            f"{ratings.rating[i]:.0f}",
            f"[{ratings.lower[i]:.0f}, {ratings.upper[i]:.0f}]",
            str(int(ratings.games[i])),
            f"{ratings.mean_score[i]:.3f}",
        )
    return table


def run_elo(args: argparse.Namespace) -> int:
    """Fit, print and plot ratings; one error line and exit status 2 on bad input."""
    from rich.console import Console

    try:
        config = RatingConfig(
            draws=args.draws,
            first_move=args.first_move,
            anchor=args.anchor,
            anchor_rating=args.anchor_rating,
            prior_std=args.prior_std,
            confidence=args.confidence,
            seed=args.seed,
            intervals="bootstrap" if args.bootstrap else "hessian",
            bootstrap_samples=args.bootstrap or 2,  # unused with Hessian intervals
        )
        ratings = fit_ratings(load_games(args.games), config)
    except (GamesError, RatingError, StoreError) as err:
        print(f"marl elo: error: {err}", file=sys.stderr)
        return 2
    console = Console()
    console.print(ratings_table(ratings, f"Ratings from {args.games}"))
    if not args.no_plot:
        from marl.league.plots import ratings_png

        source = Path(args.games)
        default = source / "ratings.png" if source.is_dir() else source.with_suffix(".elo.png")
        plot = Path(args.plot) if args.plot else default
        plot.write_bytes(ratings_png(ratings, f"Ratings from {source.name}"))
        console.print(f"plot: {plot}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run `elo` as a standalone command (python -m marl.cli.elo)."""
    parser = argparse.ArgumentParser(prog="marl")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["elo", *(sys.argv[1:] if argv is None else argv)])
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
