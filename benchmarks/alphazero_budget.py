"""AlphaZero strength per CPU-minute (issue 22): train run files for the same CPU budget,
then play their checkpoints against OpenSpiel's C++ `pyspiel.MCTSBot`.

`train` runs one run file in this process (one torch thread) until the process has used
`--cpu-minutes` of CPU time (`time.process_time`, so other jobs on a shared machine do not
count), writing a net-only checkpoint at every `--marks`-th of the budget (the curve's points)
and a `train.json` with CPU s, wall s, load average and env steps at each.
`match` plays every checkpoint of a `train` folder against the bot (colors alternating;
MCTS-Solver on unless `--no-solve`) and writes `match_<sims>.json`; `plot` draws wins
against training CPU-minutes for every folder under a protocol folder.

The issue's protocol (60 CPU-minutes per run file, 100 games at 1,600 and at 200 simulations
per move against MCTSBot(1,000 random rollouts, solve=True)):

    python benchmarks/alphazero_budget.py protocol --out runs/budget

An ablation: one run file with one technique switched off, at the same budget:

    python benchmarks/alphazero_budget.py train --config envs/alphazero_connect_four_fast.toml \\
        --out runs/ablate/no_mix --cpu-minutes 10 --marks 1 --set targets.value_target_mix=0

The smaller one measured in the README (10 CPU-minutes, 20 games at 1,600 and 200 sims):

    python benchmarks/alphazero_budget.py protocol --out runs/budget10 --cpu-minutes 10 \\
        --marks 2 --games 20 --simulations 1600 200
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from marl.algorithms import make_config
from marl.core.checkpoint import atomic_write_bytes, save_checkpoint
from marl.core.config import config_to_dict, load_toml, parse_overrides
from marl.run.loop import RunSpec, assemble

RUN_FILES = ("envs/alphazero_connect_four.toml", "envs/alphazero_connect_four_fast.toml")
"""The old run file and the new one, compared at the same CPU budget."""


def _mark_path(out: Path, cpu_minutes: float) -> Path:
    return out / f"cpu{cpu_minutes:05.1f}min.pt"


def train(
    run_file: str, out: Path, cpu_minutes: float, marks: int, seed: int | None,
    overrides: dict | None = None, env: str | None = None,
) -> dict:  # fmt: skip
    """Train `run_file` (its config changed by `overrides`, as `--set` does; on `env` if
    given) for `cpu_minutes` of this process's CPU time; checkpoint at each mark."""
    spec_file = load_toml(run_file)
    spec = RunSpec(spec_file.get("algo", "alphazero"), env or spec_file["env"], steps=1 << 40,
                   seed=spec_file.get("seed", 0) if seed is None else seed, threads=1)  # fmt: skip
    values = {**spec_file.get("config", {}), **(overrides or {})}
    cfg, trainer = assemble(spec, make_config(spec.algo, values))
    out.mkdir(parents=True, exist_ok=True)
    budget = cpu_minutes * 60.0
    due = [budget * (k + 1) / marks for k in range(marks)]
    cpu0, wall0, points = time.process_time(), time.perf_counter(), []
    while due:
        stats = trainer.iterate()
        cpu = time.process_time() - cpu0
        if cpu < due[0]:
            continue
        due.pop(0)
        path = _mark_path(out, cpu / 60.0)
        save_checkpoint(path, algo=spec.algo, env_id=spec.env_id, config=config_to_dict(cfg),
                        learner={"net": trainer.learner.net.state_dict()})  # fmt: skip
        point = {"checkpoint": path.name, "cpu_s": round(cpu, 1),
                 "wall_s": round(time.perf_counter() - wall0, 1),
                 "load_avg_1min": os.getloadavg()[0], "env_steps": trainer.env_steps,
                 "games": stats.get("games"), "loss": stats.get("loss")}  # fmt: skip
        points.append(point)
        print(f"{run_file}: {point}", flush=True)
        # at every mark, so a run stopped early can still be matched up to where it got
        summary = {"run_file": run_file, "env": spec.env_id, "overrides": overrides or {},
                   "seed": spec.seed, "threads": 1, "points": points}  # fmt: skip
        atomic_write_bytes(out / "train.json", json.dumps(summary, indent=1).encode())
    return summary


def match(
    out: Path, games: int, simulations: int, bot_simulations: int, solve: bool,
    last_games: int | None = None,
) -> list:  # fmt: skip
    """Play each checkpoint of a `train` folder against the bot (the last one `last_games`
    games if given, so the curve's points can be cheaper than its end); write and return the
    rows."""
    from marl.search.strength import evaluate_checkpoint

    points = json.loads((out / "train.json").read_text())["points"]
    rows = []
    for k, point in enumerate(points):
        n = last_games if last_games and k == len(points) - 1 else games
        cpu0, wall0 = time.process_time(), time.perf_counter()
        result = evaluate_checkpoint(out / point["checkpoint"], n, simulations,
                                     bot_simulations, seed=0, solve=solve)  # fmt: skip
        row = {**point, "wins": result.wins, "draws": result.draws, "losses": result.losses,
               "simulations": simulations, "bot_simulations": bot_simulations, "solve": solve,
               "match_cpu_s": round(time.process_time() - cpu0, 1),
               "match_wall_s": round(time.perf_counter() - wall0, 1),
               "match_load_avg_1min": os.getloadavg()[0]}  # fmt: skip
        rows.append(row)
        print(f"{out.name} {point['checkpoint']}: {result.summary()}", flush=True)
    (out / f"match_{simulations}.json").write_text(json.dumps(rows, indent=1))
    return rows


