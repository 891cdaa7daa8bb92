"""MATD3 and MASAC against MAPPO on simple_spread with continuous actions, same budget.

Protocol: `mpe/simple_spread-v3`, N=3, local_ratio 0.5, max_cycles 25, continuous actions
(Box(0, 1, (5,)) per agent); budget in env steps (joint steps of one world); the GREEDY
per-agent return over 100 fresh episodes (eval seed 10000). MATD3 and MASAC share one actor
and one centralized critic (global state + all actions) across the team; MAPPO uses its run
defaults (state+agent critic, running value norm). Torch runs on one thread. Results are JSON
under --out; a finished run is not repeated.

    OMP_NUM_THREADS=1 python benchmarks/offpolicy_spread.py --steps 100000 --seeds 0
    OMP_NUM_THREADS=1 python benchmarks/offpolicy_spread.py --steps 1000000 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
from pathlib import Path

from _offpolicy import train_and_evaluate
from _spread import load_result, save_result

ENV_ID = "mpe/simple_spread-v3"
ENV_KWARGS = {"N": 3, "local_ratio": 0.5, "max_cycles": 25, "continuous_actions": True}
OFF_POLICY = dict(hidden=(64, 64), num_envs=8, rollout_steps=25, backend="batched",
                  updates_per_step=0.05, batch_size=512, buffer_size=200_000,
                  learning_starts=5_000, gamma=0.95, tau=0.01)  # fmt: skip
CONFIGS = {
    "matd3": OFF_POLICY,
    "masac": OFF_POLICY,
    "mappo": dict(num_envs=8, rollout_len=128, backend="batched"),
}


def main() -> None:
    """Run the asked methods and seeds (skipping finished ones) and print every result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=list(CONFIGS))
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--out", type=Path, default=Path("runs/bench_offpolicy_spread"))
    args = parser.parse_args()
    for seed in args.seeds:
        for method in args.methods:
            path = args.out / f"{method}-{args.steps}-s{seed}.json"
            if not path.exists():
                config = (
                    {**CONFIGS[method], "total_steps": args.steps}
                    if method == "mappo"
                    else CONFIGS[method]
                )
                result, _ = train_and_evaluate(method, ENV_ID, ENV_KWARGS, config, args.steps,
                                               seed, 100, 10_000)  # fmt: skip
                save_result(result, path)
            print(load_result(path).describe(), flush=True)


if __name__ == "__main__":
    main()
