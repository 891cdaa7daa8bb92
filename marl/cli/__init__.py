"""The `marl` command: one subcommand module per area, each adding its own parser."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Each module has `add_parser(subparsers)`; its parsers set `handler(args) -> int`.
SUBCOMMANDS = ("envs", "train", "elo", "league", "play")

# Errors that are the user's input being wrong: one line, no traceback. (marl's own input
# errors all derive from ValueError; a bare TypeError or KeyError is a bug and shows its trace.)
USER_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,
    FileNotFoundError,
    FileExistsError,
    NotImplementedError,
)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, one subcommand module at a time."""
    parser = argparse.ArgumentParser(prog="marl", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in SUBCOMMANDS:
        importlib.import_module(f"marl.cli.{name}").add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `marl` command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except USER_ERRORS as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err  # no quotes
        print(f"marl {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"marl {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
