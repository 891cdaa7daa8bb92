"""`marl envs list|show|check`: browse the registry and check an env against PettingZoo's API."""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from marl.cli import add_import_argument
from marl.cli.argtypes import at_least
from marl.envs.registry import EnvSpec, env_spec, list_envs, registration


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add `marl envs` and its three actions."""
    parser = subparsers.add_parser("envs", help="list, show and check environments")
    actions = parser.add_subparsers(dest="action", required=True)
    p = actions.add_parser("list", help="a table of registered env ids")
    p.add_argument("pattern", nargs="?", help="glob (mpe/*) or substring to filter ids")
    add_import_argument(p)
    p.set_defaults(handler=list_command)
    p = actions.add_parser("show", help="agents, teams, spaces and kwargs of one env")
    p.add_argument("env_id")
    add_import_argument(p)
    p.set_defaults(handler=show_command)
    p = actions.add_parser("check", help="run PettingZoo's API and seed tests on one env")
    p.add_argument("env_id")
    p.add_argument("--cycles", type=at_least(1), default=50, help="steps per test (default 50)")
    add_import_argument(p)
    p.set_defaults(handler=check_command)


def list_command(args: argparse.Namespace) -> int:
    """Print the ids matching the pattern as a table."""
    ids = list_envs(args.pattern)
    if not ids:
        raise ValueError(f"no env id matches {args.pattern!r}; try `marl envs list`")
    table = Table("id", "family", "kind", "source")
    for env_id in ids:
        reg = registration(env_id)
        table.add_row(env_id, reg.family, reg.kind, reg.source)
    Console().print(table)
    print(f"{len(ids)} envs")
    return 0


def show_command(args: argparse.Namespace) -> int:
    """Print one env's spec."""
    spec = env_spec(args.env_id)
    console = Console()
    console.print(f"[bold]{spec.env_id}[/bold]  family={spec.family} kind={spec.kind} "
                  f"source={spec.source}")  # fmt: skip
    console.print(escape(kwargs_line(spec)))
    table = Table("agent", "team", "observation space", "action space")
    team_of = {a: team for team, members in spec.teams.items() for a in members}
    for agent in spec.agents:
        table.add_row(agent, team_of[agent], str(spec.observation_spaces[agent]),
                      str(spec.action_spaces[agent]))  # fmt: skip
    console.print(table)
    return 0


def kwargs_line(spec: EnvSpec) -> str:
    """The kwargs `marl.make` takes for this env, each with its default."""
    values = ", ".join(f"{k}={v!r}" for k, v in sorted(spec.default_kwargs.items()))
    if spec.valid_kwargs is None:
        fixed = f"; set by the registration: {values}" if values else ""
        return f"kwargs: any the underlying env takes (not listed){fixed}"
    return f"kwargs (defaults): {values or '(none)'}"


def check_command(args: argparse.Namespace) -> int:
    """Run the checks; exit 1 if any rule fails."""
    from marl.envs.check import check_env

    results = check_env(args.env_id, num_cycles=args.cycles)
    for result in results:
        mark = "PASS" if result.passed else "FAIL"
        print(f"{mark}  {result.rule}" + (f": {result.message}" if result.message else ""))
    failed = sum(not r.passed for r in results)
    print(f"{args.env_id}: {len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0
