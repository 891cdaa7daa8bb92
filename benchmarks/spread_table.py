"""MAPPO, QMIX and VDN on MPE simple_spread at one env-step budget: the README's table.

Each algorithm trains with the `[config]` table of its run file, envs/<algo>_spread.toml, for
`--budget` env steps (seed 0) on the protocol of benchmarks/_spread.py. Every method is
evaluated on the same 100 mpe2 episodes. Each result is also saved as JSON under --out, so
algorithms can run one at a time and be tabled together:

    OMP_NUM_THREADS=1 python benchmarks/spread_table.py --budget 300000
    OMP_NUM_THREADS=1 python benchmarks/spread_table.py --budget 300000 --algos qmix
    python benchmarks/spread_table.py --budget 300000 --table-only
"""

from __future__ import annotations

import argparse
from pathlib import Path

from _spread import (
    ENV_ID,
    ENV_KWARGS,
    EVAL_EPISODES,
    Result,
    load_result,
    run_file,
    save_result,
    train_marl,
)


def result_path(out: Path, algo: str, budget: int, seed: int) -> Path:
    """Where one run's result is saved."""
    return out / f"{algo}-{budget}-s{seed}.json"


def markdown_table(results: list[Result]) -> str:
    """The results as a markdown table (one row per algorithm and seed)."""
    lines = [
        "| algo | env steps | seed | greedy return | wall-clock | env-steps/s | load avg |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.method} | {r.steps:,} | {r.seed} | {r.ret:.2f} | {r.seconds / 60:.1f} min "
            f"| {r.steps_per_s:,.0f} | {r.load:.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    """Train what has no saved result yet, then print the table of all requested runs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=500_000)
    parser.add_argument("--algos", nargs="+", default=["mappo", "qmix", "vdn"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--envs-dir", type=Path, default=Path("envs"))
    parser.add_argument("--out", type=Path, default=Path("runs/bench/spread_table"))
    parser.add_argument("--table-only", action="store_true", help="print saved results only")
    args = parser.parse_args()
    results = []
    for algo in args.algos:
        for seed in args.seeds:
            path = result_path(args.out, algo, args.budget, seed)
            if not path.is_file():
                if args.table_only:
                    continue
                config = run_file(args.envs_dir / f"{algo}_spread.toml", (algo,))
                res = train_marl(algo, args.budget, seed, args.out, config)
                save_result(res, path)
                print(res.describe(), flush=True)
            results.append(load_result(path))
    print(f"\n{ENV_ID} {ENV_KWARGS}; greedy per-agent return over {EVAL_EPISODES} episodes; "
          "1 torch thread; load avg = mean 1-min load average of the 2-core machine "
          "during training\n")  # fmt: skip
    print(markdown_table(results))


if __name__ == "__main__":
    main()
