"""What MAPPO's shared critic should see on spread: the global state, or state plus agent.

With shared critic parameters and per-agent rewards (`local_ratio=0.5`), a critic of the
state alone gives every agent the same V(s) while their returns differ; `state+agent` adds
the agent's own observation and id. Both train with envs/mappo_spread.toml's settings for
2M env steps per seed on the protocol of benchmarks/_spread.py (greedy, per-agent return,
100 evaluation episodes). Results are saved as JSON under --out, so the two critics can run
in two processes and be tabled together:

    OMP_NUM_THREADS=1 python benchmarks/mappo_critic.py --critics state --seeds 0 1 2
    OMP_NUM_THREADS=1 python benchmarks/mappo_critic.py --critics state+agent --seeds 0 1 2
    python benchmarks/mappo_critic.py --table-only
"""

from __future__ import annotations

import argparse
from pathlib import Path

from _spread import load_result, run_file, save_result, seeds_table, train_marl

RUN_FILE = Path(__file__).resolve().parents[1] / "envs" / "mappo_spread.toml"


def result_path(out: Path, critic: str, steps: int, seed: int) -> Path:
    """Where one run's result is saved."""
    return out / f"critic-{critic.replace('+', '_')}-{steps}-s{seed}.json"


def table(out: Path, steps: int) -> str:
    """Per-critic rows and a mean over seeds, from the saved results."""
    groups = {}
    for critic in ("state", "state+agent"):
        pattern = result_path(out, critic, steps, 0).name.replace("-s0.", "-s*.")
        groups[critic] = [load_result(path) for path in sorted(out.glob(pattern))]
    return seeds_table(groups, "critic")


def main() -> None:
    """Train the asked critics and seeds, then print the table of everything saved."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--critics", nargs="+", default=["state", "state+agent"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=2_000_000)
    p.add_argument("--out", type=Path, default=Path("runs/bench_mappo_critic"))
    p.add_argument("--table-only", action="store_true")
    args = p.parse_args()
    if not args.table_only:
        base = run_file(RUN_FILE, ("mappo",))
        for critic in args.critics:
            for seed in args.seeds:
                config = {**base, "critic": critic}
                result = train_marl("mappo", args.steps, seed, args.out, config, f"mappo-{critic}")
                save_result(result, result_path(args.out, critic, args.steps, seed))
                print(result.describe(), flush=True)
    print(table(args.out, args.steps))


if __name__ == "__main__":
    main()
