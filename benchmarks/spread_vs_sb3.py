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
    LoadMeter,
    Result,
    greedy_return,
    load_result,
    run_file,
    save_result,
    train_marl,
)

MARL_METHODS = {"mappo": "state", "ippo": "local"}
"""marl method -> critic input; everything else comes from the MAPPO run file."""
SB3_COPIES, SB3_N_STEPS, SB3_BATCH = 8, 256, 1024


class SB3Policy:
    """An SB3 policy shared by all agents, acting on marl's `[B, N, O]` arrays, so it is
    scored by the protocol's own `run_episodes`, on the episodes marl's runs meet."""

    def __init__(self, model) -> None:
        self.model = model

    def act(self, obs, action_mask, *, greedy: bool = True) -> np.ndarray:
        obs = np.asarray(obs)
        flat = obs.reshape(-1, obs.shape[-1])
        actions, _ = self.model.predict(flat, deterministic=greedy)
        return np.asarray(actions).reshape(obs.shape[:2])


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
        start, cpu = time.perf_counter(), time.process_time()
        model.learn(total_timesteps=steps * ENV_KWARGS["N"])
        seconds, cpu_s = time.perf_counter() - start, time.process_time() - cpu
    env_steps = model.num_timesteps // ENV_KWARGS["N"]
    ret = greedy_return(SB3Policy(model))
    return Result("sb3", env_steps, seed, ret, seconds, load.mean, cpu_s)


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
    print(f"{'method':<8} {'return':>8} {'wall s':>8} {'CPU s':>7} {'steps/CPU-s':>12} "
          f"{'x sb3':>7} {'steps/wall-s':>13} {'x sb3':>7} {'load avg':>9}")  # fmt: skip
    sb3 = results.get("sb3", [])
    base_cpu = np.mean([r.steps / r.cpu_s for r in sb3] or [np.nan])
    base_wall = np.mean([r.steps_per_s for r in sb3] or [np.nan])
    for method, rs in results.items():
        per_cpu = np.mean([r.steps / r.cpu_s for r in rs])  # nan for a result saved without
        per_wall = np.mean([r.steps_per_s for r in rs])
        print(f"{method:<8} {np.mean([r.ret for r in rs]):>8.2f} "
              f"{np.mean([r.seconds for r in rs]):>8.0f} {np.mean([r.cpu_s for r in rs]):>7.0f} "
              f"{per_cpu:>12,.0f} {per_cpu / base_cpu:>6.2f}x {per_wall:>13,.0f} "
              f"{per_wall / base_wall:>6.2f}x {np.mean([r.load for r in rs]):>9.1f}")  # fmt: skip


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
