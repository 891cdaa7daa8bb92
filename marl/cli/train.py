"""`marl train` and `marl eval`: the run a user lives in.

A `--config` TOML may hold `env`, `steps`, `seed`, an `[env_kwargs]` table and a `[config]`
table of learner settings; `--set key=value` overrides learner settings and
`--env-kwarg key=value` env kwargs. Command-line values win over the file.
"""

from __future__ import annotations

import argparse
import functools
from pathlib import Path
from typing import Any

from marl.algorithms import ALGORITHMS
from marl.cli import add_import_argument
from marl.cli.argtypes import at_least
from marl.core.config import ConfigError, closest, load_toml, parse_overrides

RUN_FILE_KEYS = ("algo", "env", "steps", "seed", "seeds", "env_kwargs", "config")
RUN_FILE_TYPES = {"algo": "name", "env": "name", "steps": "count", "seed": "count",
                  "seeds": "count", "env_kwargs": "table", "config": "table"}  # fmt: skip
FROM_THE_RUN = ("algo", "env", "config", "overrides", "env_kwargs", "seed", "seeds", "out")
"""Options a resumed run takes from its own config.toml (given with --resume: refused)."""
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm")
"""--render suffixes written through imageio's ffmpeg plugin (the `video` extra)."""


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
    p.add_argument("--steps", type=at_least(1), help="env-step budget (--resume: a new total)")
    p.add_argument("--seed", type=at_least(0), help="seed (default 0)")
    p.add_argument("--seeds", type=at_least(1), metavar="K",
                   help="train K runs (seeds SEED..SEED+K-1; default 1): ppo, ippo and "
                        "mappo as one batched computation, other algorithms side by side, "
                        "each the run its seed trains alone")  # fmt: skip
    p.add_argument("--procs", type=at_least(0), metavar="P",
                   help="--seeds K: processes the seeds split over, each a block of seeds "
                        "(default 0: one per --threads cores, at most one a seed; ppo, ippo, "
                        "mappo: two seeds or more a process, so the runs are the same "
                        "whatever the split)")  # fmt: skip
    p.add_argument("--out", type=Path, help="run directory (default runs/ALGO-ENV-sSEED)")
    p.add_argument("--force", action="store_true", help="write into --out whatever it holds")
    p.add_argument("--device", help="auto (default) | cpu | cuda")
    p.add_argument("--threads", type=at_least(1), help="torch CPU threads (default 1)")
    p.add_argument("--eval-every", type=at_least(0), default=0, metavar="N",
                   help="alphazero: 20 games vs MCTSBot(200) every N iterations")  # fmt: skip
    p.add_argument("--resume", type=Path, metavar="DIR", help="continue the run in DIR")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_backend_arguments(p, threads=True)
    p.add_argument("--actors", type=int, default=None,
                   help="ray: rollout / self-play actors; threads: worker threads "
                        "(default 2)")  # fmt: skip
    p.add_argument("--max-lag", type=int, default=None, choices=(0, 1),
                   help="ray: policy lag bound in updates (default 0, synchronous)")  # fmt: skip
    add_import_argument(p)
    p.set_defaults(handler=train_command)

    p = subparsers.add_parser("eval", help="evaluate a run dir or checkpoint")
    p.add_argument("source", type=Path, help="run directory or checkpoint file")
    p.add_argument("--episodes", type=at_least(1), default=100)
    p.add_argument("--seed", type=at_least(0), default=10_000, help="evaluation seed")
    p.add_argument("--sampled", action="store_true", help="sample actions (default greedy)")
    p.add_argument("--render", type=Path, metavar="OUT.gif",
                   help="write an episode as a GIF (or .mp4 with the video extra)")  # fmt: skip
    add_import_argument(p)
    p.set_defaults(handler=eval_command)


def add_backend_arguments(p: argparse.ArgumentParser, threads: bool = False) -> None:
    """`--backend local|ray` (and `threads` for `marl train`) and `--address` (shared by
    `marl train` and `marl league run`)."""
    p.add_argument(
        "--backend",
        choices=("local", "threads", "ray") if threads else ("local", "ray"),
        default=None,
        help="local (default; no Ray needed), "
        + ("threads (worker threads here, no Ray), " if threads else "")
        + "or ray (actors on a Ray cluster)",
    )
    p.add_argument(
        "--address",
        default=None,
        help="ray: cluster to join, e.g. auto or HEAD:6379 (default: start one)",
    )


