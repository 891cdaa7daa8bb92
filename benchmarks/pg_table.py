"""REINFORCE, A2C, TRPO and PPO (marl) on CartPole, Pendulum and MPE spread at one budget,
beside Stable-Baselines3's A2C and PPO and sb3-contrib's TRPO on CartPole and Pendulum.

Every method trains for the same env-step budget (--steps) from the settings of its run
file `envs/{algo}_{env}.toml` (the file's own `steps` is replaced by the budget), on seeds
0..S-1, with torch on one thread. Measured per run: the greedy return over 20 evaluation
episodes (per-agent mean on spread; 10 envs reset with seed 12345, each playing an equal
share, for marl and SB3 alike: `marl.run.evaluate.run_episodes`), env steps per second of
training, env steps per CPU second, wall-clock and process CPU seconds of training (the CPU
numbers are what a busy machine's load does not inflate). SB3 gets marl's setting (the run
file's, else marl's default) where it has the same knob (envs, rollout length, gamma, GAE
lambda, learning rate, entropy bonus, epochs, minibatch size, KL limit, critic updates);
everything else is SB3's default.
Each result is saved as JSON under --out and a finished run is not repeated, so methods
can run in separate processes and be tabled together.

    pip install --no-deps stable-baselines3 sb3-contrib   # the `bench` extra; keep torch
    OMP_NUM_THREADS=1 python benchmarks/pg_table.py --steps 20000 --seeds 0 1 2
    python benchmarks/pg_table.py --steps 20000 --table-only
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
ENVS = ("cartpole", "pendulum", "spread", "spread_continuous")
MARL = ("reinforce", "a2c", "trpo", "ppo")
SB3 = ("sb3_a2c", "sb3_trpo", "sb3_ppo")
SB3_ENVS = ("cartpole", "pendulum")
EVAL_EPISODES, EVAL_SEED = 20, 12345


def run_file(algo: str, env: str) -> dict[str, Any]:
    """The run file of `algo` on `env` (SB3 methods read their marl namesake's)."""
    from marl.core.config import load_toml

    return load_toml(ROOT / "envs" / f"{algo.removeprefix('sb3_')}_{env}.toml")


def greedy_return(policy: Any, env_id: str, env_kwargs: dict[str, Any]) -> float:
    """Mean per-agent greedy return of EVAL_EPISODES episodes of `policy.act(obs, mask,
    greedy)`: 10 envs reset with EVAL_SEED, each playing an equal share (not the first
    episodes to finish, which would favour short ones)."""
    import marl
    from marl.run.evaluate import run_episodes

    env = marl.make_vec(env_id, 10, **env_kwargs)
    returns = run_episodes(policy, env, EVAL_EPISODES, greedy=True, seed=EVAL_SEED)
    env.close()
    return float(returns.mean())


class SB3Policy:
    """An SB3 model acting on marl's `[B, 1, O]` arrays (one agent), scored by
    `greedy_return` as marl's policies are."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def act(self, obs: Any, action_mask: Any, *, greedy: bool = True) -> np.ndarray:
        obs = np.asarray(obs)
        actions, _ = self.model.predict(obs[:, 0], deterministic=greedy)
        return np.asarray(actions).reshape(obs.shape[0], 1, *np.shape(actions)[1:])


def marl_settings(algo: str, env: str) -> dict[str, Any]:
    """Every setting marl's namesake of `algo` runs `env` with: the run file's, else marl's
    defaults (what SB3 is given where it has the same knob)."""
    from marl.algorithms import make_config
    from marl.core.config import config_to_dict

    name = algo.removeprefix("sb3_")
    return config_to_dict(make_config(name, run_file(name, env).get("config", {})))


def train_marl(algo: str, env: str, steps: int, seed: int) -> dict[str, Any]:
    """Train marl's `algo` from its run file for `steps` env steps; time and evaluate it."""
    from marl.algorithms import local_trainer, make_config
    from marl.envs import vec_spec

    spec = run_file(algo, env)
    kwargs = spec.get("env_kwargs", {})
    config = make_config(algo, {**spec.get("config", {}), "total_steps": steps})
    trainer = local_trainer(algo, vec_spec(spec["env"], backend=config.backend, **kwargs),
                            config, seed)  # fmt: skip
    wall, cpu = time.perf_counter(), time.process_time()
    while trainer.env_steps < steps:
        trainer.iterate()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    score = greedy_return(trainer.learner.policy(), spec["env"], kwargs)
    return dict(env_steps=trainer.env_steps, wall_s=wall, cpu_s=cpu, greedy=score)


def _sb3_model(algo: str, env: str, vec: Any, seed: int) -> Any:
    """The SB3 / sb3-contrib model with the marl run file's comparable settings."""
    from sb3_contrib import TRPO
    from stable_baselines3 import A2C, PPO

    cfg = marl_settings(algo, env)
    n_envs = cfg["num_envs"]
    common = dict(gamma=cfg.get("gamma", 0.99), seed=seed, device="cpu", verbose=0)
    if algo == "sb3_a2c":
        return A2C("MlpPolicy", vec, n_steps=cfg.get("rollout_len", 5),
                   gae_lambda=cfg.get("gae_lambda", 1.0), learning_rate=cfg.get("lr", 7e-4),
                   ent_coef=cfg.get("ent_coef", 0.01), **common)  # fmt: skip
    n_steps = cfg.get("rollout_len", 256 if algo == "sb3_trpo" else 128)
    minibatch = n_envs * n_steps // cfg.get("minibatches", 4 if algo == "sb3_ppo" else 8)
    if algo == "sb3_trpo":
        return TRPO("MlpPolicy", vec, n_steps=n_steps, batch_size=minibatch,
                    gae_lambda=cfg.get("gae_lambda", 0.95), learning_rate=cfg.get("lr", 1e-3),
                    target_kl=cfg.get("max_kl", 0.01),
                    n_critic_updates=cfg.get("value_epochs", 10), **common)  # fmt: skip
    return PPO("MlpPolicy", vec, n_steps=n_steps, batch_size=minibatch,
               n_epochs=cfg.get("epochs", 4), gae_lambda=cfg.get("gae_lambda", 0.95),
               learning_rate=cfg.get("lr", 3e-4), ent_coef=cfg.get("ent_coef", 0.01),
               **common)  # fmt: skip


def train_sb3(algo: str, env: str, steps: int, seed: int) -> dict[str, Any]:
    """Train an SB3 method on a gymnasium env for `steps` env steps; time and evaluate it."""
    from stable_baselines3.common.env_util import make_vec_env

    spec = run_file(algo, env)
    n_envs = marl_settings(algo, env)["num_envs"]
    vec = make_vec_env(spec["env"].removeprefix("gym/"), n_envs=n_envs, seed=seed)
    model = _sb3_model(algo, env, vec, seed)
    wall, cpu = time.perf_counter(), time.process_time()
    model.learn(total_timesteps=steps)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    score = greedy_return(SB3Policy(model), spec["env"], spec.get("env_kwargs", {}))
    return dict(env_steps=model.num_timesteps, wall_s=wall, cpu_s=cpu, greedy=score)


def table(out: Path, steps: int) -> str:
    """The markdown table of every saved result at this budget."""
    lines = [
        "| method | env | greedy return (mean ± std over seeds) | seeds | env-steps/s | "
        "env-steps/CPU s | wall s | CPU s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for env in ENVS:
        for method in MARL + SB3:
            rows = [json.loads(p.read_text()) for p in sorted(out.glob(f"{method}_{env}_s*.json"))]
            rows = [r for r in rows if r["steps"] == steps]
            if not rows:
                continue
            scores = [r["greedy"] for r in rows]
            rate = np.mean([r["env_steps"] / r["wall_s"] for r in rows])
            cpu_rate = np.mean([r["env_steps"] / r["cpu_s"] for r in rows])
            lines.append(
                f"| {method} | {env} | {np.mean(scores):.1f} ± {np.std(scores):.1f} | "
                f"{len(rows)} | {rate:,.0f} | {cpu_rate:,.0f} | "
                f"{np.mean([r['wall_s'] for r in rows]):.0f} | "
                f"{np.mean([r['cpu_s'] for r in rows]):.0f} |"
            )
    return "\n".join(lines)


def main() -> None:
    """Run the missing (method, env, seed) results, then print the table."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=20_000, help="env-step budget of every run")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--methods", nargs="+", default=list(MARL + SB3), choices=MARL + SB3)
    p.add_argument("--envs", nargs="+", default=list(ENVS), choices=ENVS)
    p.add_argument("--out", type=Path, default=Path("runs/pg_table"))
    p.add_argument("--table-only", action="store_true")
    args = p.parse_args()
    import torch

    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    for env in [] if args.table_only else args.envs:
        for method in args.methods:
            if method in SB3 and env not in SB3_ENVS:
                continue
            for seed in args.seeds:
                path = args.out / f"{method}_{env}_s{seed}.json"
                if path.exists() and json.loads(path.read_text())["steps"] == args.steps:
                    continue
                train = train_sb3 if method in SB3 else train_marl
                result = train(method, env, args.steps, seed)
                result |= dict(method=method, env=env, seed=seed, steps=args.steps,
                               load=os.getloadavg()[0])  # fmt: skip
                path.write_text(json.dumps(result))
                print(json.dumps(result), flush=True)
    print(table(args.out, args.steps))


if __name__ == "__main__":
    main()