def plot(parent: Path, runs: list[Path] | None = None, image: Path | None = None) -> Path:
    """Wins against training CPU-minutes: one line per run folder (every folder under
    `parent`, then `runs`) and simulation count; the rows of one folder's `match_<sims>.json`
    files with the same label are joined, so a curve may be matched in parts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves: dict[str, list[tuple[float, float]]] = {}
    files = sorted(parent.glob("*/**/match_*.json"))
    for run in runs or []:
        files += sorted(run.glob("**/match_*.json"))
    for path in files:
        rows = json.loads(path.read_text())
        label = f"{_run_label(path)}, {rows[0]['simulations']} sims/move"
        curves.setdefault(label, []).extend(
            (r["cpu_s"] / 60, 100 * r["wins"] / (r["wins"] + r["draws"] + r["losses"]))
            for r in rows
        )
    fig, ax = plt.subplots(figsize=(10, 4), dpi=100)
    ax.set_prop_cycle(color=plt.cm.tab20.colors)  # a run's two curves: dark and light shade
    for label, points in curves.items():  # measured points only (no made-up origin)
        points = sorted(points)
        style = "o-" if label.endswith(" 1600 sims/move") else "s--"
        ax.plot([m for m, _ in points], [w for _, w in points], style, label=label)
    ax.set_xlabel("training CPU-minutes (one torch thread)")
    ax.set_ylabel("wins % vs MCTSBot (random rollouts)")
    ax.set_ylim(50, 101)  # points at 100% stay visible
    ax.set_xlim(0, None)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))  # off the points
    fig.tight_layout()
    out = image or parent / "strength_per_cpu_minute.png"
    fig.savefig(out)
    plt.close(fig)
    return out


def _run_label(match_file: Path) -> str:
    """The run folder a match file belongs to: its folder, or the one above for the parts
    of a curve matched in sub-folders (`RUN/end`, `RUN/mid`)."""
    folder = match_file.parent
    if (folder / "train.json").is_file() and not any(folder.glob("*.pt")):
        folder = folder.parent  # a part that points at its run's checkpoints
    return folder.name


def main() -> None:
    """Parse the subcommand and run it."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_train = sub.add_parser("train", help="train one run file for a CPU budget")
    p_train.add_argument("--config", required=True, help="run file (envs/*.toml)")
    p_train.add_argument("--env", default=None,
                         help="train on this env id instead of the run file's, e.g. "
                         "openspiel/connect_four")  # fmt: skip
    p_match = sub.add_parser("match", help="play a train folder's checkpoints against the bot")
    p_proto = sub.add_parser("protocol", help="train both run files, then match them")
    p_plot = sub.add_parser("plot", help="draw the match results of a protocol folder")
    p_plot.add_argument(
        "--runs",
        type=Path,
        nargs="*",
        default=[],
        help="more run folders to draw (their match files, sub-folders too)",
    )
    p_plot.add_argument(
        "--image",
        type=Path,
        default=None,
        help="where to write the PNG (default: OUT/strength_per_cpu_minute.png)",
    )
    for p in (p_train, p_match, p_proto, p_plot):
        p.add_argument("--out", type=Path, required=True, help="folder (protocol: parent)")
    for p in (p_train, p_proto):
        p.add_argument("--cpu-minutes", type=float, default=60.0, help="CPU budget per run")
        p.add_argument("--marks", type=int, default=6, help="checkpoints over the budget")
        p.add_argument("--seed", type=int, default=None, help="default: the run file's")
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override the run files' config (an ablation), e.g. "
                       "targets.value_target_mix=0")  # fmt: skip
    for p in (p_match, p_proto):
        p.add_argument("--games", type=int, default=100, help="games per checkpoint")
        p.add_argument("--last-games", type=int, default=None,
                       help="games for the last checkpoint (default: --games)")  # fmt: skip
        p.add_argument("--simulations", type=int, nargs="+", default=[1600, 200],
                       help="our simulations per move (one match each)")  # fmt: skip
        p.add_argument("--bot-simulations", type=int, default=1000)
        p.add_argument("--no-solve", dest="solve", action="store_false",
                       help="the bot without MCTS-Solver (default: solve=True)")  # fmt: skip
    args = parser.parse_args()
    if args.command == "train":
        train(args.config, args.out, args.cpu_minutes, args.marks, args.seed,
              parse_overrides(args.set), args.env)  # fmt: skip
        return
    if args.command == "plot":
        print(plot(args.out, args.runs, args.image))
        return
    outs = [args.out]
    if args.command == "protocol":
        outs = [args.out / Path(f).stem for f in RUN_FILES]
        for run_file, out in zip(RUN_FILES, outs):
            train(run_file, out, args.cpu_minutes, args.marks, args.seed,
                  parse_overrides(args.set))  # fmt: skip
    for out in outs:
        for sims in args.simulations:
            match(out, args.games, sims, args.bot_simulations, args.solve, args.last_games)
    if args.command == "protocol":
        print(plot(args.out))


if __name__ == "__main__":
    main()
