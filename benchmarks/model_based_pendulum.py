"""Sample efficiency on Pendulum-v1: SAC against MBPO and Dreamer (vector and pixels).

Protocol: one seed per method; every `--every` env steps (and at the end) the GREEDY return
over 10 fresh episodes (eval seed 123, one env per episode) is measured outside the timing
and saved with the CPU time (one torch thread) and wall time spent training so far. SAC and
MBPO use 64x64 ReLU nets (the off-policy benchmark's size), MBPO a 7-member ensemble of
3x200 SiLU MLPs (5 elites) and ten SAC updates per env step; Dreamer the learner's CPU-sized
defaults (GRU 128, 8x8 categorical latents, MLPs 128, 16 sequences of 32 steps, one update
per 10 env steps, imagination horizon 15); `dreamer-pixels-lean` makes one update per 50 env
steps instead, so that 100k pixel env steps fit in under an hour of CPU. `--max-cpu` stops a
method once it has used that much CPU, so an unaffordable budget still leaves its curve.
Each run is saved as JSON under
--out (a finished one is not repeated); `--plot` draws every saved curve.

    OMP_NUM_THREADS=1 python benchmarks/model_based_pendulum.py --methods mbpo --steps 5000
    OMP_NUM_THREADS=1 python benchmarks/model_based_pendulum.py --methods sac --steps 10000 \
        --every 1000
    OMP_NUM_THREADS=1 python benchmarks/model_based_pendulum.py --methods dreamer \
        --steps 50000 --every 5000 --max-cpu 1200
    OMP_NUM_THREADS=1 python benchmarks/model_based_pendulum.py --methods dreamer-pixels \
        --steps 100000 --every 1000 --max-cpu 150
    OMP_NUM_THREADS=1 python benchmarks/model_based_pendulum.py --methods dreamer-pixels-lean \
        --steps 100000 --every 10000
    python benchmarks/model_based_pendulum.py --methods --plot docs/model_based_pendulum.png
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

from _offpolicy import train_and_evaluate
from _spread import Result

EVAL_EPISODES, EVAL_SEED = 10, 123
METHODS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "sac": ("sac", "gym/Pendulum-v1", {"hidden": (64, 64)}),
    "mbpo": ("mbpo", "gym/Pendulum-v1", {"hidden": (64, 64)}),
    "dreamer": ("dreamer", "gym/Pendulum-v1", {}),
    "dreamer-pixels": ("dreamer", "gym/PendulumPixels-v1", {}),
    "dreamer-pixels-lean": ("dreamer", "gym/PendulumPixels-v1", {"updates_per_step": 0.02}),
}
"""Method -> (algorithm, env id, learner settings)."""


def run(method: str, steps: int, seed: int, every: int, max_cpu: float) -> dict[str, Any]:
    """Train `method`, measuring its greedy curve; the result and the curve as one record."""
    algo, env_id, config = METHODS[method]
    curve: list[dict[str, float]] = []
    result, _ = train_and_evaluate(
        algo, env_id, {}, config, steps, seed, EVAL_EPISODES, EVAL_SEED, method, every,
        curve, max_cpu,
    )  # fmt: skip
    if not curve or curve[-1]["env_steps"] != result.steps:
        curve.append({"env_steps": result.steps, "greedy": result.ret, "cpu_s": result.cpu_s,
                      "wall_s": result.seconds})  # fmt: skip
    return {"env_id": env_id, "config": config, "result": dataclasses.asdict(result),
            "curve": curve}  # fmt: skip


def plot(records: list[dict[str, Any]], path: Path) -> None:
    """Greedy return against real env steps, one line per method, CPU and wall in the legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for record in records:
        result, curve = Result(**record["result"]), record["curve"]
        label = (f"{result.method}: {result.cpu_s / 60:.1f} CPU-min, "
                 f"{result.seconds / 60:.1f} wall-min (load {result.load:.1f})")  # fmt: skip
        ax.plot([p["env_steps"] for p in curve], [p["greedy"] for p in curve], "o-",
                label=label, markersize=3)  # fmt: skip
    ax.axhline(-250, color="grey", linestyle=":", linewidth=1)
    ax.set_xscale("log")
    ax.set_xlabel("real env steps (log scale)")
    ax.set_ylabel("greedy return (10 episodes, eval seed 123)")
    ax.set_title("Pendulum-v1: sample efficiency (CPU time: 1 torch thread)")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> None:
    """Run the asked methods (skipping finished ones), print them, optionally plot all."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="*", default=["mbpo"], choices=sorted(METHODS))
    parser.add_argument("--steps", type=int, default=5_000)
    parser.add_argument("--every", type=int, default=500)
    parser.add_argument("--max-cpu", type=float, default=float("inf"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("runs/bench_model_based"))
    parser.add_argument("--plot", type=Path)
    args = parser.parse_args()
    for method in args.methods:
        path = args.out / f"{method}-{args.steps}-s{args.seed}.json"
        if not path.exists():
            record = run(method, args.steps, args.seed, args.every, args.max_cpu)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(record, indent=1))
        print(Result(**json.loads(path.read_text())["result"]).describe(), flush=True)
    if args.plot:
        records = [json.loads(p.read_text()) for p in sorted(args.out.glob("*.json"))]
        plot(records, args.plot)
        print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
