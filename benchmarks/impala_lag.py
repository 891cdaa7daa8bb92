r"""The lag experiment: IMPALA on CartPole with actors 1, 4 and 16 updates behind, V-trace
against the uncorrected policy gradient (the same run with every importance weight 1).

    python benchmarks/impala_lag.py --seeds 0 1 --steps 250000   # writes docs/impala_lag.*
    python benchmarks/impala_lag.py --seeds 0 --steps 150000 --lags 16 --lr 5e-3 \
        --name impala_lag_lr5e-3                                  # bigger steps, lag 16

The lag is the in-process pool's deterministic one: one actor acts exactly L updates behind
the learner (after the first L updates), so every run is seeded and repeatable. Every
`--every` env steps the greedy policy plays 10 fresh episodes (eval seed 10000). The plot
shows the greedy return against env steps, the mean over seeds; the JSON keeps every curve
and each run's CPU time (one torch thread), wall time and the mean load average.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before torch is imported anywhere

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from _spread import LoadMeter  # noqa: E402
from impala_cartpole import ENV_ID, greedy  # noqa: E402

from marl.algorithms import local_trainer, make_config  # noqa: E402
from marl.envs import vec_spec  # noqa: E402

LAGS = (1, 4, 16)
DOCS = Path(__file__).resolve().parent.parent / "docs"


def curve(lag: int, vtrace: bool, seed: int, steps: int, every: int, extra: dict) -> dict:
    """One run: greedy returns every `every` env steps, and its costs."""
    cfg = make_config("impala", {"max_lag": lag, "vtrace": vtrace, "total_steps": steps, **extra})
    with LoadMeter() as load:
        start, cpu = time.perf_counter(), time.process_time()
        trainer = local_trainer("impala", vec_spec(ENV_ID), cfg, seed)
        points, next_eval = [], every
        while trainer.env_steps < steps:
            trainer.iterate()
            if trainer.env_steps >= next_eval:
                next_eval += every
                points.append((trainer.env_steps, greedy(trainer, episodes=10)))
        trainer.close()
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    final = float(np.mean([g for _, g in points[-3:]]))
    print(f"lag {lag:2d} vtrace {vtrace!s:5}: seed {seed}, last-3 greedy {final:6.1f}, "
          f"{cpu:.0f} s CPU, {seconds:.0f} s wall, load {load.mean:.1f}", flush=True)  # fmt: skip
    return {"lag": lag, "vtrace": vtrace, "seed": seed, "points": points, "final": final,
            "cpu_s": cpu, "wall_s": seconds, "load": load.mean}  # fmt: skip


def plot(runs: list[dict], path: Path, lags: list[int], title: str) -> None:
    """One panel per lag: mean greedy return over seeds, V-trace and uncorrected."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(lags), figsize=(4 * len(lags), 3.2), sharey=True, squeeze=False)
    axes = axes[0]
    for ax, lag in zip(axes, lags):
        for vtrace, style in ((True, "-"), (False, "--")):
            chosen = [r for r in runs if r["lag"] == lag and r["vtrace"] == vtrace]
            steps = [s for s, _ in chosen[0]["points"]]
            mean = np.mean([[g for _, g in r["points"]] for r in chosen], axis=0)
            label = "V-trace" if vtrace else "uncorrected"
            ax.plot(steps, mean, style, label=f"{label} ({len(chosen)} seeds)")
        ax.set_title(f"actors {lag} update(s) behind")
        ax.set_xlabel("env steps")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("greedy return (10 episodes)")
    axes[0].legend(loc="lower right")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    """Run every (lag, vtrace, seed), write docs/impala_lag.json and docs/impala_lag.png."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--steps", type=int, default=300_000)
    parser.add_argument("--every", type=int, default=25_000)
    parser.add_argument("--lags", type=int, nargs="+", default=list(LAGS))
    parser.add_argument("--lr", type=float, default=None, help="default: IMPALAConfig's")
    parser.add_argument("--name", default="impala_lag", help="docs/NAME.json and .png")
    args = parser.parse_args()
    torch.set_num_threads(1)
    extra = {} if args.lr is None else {"lr": args.lr}
    runs = [curve(lag, vtrace, seed, args.steps, args.every, extra)
            for lag in args.lags for vtrace in (True, False) for seed in args.seeds]  # fmt: skip
    (DOCS / f"{args.name}.json").write_text(json.dumps(runs, indent=1))
    lr = f", lr {args.lr:g}" if args.lr is not None else ""
    title = f"IMPALA on CartPole-v1{lr}: policy lag with and without V-trace"
    plot(runs, DOCS / f"{args.name}.png", args.lags, title)
    print("| lag | V-trace | uncorrected |\n|---|---|---|")
    for lag in args.lags:
        cells = [np.mean([r["final"] for r in runs if r["lag"] == lag and r["vtrace"] == v])
                 for v in (True, False)]  # fmt: skip
        print(f"| {lag} | {cells[0]:.1f} | {cells[1]:.1f} |")


if __name__ == "__main__":
    main()
