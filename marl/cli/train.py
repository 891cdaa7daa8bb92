"""`marl train` and `marl eval`: the run a user lives in.

A `--config` TOML may hold `env`, `steps`, `seed`, an `[env_kwargs]` table and a `[config]`
table of learner settings; `--set key=value` overrides learner settings and
`--env-kwarg key=value` env kwargs. Command-line values win over the file.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from marl.algorithms import ALGORITHMS
from marl.core.config import ConfigError, closest, load_toml, parse_overrides

RUN_FILE_KEYS = ("algo", "env", "steps", "seed", "env_kwargs", "config")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add `marl train` and `marl eval`."""
    p = subparsers.add_parser("train", help="train a learner on an env")
    p.add_argument("algo", nargs="?", choices=sorted(ALGORITHMS), help="algorithm")
    p.add_argument("--env", help="env id, e.g. mpe/simple_spread-v3")
    p.add_argument("--config", type=Path, help="run file (TOML): env, steps, seed, tables")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="learner setting, e.g. --set lr=3e-4 (repeatable)")  # fmt: skip
    p.add_argument("--env-kwarg", dest="env_kwargs", action="append", default=[],
                   metavar="KEY=VALUE", help="env kwarg, e.g. --env-kwarg N=3")  # fmt: skip
    p.add_argument("--steps", type=int, help="env-step budget")
    p.add_argument("--seed", type=int, help="seed (default 0)")
    p.add_argument("--out", type=Path, help="run directory (default runs/ALGO-ENV-sSEED)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--resume", type=Path, metavar="DIR", help="continue the run in DIR")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_backend_arguments(p)
    p.add_argument("--actors", type=int, default=None,
                   help="ray: rollout / self-play actors (default 2)")  # fmt: skip
    p.add_argument("--max-lag", type=int, default=None, choices=(0, 1),
                   help="ray: policy lag bound in updates (default 0, synchronous)")  # fmt: skip
    p.set_defaults(handler=train_command)

    p = subparsers.add_parser("eval", help="evaluate a run dir or checkpoint")
    p.add_argument("source", type=Path, help="run directory or checkpoint file")
    p.add_argument("--episodes", type=int, default=100)
    p.add_argument("--seed", type=int, default=10_000, help="evaluation seed")
    p.add_argument("--sampled", action="store_true", help="sample actions (default greedy)")
    p.add_argument("--render", type=Path, metavar="OUT.gif", help="write a GIF of an episode")
    p.set_defaults(handler=eval_command)


def add_backend_arguments(p: argparse.ArgumentParser) -> None:
    """`--backend local|ray` and `--address` (shared by `marl train` and `marl league run`)."""
    p.add_argument(
        "--backend",
        choices=("local", "ray"),
        default=None,
        help="local (default; no Ray needed) or ray (actors on a Ray cluster)",
    )
    p.add_argument(
        "--address",
        default=None,
        help="ray: cluster to join, e.g. auto or HEAD:6379 (default: start one)",
    )


def ray_options(args: argparse.Namespace) -> dict[str, Any]:
    """The `marl.distributed.RayConfig` fields given on the command line (with --backend ray)."""
    names = ("address", "actors", "max_lag")
    given = {k: getattr(args, k) for k in names if getattr(args, k, None) is not None}
    if given and args.backend != "ray":
        flags = ", ".join("--" + k.replace("_", "-") for k in given)
        raise ValueError(f"{flags} only apply with --backend ray")
    return given


def _run_file(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    data = load_toml(path)
    for key in data:
        if key not in RUN_FILE_KEYS:
            near = closest(key, RUN_FILE_KEYS)
            hint = f"did you mean {near[0]!r}? " if near else ""
            raise ConfigError(
                f"{path}: unknown key {key!r}; {hint}valid: {', '.join(RUN_FILE_KEYS)}"
            )
    return data


def _algo(given: str | None, from_file: str | None) -> str:
    """The algorithm named on the command line or in the run file (they must agree)."""
    if given and from_file and given != from_file:
        raise ValueError(f"the run file is for {from_file!r} but {given!r} was asked for")
    if not (given or from_file):
        raise ValueError("name an algorithm: marl train ALGO --env ID (or --resume DIR)")
    if given is None and from_file not in ALGORITHMS:
        raise ValueError(
            f"run file names unknown algo {from_file!r}; known: {', '.join(ALGORITHMS)}"
        )
    return given or from_file  # type: ignore[return-value]


def train_command(args: argparse.Namespace) -> int:
    """Train (or resume) and print where the run is and how it ended."""
    from marl.run.loop import RunSpec, resume, train

    backend = args.backend
    if args.resume is not None:
        run = resume(args.resume, progress=not args.no_progress, backend=backend,
                     ray=ray_options(args))  # fmt: skip
    else:
        spec = _run_file(args.config)
        algo = _algo(args.algo, spec.get("algo"))
        env_id = args.env or spec.get("env")
        steps = args.steps or spec.get("steps")
        if not env_id or not steps:
            raise ValueError("give --env ID and --steps N (or put env and steps in --config)")
        run_spec = RunSpec(
            algo, env_id, steps=int(steps),
            seed=args.seed if args.seed is not None else int(spec.get("seed", 0)),
            env_kwargs={**spec.get("env_kwargs", {}), **parse_overrides(args.env_kwargs)},
            device=args.device, threads=args.threads, backend=backend or "local",
            ray=ray_options(args),
        )  # fmt: skip
        config = {**spec.get("config", {}), **parse_overrides(args.overrides)}
        run = train(run_spec, config, out=args.out, progress=not args.no_progress)
    last = {k: v for k, v in (run.rows[-1] if run.rows else {}).items() if k.startswith("return/")}
    print(f"run: {run.out_dir}  steps: {run.learner.env_steps:,}  last returns: "
          + ", ".join(f"{k[7:]} {v:.3f}" for k, v in last.items()))  # fmt: skip
    print(f"checkpoint: {run.checkpoint}  curve: {run.out_dir / 'learning_curve.png'}")
    return 0


def eval_command(args: argparse.Namespace) -> int:
    """Evaluate and print per-team returns (or the learner's own evaluation); optionally a GIF."""
    from marl.algorithms import evaluation_module
    from marl.core.checkpoint import load_checkpoint
    from marl.run.evaluate import checkpoint_path, evaluate, render_gif

    algo = load_checkpoint(checkpoint_path(args.source))["algo"]
    own = evaluation_module(algo)
    if own is not None:  # alphazero: games against pyspiel.MCTSBot, colors alternating
        print(own.evaluate(args.source, episodes=args.episodes, seed=args.seed).summary())
        return 0
    result = evaluate(args.source, episodes=args.episodes, greedy=not args.sampled, seed=args.seed)
    print(result.summary())
    if args.render is not None:
        print(f"gif: {render_gif(args.source, args.render, seed=args.seed)}")
    return 0
