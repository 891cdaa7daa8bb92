"""IMPALA with a centralized critic (maimpala) against synchronous MAPPO on simple_spread.

Same env-step budget, same seeds, the protocol of benchmarks/_spread.py (greedy per-agent
return over 100 evaluation episodes). MAPPO uses envs/mappo_spread.toml's settings; IMPALA
acts in process, `max_lag` (default 4) updates behind, with the critic of the state and the
agent's own observation and V-trace targets, on the same batched envs. Results are saved as
JSON under --out, one per run, and tabled together:

    OMP_NUM_THREADS=1 python benchmarks/impala_spread.py --steps 500000 --seeds 0 1 2
    python benchmarks/impala_spread.py --steps 500000 --table-only
"""

from __future__ import annotations

import argparse
from pathlib import Path

from _spread import cached_result, load_result, run_file, seeds_table, train_marl

RUN_FILE = Path(__file__).resolve().parents[1] / "envs" / "mappo_spread.toml"
IMPALA = dict(backend="batched", num_envs=32, rollout_len=25, lr=1e-3, value_norm="running")
"""maimpala's settings: MAPPO's envs and learning rate, one 25-step episode per rollout."""
METHODS = ("mappo", "maimpala")


def result_path(out: Path, method: str, steps: int, seed: int) -> Path:
    """Where one run's result is saved."""
    return out / f"{method}-{steps}-s{seed}.json"


def table(out: Path, steps: int) -> str:
    """Per-method rows and a mean over seeds, from the saved results."""
    return seeds_table({
        method: [load_result(p) for p in sorted(out.glob(f"{method}-{steps}-s*.json"))]
        for method in METHODS
    })  # fmt: skip


def main() -> None:
    """Train every (method, seed) not saved yet, then print the table."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=500_000)
    p.add_argument("--out", type=Path, default=Path("runs/bench_impala_spread"))
    p.add_argument("--table-only", action="store_true")
    args = p.parse_args()
    configs = {"mappo": run_file(RUN_FILE, ("mappo",)), "maimpala": IMPALA}
    for seed in args.seeds:
        for method in args.methods:
            path = result_path(args.out, method, args.steps, seed)
            cached_result(path, args.table_only, lambda m=method, s=seed: train_marl(
                m, args.steps, s, args.out, configs[m]))  # fmt: skip
    print(table(args.out, args.steps))


if __name__ == "__main__":
    main()
