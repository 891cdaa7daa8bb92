"""marl's SAC, TD3 and DDPG against Stable-Baselines3's SAC and TD3 on Pendulum-v1.

Protocol: one seed per method, a budget in env steps (20k by default; DDPG is also asked for
30k), then the GREEDY return over 10 fresh episodes (eval seed 123, one per env). Both sides
use 64x64 ReLU MLPs (the tests' size: the shared CPU could not afford 256x256), Adam at 1e-3,
batch 256, tau 0.005, gamma 0.99, one gradient update per env step; TD3's acting noise is
0.1 of the half-range (0.2 for Pendulum's [-2, 2]). SB3 keeps its other defaults
(learning_starts 100); marl's learners warm up with 1000 random steps. Torch runs on one
thread. Each result is saved as JSON under --out (a finished run is not repeated), so
methods can run in separate processes and be tabled together.

    OMP_NUM_THREADS=1 python benchmarks/offpolicy_pendulum.py --methods sac td3 sb3-sac sb3-td3
    OMP_NUM_THREADS=1 python benchmarks/offpolicy_pendulum.py --methods ddpg --steps 30000
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from _offpolicy import train_and_evaluate
from _spread import LoadMeter, Result, load_result, save_result

ENV = "Pendulum-v1"
EVAL_EPISODES, EVAL_SEED = 10, 123
HIDDEN = (64, 64)


def train_marl(algo: str, steps: int, seed: int) -> Result:
    """Train marl's `algo` for `steps` env steps and evaluate it greedily."""
    config = {"hidden": HIDDEN}
    return train_and_evaluate(algo, f"gym/{ENV}", {}, config, steps, seed, EVAL_EPISODES,
                              EVAL_SEED)[0]  # fmt: skip


def train_sb3(algo: str, steps: int, seed: int) -> Result:
    """Train SB3's SAC or TD3 for `steps` env steps and evaluate it greedily."""
    import gymnasium
    from stable_baselines3 import SAC, TD3
    from stable_baselines3.common.noise import NormalActionNoise

    env = gymnasium.make(ENV)
    common = dict(learning_rate=1e-3, batch_size=256, tau=0.005, gamma=0.99, seed=seed,
                  policy_kwargs={"net_arch": list(HIDDEN)}, device="cpu")  # fmt: skip
    if algo == "sac":
        model = SAC("MlpPolicy", env, **common)
    else:
        noise = NormalActionNoise(np.zeros(1), np.full(1, 0.2))
        model = TD3("MlpPolicy", env, action_noise=noise, **common)
    with LoadMeter() as load:
        start, cpu = time.perf_counter(), time.process_time()
        model.learn(total_timesteps=steps)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    returns = []
    for episode in range(EVAL_EPISODES):
        obs, _ = env.reset(seed=EVAL_SEED + episode)
        total, done = 0.0, False
        while not done:
            action, _ = model.predict(obs, deterministic=True)
            obs, reward, terminated, truncated, _ = env.step(action)
            total, done = total + float(reward), terminated or truncated
        returns.append(total)
    return Result(f"sb3-{algo}", steps, seed, float(np.mean(returns)), seconds, load.mean, cpu)


def main() -> None:
    """Run the asked methods (skipping finished ones) and print every result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=["sac", "td3", "sb3-sac", "sb3-td3"])
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("runs/bench_offpolicy_pendulum"))
    args = parser.parse_args()
    for method in args.methods:
        path = args.out / f"{method}-{args.steps}-s{args.seed}.json"
        if not path.exists():
            if method.startswith("sb3-"):
                result = train_sb3(method.removeprefix("sb3-"), args.steps, args.seed)
            else:
                result = train_marl(method, args.steps, args.seed)
            save_result(result, path)
        print(load_result(path).describe(), flush=True)


if __name__ == "__main__":
    main()
