"""`marl league run|status|report`: play a league from a TOML file, resume it, report on it."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from marl.cli import add_import_argument
from marl.cli.argtypes import at_least
from marl.cli.train import add_backend_arguments
from marl.core.config import ConfigError
from marl.league.arena import ArenaError
from marl.league.players import PlayerError
from marl.league.ratings import RatingError
from marl.league.store import StoreError

HELP = "run a self-play league (resumable), show its status, or write its HTML report"
_ERRORS = (ConfigError, StoreError, PlayerError, ArenaError, RatingError)


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the `league` subcommand (run, status, report) to an argparse subparsers object."""
    p = subparsers.add_parser("league", help=HELP, description=HELP)
    sub = p.add_subparsers(dest="league_command", required=True)
    run = sub.add_parser("run", help="play (or resume) the league a TOML file describes")
    run.add_argument("file", help="league TOML, e.g. leagues/connect_four_baselines.toml")
    run.add_argument("--out", default=None, help="output folder (default: runs/<league name>)")
    run.add_argument("--workers", type=int, default=None, help="override league.workers")
    run.add_argument("--rounds", type=int, default=None, help="override league.rounds")
    add_backend_arguments(run)
    add_import_argument(run)
    run.set_defaults(handler=run_league_command)
    status = sub.add_parser("status", help="progress and current top ratings")
    status.add_argument("path", help="league folder or its league.db")
    status.add_argument("--top", type=at_least(1), default=10, help="ratings to show (10)")
    add_import_argument(status)
    status.set_defaults(handler=status_command)
    report = sub.add_parser("report", help="write a self-contained HTML report")
    report.add_argument("path", help="league folder or its league.db")
    report.add_argument("--out", default=None, help="HTML path (default: <folder>/report.html)")
    add_import_argument(report)
    report.set_defaults(handler=report_command)
    return p


def _fail(err: Exception) -> int:
    print(f"marl league: error: {err}", file=sys.stderr)
    return 2


def run_league_command(args: argparse.Namespace) -> int:
    """Play or resume a league, with a progress bar; exit 2 with one line on bad input."""
    import dataclasses

    from rich.progress import Progress

    from marl.league.config import load_league
    from marl.league.runner import run_league

    try:
        config = load_league(args.file)
        overrides = {k: getattr(args, k) for k in ("workers", "rounds")}
        overrides = {k: v for k, v in overrides.items() if v is not None}
        if overrides:
            league = dataclasses.replace(config.league, **overrides)
            league.validate()
            config = dataclasses.replace(config, league=league)
        out = Path(args.out) if args.out else Path("runs") / config.league.name
        with Progress() as progress:
            task = progress.add_task(config.league.name, total=config.planned_games)
            db = run_league(config, out, lambda result, n: progress.update(task, completed=n),
                            **_arena(args))  # fmt: skip
            done = progress.tasks[0].completed  # calibration may have found fewer pairings
            if done:
                progress.update(task, total=done)
    except _ERRORS as err:
        return _fail(err)
    print(f"league finished: {db}")
    return status_command(argparse.Namespace(path=str(db), top=10))


def _arena(args: argparse.Namespace) -> dict[str, Any]:
    """`run_league` keywords for --backend: ray plays matches as Ray tasks (the head stores)."""
    if getattr(args, "backend", None) != "ray":
        if getattr(args, "address", None):
            raise ConfigError("--address only applies with --backend ray")
        return {}
    from marl.distributed import RayConfig
    from marl.distributed.league import ray_arena_factory

    return {"make_arena": ray_arena_factory(RayConfig(address=args.address))}


def status_command(args: argparse.Namespace) -> int:
    """Print progress and the top ratings of a league."""
    from rich.console import Console

    from marl.cli.elo import ratings_table
    from marl.league.ratings import fit_ratings
    from marl.league.report import describe_learner, league_status, learner_progress
    from marl.league.store import LeagueStore, resolve_db

    try:
        with LeagueStore(resolve_db(args.path), readonly=True) as store:
            status = league_status(store)
            table = store.game_table()
            learners = learner_progress(store)
        ratings = fit_ratings(table) if table.num_games else None
    except _ERRORS as err:
        return _fail(err)
    console = Console()
    last = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(status.last_game_at or 0))
    console.print(
        f"[bold]{status.name}[/bold] ({status.env}): {status.finished_games}/"
        f"{status.planned_games} games, {status.rounds_done}/{status.rounds} rounds, "
        f"{status.runs} run(s), last game {last if status.last_game_at else 'none yet'}"
    )
    for progress in learners:
        console.print(describe_learner(progress))
    if ratings is not None:
        console.print(ratings_table(ratings, f"Top {args.top} ratings", top=args.top))
    return 0


def report_command(args: argparse.Namespace) -> int:
    """Write the league's HTML report."""
    from marl.league.report import write_report

    try:
        out = write_report(args.path, args.out)
    except _ERRORS as err:
        return _fail(err)
    print(f"report: {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run `league` as a standalone command (python -m marl.cli.league)."""
    parser = argparse.ArgumentParser(prog="marl")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["league", *(sys.argv[1:] if argv is None else argv)])
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
