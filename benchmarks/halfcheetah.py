"""MATD3 on Multi-Agent MuJoCo's HalfCheetah-2x3 against single-agent TD3 on HalfCheetah-v5.

Protocol: one seed per method, 200k env steps each (the budget counts joint steps: one
MuJoCo step of the whole cheetah), then the GREEDY return over 10 fresh episodes of 1000
steps (eval seed 123). `mamujoco/HalfCheetah-2x3` splits the six joints between two agents
(back leg, front leg; `agent_obsk=1`); both agents get the single-agent env's reward, so
the per-agent return is the cheetah's return and the two columns compare directly. Both
sides: 256x256 ReLU MLPs, Adam 1e-3, batch 256, tau 0.005, gamma 0.99, one update per env
step, 10k uniformly random warm-up steps, acting noise 0.1 (`--hidden 64 64` for 64x64 nets:
about 5 ms of CPU per TD3 update instead of 9). MATD3 shares one actor and one
centralized critic (global state + both agents' actions) across the two agents. Torch runs
on one thread. Needs the mujoco extra (`pip install -e ".[mujoco]"`). Results are JSON
under --out; a finished run is not repeated.

    OMP_NUM_THREADS=1 python benchmarks/halfcheetah.py --steps 200000
"""

from __future__ import annotations

import argparse
from pathlib import Path

from _offpolicy import train_and_evaluate
from _spread import load_result, save_result

METHODS = {"matd3": "mamujoco/HalfCheetah-2x3", "td3": "gym/HalfCheetah-v5"}
CONFIG = dict(hidden=(256, 256), learning_starts=10_000, rollout_steps=1000)
EVAL_EPISODES, EVAL_SEED = 10, 123


def main() -> None:
    """Run the asked methods (skipping finished ones) and print every result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    parser.add_argument("--steps", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hidden", type=int, nargs="+", default=[256, 256])
    parser.add_argument(
        "--curve-every",
        type=int,
        default=25_000,
        help="print the greedy return every this many env steps (0: never)",
    )
    parser.add_argument("--out", type=Path, default=Path("runs/bench_halfcheetah"))
    args = parser.parse_args()
    for method in args.methods:
        width = "x".join(map(str, args.hidden))
        path = args.out / f"{method}-{width}-{args.steps}-s{args.seed}.json"
        if not path.exists():
            config = {**CONFIG, "hidden": tuple(args.hidden)}
            result, _ = train_and_evaluate(method, METHODS[method], {}, config, args.steps,
                                           args.seed, EVAL_EPISODES, EVAL_SEED,
                                           curve_every=args.curve_every)  # fmt: skip
            save_result(result, path)
        print(load_result(path).describe(), flush=True)


if __name__ == "__main__":
    main()
