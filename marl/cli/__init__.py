"""The `marl` command: one subcommand module per area, each adding its own parser."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from marl.core.config import MissingExtraError
from marl.core.dirlock import DirInUseError
from marl.envs.registry import import_user_modules

# Each module has `add_parser(subparsers)`; its parsers set `handler(args) -> int`.
SUBCOMMANDS = ("envs", "train", "elo", "league", "play", "rlhf")

# Errors that are the user's input being wrong: one line, no traceback. (marl's own input
# errors all derive from ValueError; a bare TypeError or KeyError is a bug and shows its trace;
# a missing optional dependency names its extra.)
USER_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,
    FileNotFoundError,
    FileExistsError,
    NotImplementedError,
    DirInUseError,
    MissingExtraError,
)

DESCRIPTION = "Train, evaluate and rate multi-agent RL agents on PettingZoo environments."
EXAMPLES = """\
examples:
  marl envs list 'mpe/*'                         find an environment
  marl envs show mpe/simple_spread-v3            its agents, teams, spaces and kwargs
  marl train mappo --env mpe/simple_spread-v3 --steps 200000 --out runs/spread
  marl eval runs/spread --render runs/spread/episode.gif
  marl train ppo --import my_envs --env my/env-v0 --steps 100000   an env registered in code
  marl train alphazero --env classic/tic_tac_toe-v0 --steps 60000 --out runs/ttt
  marl play classic/tic_tac_toe-v0 runs/ttt      you against the trained agent
  marl league run leagues/connect_four_baselines.toml
  marl elo games.csv                             ratings from a CSV of game results

`marl COMMAND --help` describes each command's options."""

# Exit status once the reader of stdout went away: 1, as rich's Console (which handles a broken
# pipe in its own writes) and Python's documentation on SIGPIPE use.
BROKEN_PIPE_STATUS = 1


def add_import_argument(p: argparse.ArgumentParser) -> None:
    """`--import MODULE` (repeatable): modules to import first, e.g. one that registers envs."""
    p.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                   help="import MODULE first (one calling marl.register); repeatable")  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, one subcommand module at a time."""
    parser = argparse.ArgumentParser(
        prog="marl",
        description=DESCRIPTION,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    subparsers = parser.add_subparsers(dest="command", required=True, title="commands")
    for name in SUBCOMMANDS:
        importlib.import_module(f"marl.cli.{name}").add_parser(subparsers)
    return parser


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that the exit-time flush does not fail a second time."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # a captured or replaced stdout
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `marl` command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        import_user_modules(getattr(args, "imports", []))  # spawned processes too
        status = int(args.handler(args) or 0)
        sys.stdout.flush()  # a reader that left (`| head -1`) shows up here, inside the try
        return status
    except BrokenPipeError:
        _silence_stdout()
        return BROKEN_PIPE_STATUS
    except USER_ERRORS as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err  # no quotes
        print(f"marl {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:
        what_next = f"; {err}" if str(err) else ""  # e.g. how to resume
        print(f"marl {args.command}: interrupted{what_next}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