def backend_options(args: argparse.Namespace) -> dict[str, Any]:
    """`RunSpec` fields from the backend flags: `workers` (--actors) for threads, else `ray`."""
    if args.backend == "threads":
        extra = [f for f in ("address", "max_lag") if getattr(args, f, None) is not None]
        if extra:
            flags = ", ".join("--" + k.replace("_", "-") for k in extra)
            raise ValueError(f"{flags} only apply with --backend ray")
        return {"ray": {}} | ({"workers": args.actors} if args.actors is not None else {})
    return {"ray": ray_options(args)}


def ray_options(args: argparse.Namespace) -> dict[str, Any]:
    """The `marl.distributed.RayConfig` fields given on the command line (with --backend ray)."""
    names = ("address", "actors", "max_lag")
    given = {k: getattr(args, k) for k in names if getattr(args, k, None) is not None}
    if given and args.backend != "ray":
        flags = ", ".join("--" + k.replace("_", "-") for k in given)
        where = "ray or threads" if set(given) == {"actors"} else "ray"
        raise ValueError(f"{flags} only apply with --backend {where}")
    return given


def _run_file(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    data = load_toml(path)
    for key, value in data.items():
        if key not in RUN_FILE_KEYS:
            near = closest(key, RUN_FILE_KEYS)
            hint = f"did you mean {near[0]!r}? " if near else ""
            raise ConfigError(
                f"{path}: unknown key {key!r}; {hint}valid: {', '.join(RUN_FILE_KEYS)}"
            )
        _check_run_file_value(path, key, value)
    return data


def _check_run_file_value(path: Path, key: str, value: Any) -> None:
    """Refuse `steps = 100.7`, `env = 5`, `config = 5`: name the key, the value, the type."""
    kind = RUN_FILE_TYPES[key]
    if kind == "name" and not isinstance(value, str):
        raise ConfigError(f"{path}: {key} = {value!r}: expected a string")
    if kind == "table" and not isinstance(value, dict):
        raise ConfigError(f"{path}: {key} = {value!r}: expected a table ([{key}])")
    if kind == "count":
        low = 1 if key in ("steps", "seeds") else 0
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(f"{path}: {key} = {value!r}: expected a whole number >= {low}")


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
    from marl.run.loop import RunSpec, default_out, resume, train

    if args.resume is not None:
        _refuse_run_options(args)
        out = args.resume
        changes = {"steps": args.steps, "device": args.device, "threads": args.threads,
                   "procs": args.procs}  # fmt: skip
        if args.backend is not None:
            changes |= {"backend": args.backend, **backend_options(args)}
        else:
            ray_options(args)  # --actors, --address, --max-lag need --backend, also here
        changes = {k: v for k, v in changes.items() if v is not None}
        start = functools.partial(resume, args.resume, changes=changes)
    else:
        spec = _run_file(args.config)
        env_id, steps = args.env or spec.get("env"), _given(args.steps, spec.get("steps"))
        if not env_id or steps is None:
            raise ValueError("give --env ID and --steps N (or put env and steps in --config)")
        run_spec = RunSpec(
            _algo(args.algo, spec.get("algo")), env_id, steps=steps,
            seed=_given(args.seed, spec.get("seed"), 0),
            seeds=_given(args.seeds, spec.get("seeds"), 1),
            env_kwargs={**spec.get("env_kwargs", {}), **parse_overrides(args.env_kwargs)},
            device=args.device or "auto", threads=args.threads or 1, procs=args.procs or 0,
            backend=args.backend or "local", eval_every=args.eval_every,
            **backend_options(args),
        )  # fmt: skip
        config = {**spec.get("config", {}), **parse_overrides(args.overrides)}
        out = args.out if args.out is not None else default_out(run_spec)
        start = functools.partial(train, run_spec, config, out=out, force=args.force)
    try:
        run = start(progress=not args.no_progress)
    except KeyboardInterrupt:
        raise KeyboardInterrupt(_resume_hint(out)) from None
    print(f"run: {run.out_dir}  steps: {run.trainer.env_steps:,}  last returns: "
          f"{last_returns(run.rows)}")  # fmt: skip
    print(f"checkpoint: {run.checkpoint}  curve: {run.out_dir / 'learning_curve.png'}")
    return 0


def _given(*values: Any) -> Any:
    """The first value that is not None (0 is a value: `--seed 0` wins over the file's)."""
    return next((v for v in values if v is not None), None)


def _refuse_run_options(args: argparse.Namespace) -> None:
    """With --resume, the run's own settings apply: refuse options that would be ignored."""
    flags = {"algo": "ALGO", "env": "--env", "config": "--config", "overrides": "--set",
             "env_kwargs": "--env-kwarg", "seed": "--seed", "seeds": "--seeds",
             "out": "--out"}  # fmt: skip
    given = [flags[k] for k in FROM_THE_RUN if getattr(args, k) not in (None, [])]
    if given or args.force or args.eval_every:
        given += ["--force"] * args.force + ["--eval-every"] * bool(args.eval_every)
        raise ValueError(
            f"{', '.join(given)} cannot be given with --resume: the run in {args.resume} keeps "
            f"its own (see {args.resume / 'config.toml'}); only --steps (to extend it), "
            "--device, --threads, --procs and the backend options apply"
        )


def _resume_hint(out: Path) -> str:
    """What to do after Ctrl-C: resume from the last checkpoint, if one was written."""
    if (Path(out) / "checkpoint.pt").is_file():
        return f"resume with: marl train --resume {out}"
    return f"no checkpoint was written yet in {out}; start the run again (with --force)"


def last_returns(rows: list[dict[str, float]]) -> str:
    """Each team's most recent return (the last iteration may have finished no episode)."""
    last: dict[str, float] = {}
    for row in rows:
        last |= {
            k[len("return/") :]: v for k, v in row.items() if k.startswith("return/") and v == v
        }  # fmt: skip  (v == v: not NaN)
    if not last:
        return "none (no episode finished)"
    return ", ".join(f"{team} {value:.3f}" for team, value in last.items())


def eval_command(args: argparse.Namespace) -> int:
    """Evaluate and print per-team returns (or the learner's own evaluation); optionally a GIF."""
    from marl.algorithms import evaluation_module
    from marl.core.checkpoint import load_checkpoint
    from marl.run.evaluate import checkpoint_path, evaluate, render_gif

    if args.render is not None:
        check_render_path(args.render)
    algo = load_checkpoint(checkpoint_path(args.source))["algo"]
    own = evaluation_module(algo)
    games = own.evaluate(args.source, episodes=args.episodes, seed=args.seed) if own else None
    if games is not None:  # alphazero, muzero: games against pyspiel.MCTSBot, colors alternating
        print(games.summary())
        unused = [
            f for f, given in (("--render", args.render), ("--sampled", args.sampled)) if given
        ]
        if unused:
            raise ValueError(
                f"{' and '.join(unused)} not applied: a {algo} board-game run is evaluated by "
                "the games above (its search picks every move); watch it play with `marl play "
                "ENV RUN`"
            )
        return 0
    greedy = not args.sampled
    result = evaluate(args.source, episodes=args.episodes, greedy=greedy, seed=args.seed)
    print(result.summary())
    if args.render is not None:
        print(f"gif: {render_gif(args.source, args.render, seed=args.seed, greedy=greedy)}")
    return 0


def check_render_path(path: Path) -> None:
    """Refuse a --render path that no installed writer can write, naming what to install."""
    import importlib.util

    suffix = path.suffix.lower()
    if suffix not in (".gif", *VIDEO_SUFFIXES):
        raise ValueError(f"--render {path}: expected a .gif (or {', '.join(VIDEO_SUFFIXES)}) file")
    if suffix in VIDEO_SUFFIXES and importlib.util.find_spec("imageio_ffmpeg") is None:
        raise ValueError(
            f"--render {path}: writing {suffix} needs imageio's ffmpeg writer: "
            "pip install 'marl[video]' (imageio-ffmpeg), or render a .gif"
        )
