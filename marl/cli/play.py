"""`marl play`: play a board game in the terminal against a trained AlphaZero or MuZero run."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add `marl play ENV_ID CHECKPOINT [--second] [--simulations N]`."""
    p = subparsers.add_parser("play", help="play against a trained alphazero or muzero checkpoint")
    p.add_argument("env_id", help="board game env id, e.g. classic/connect_four-v0")
    p.add_argument(
        "checkpoint", type=Path, help="alphazero or muzero checkpoint file or run folder"
    )
    p.add_argument("--second", action="store_true", help="let the checkpoint move first")
    p.add_argument(
        "--simulations", type=int, metavar="N", help="search simulations per move (default: "
        "the run's eval_simulations)",
    )  # fmt: skip
    p.set_defaults(handler=play_command)


def play_command(args: argparse.Namespace) -> int:
    """Play one game; the exit status is 0 whatever the result (q quits with 130)."""
    from marl.search.play import play_terminal

    if args.simulations is not None and args.simulations < 1:
        raise ValueError(f"--simulations {args.simulations}: expected at least 1")
    play_terminal(
        args.env_id, args.checkpoint, human_first=not args.second, simulations=args.simulations
    )
    return 0
