"""MAPPO and IPPO (marl) against Stable-Baselines3 PPO on MPE simple_spread, same budget.

Protocol, for every method: see benchmarks/_spread.py (N=3, local_ratio 0.5, max_cycles 25,
greedy per-agent return over 100 episodes, budget in env steps). SB3 trains one PPO policy
shared by all agents on SuperSuit's vector env, which counts agent steps, so it gets N times as
many timesteps; its env copies are seeded by hand (SuperSuit's vector env has no `seed()`).
IPPO gets MAPPO's config except the critic (own observation instead of the global state), so
the two differ in that one switch. Torch runs on one thread for every method. Each result is
saved as JSON under --out and a finished run is not repeated, so methods can run in separate
processes and be tabled together.

    OMP_NUM_THREADS=1 python benchmarks/spread_vs_sb3.py --steps 2000000       # the issue's
    OMP_NUM_THREADS=1 python benchmarks/spread_vs_sb3.py --steps 200000 --methods mappo sb3
    python benchmarks/spread_vs_sb3.py --steps 2000000 --table-only
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from _spread import (
    ENV_ID,
    ENV_KWARGS,
    EVAL_EPISODES,
    EVAL_SEED,
    LoadMeter,
    Result,
    load_result,
    run_file,
    save_result,
    train_marl,
)

MARL_METHODS = {"mappo": "state", "ippo": "local"}
"""marl method -> critic input; everything else comes from the MAPPO run file."""
SB3_COPIES, SB3_N_STEPS, SB3_BATCH = 8, 256, 1024


def _sb3_eval(model, episodes: int, seed: int) -> float:
    """Greedy per-agent episode return of an SB3 policy shared by all agents."""
    from mpe2 import simple_spread_v3

    env = simple_spread_v3.parallel_env(**ENV_KWARGS)
    totals = []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        total = 0.0
        while env.agents:
            acts = {a: int(model.predict(obs[a], deterministic=True)[0]) for a in env.agents}
            obs, rewards, _, _, _ = env.step(acts)
            total += float(np.mean(list(rewards.values())))
        totals.append(total)
    return float(np.mean(totals))


def run_sb3(steps: int, seed: int) -> Result:
    """SB3 PPO (defaults but n_steps and batch size) with parameter sharing via SuperSuit."""
    import supersuit as ss
    from mpe2 import simple_spread_v3
    from stable_baselines3 import PPO
    from stable_baselines3.common.utils import set_random_seed

    set_random_seed(seed)  # SB3 draws minibatches from numpy's global RNG, actions from torch's
    vec = ss.pettingzoo_env_to_vec_env_v1(simple_spread_v3.parallel_env(**ENV_KWARGS))
    vec = ss.concat_vec_envs_v1(vec, SB3_COPIES, num_cpus=0, base_class="stable_baselines3")
    vec.venv.reset(seed=seed)  # seeds copy i with seed + i; later resets keep those RNGs
    model = PPO("MlpPolicy", vec, verbose=0, device="cpu", n_steps=SB3_N_STEPS,
                batch_size=SB3_BATCH, seed=None)  # fmt: skip
    with LoadMeter() as load:
        start = time.perf_counter()
        model.learn(total_timesteps=steps * ENV_KWARGS["N"])
        seconds = time.perf_counter() - start
    env_steps = model.num_timesteps // ENV_KWARGS["N"]
    return Result("sb3", env_steps, seed, _sb3_eval(model, EVAL_EPISODES, EVAL_SEED), seconds,
                  load.mean)  # fmt: skip


def run_method(method: str, steps: int, seed: int, out: Path, config: dict) -> Result:
    """One training run of `method` on the protocol."""
    if method == "sb3":
        return run_sb3(steps, seed)
    cfg = {**config, "critic": MARL_METHODS[method], "value_norm": "running"}
    return train_marl("mappo", steps, seed, out, cfg, method=method)


def print_table(results: dict[str, list[Result]], steps: int, seeds: list[int]) -> None:
    """The summary table, with returns and speed relative to SB3."""
    print(f"\n{ENV_ID} {ENV_KWARGS}, {steps:,} env steps, seeds {seeds}, greedy per-agent "
          f"return over {EVAL_EPISODES} episodes; 1 torch thread")  # fmt: skip
    print(f"{'method':<8} {'return':>8} {'wall s':>8} {'env-steps/s':>12} {'x sb3':>7} "
          f"{'load avg':>9}")  # fmt: skip
    base = np.mean([r.steps_per_s for r in results.get("sb3", [])] or [np.nan])
    for method, rs in results.items():
        sps = np.mean([r.steps_per_s for r in rs])
        print(f"{method:<8} {np.mean([r.ret for r in rs]):>8.2f} "
              f"{np.mean([r.seconds for r in rs]):>8.0f} {sps:>12,.0f} {sps / base:>6.2f}x "
              f"{np.mean([r.load for r in rs]):>9.1f}")  # fmt: skip


def main() -> None:
    """Run the chosen methods and print the table with ratios against SB3."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2_000_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--methods", nargs="+", default=["mappo", "ippo", "sb3"],
                        choices=[*MARL_METHODS, "sb3"])  # fmt: skip
    parser.add_argument("--config", type=Path, default=Path("envs/mappo_spread.toml"),
                        help="run file whose [config] table the marl methods use")  # fmt: skip
    parser.add_argument("--out", type=Path, default=Path("runs/bench/spread_vs_sb3"))
    parser.add_argument("--table-only", action="store_true", help="print saved results only")
    args = parser.parse_args()
    config = run_file(args.config, ("mappo",))
    results: dict[str, list[Result]] = {}
    for method in args.methods:
        for seed in args.seeds:
            path = args.out / f"{method}-{args.steps}-s{seed}.json"
            if not path.is_file():
                if args.table_only:
                    continue
                save_result(run_method(method, args.steps, seed, args.out, config), path)
                print(load_result(path).describe(), flush=True)
            results.setdefault(method, []).append(load_result(path))
    print_table(results, args.steps, args.seeds)


if __name__ == "__main__":
    main()
