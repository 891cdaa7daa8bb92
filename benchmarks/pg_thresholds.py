"""The policy-gradient thresholds of issue 13, trained from their run files (seed 0).

Each run file (`envs/<name>.toml`) is trained to its own step budget, then its greedy policy
plays 20 episodes (eval seed 12345, mean undiscounted return; one agent, so per agent). The
script prints the return, the threshold and the CPU time of training (one torch thread)
beside wall time and load, and exits non-zero if a threshold is missed. `trpo_cartpole` also
runs in the test suite (`tests/test_policy_gradient.py`); the others take 1-2 minutes of
CPU each and live here to keep CI short:

    OMP_NUM_THREADS=1 python benchmarks/pg_thresholds.py
    OMP_NUM_THREADS=1 python benchmarks/pg_thresholds.py --names ppo_pendulum
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from marl.algorithms import local_trainer, make_config
from marl.core.config import load_toml
from marl.envs import make_vec, vec_spec
from marl.run.evaluate import run_episodes

ENVS = Path(__file__).resolve().parents[1] / "envs"
THRESHOLDS = {
    "reinforce_cartpole": 475.0,  # within 500k env steps
    "a2c_cartpole": 475.0,  # within 500k
    "trpo_cartpole": 475.0,  # within 200k
    "ppo_pendulum": -300.0,  # within 300k
    "trpo_pendulum": -300.0,  # within 300k
}


def train_run_file(name: str, seed: int = 0):
    """Train `envs/<name>.toml` to its step budget; the trainer and the run file."""
    spec = load_toml(ENVS / f"{name}.toml")
    config = make_config(spec["algo"], {**spec.get("config", {}), "total_steps": spec["steps"]})
    env = vec_spec(spec["env"], backend=config.backend, **spec.get("env_kwargs", {}))
    trainer = local_trainer(spec["algo"], env, config, seed)
    while trainer.env_steps < spec["steps"]:
        trainer.iterate()
    return trainer, spec


def greedy_return(policy, env_id: str, episodes: int = 20, seed: int = 12345) -> float:
    """Mean undiscounted return per agent of `episodes` greedy episodes."""
    vec = make_vec(env_id, 10)
    try:
        return float(run_episodes(policy, vec, episodes, greedy=True, seed=seed).mean())
    finally:
        vec.close()


def main() -> int:
    """Train each asked run file, print its line, and fail if a threshold is missed."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--names", nargs="+", default=list(THRESHOLDS), choices=list(THRESHOLDS))
    args = p.parse_args()
    torch.set_num_threads(1)
    missed = []
    for name in args.names:
        cpu, wall = time.process_time(), time.perf_counter()
        trainer, spec = train_run_file(name)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        ret = greedy_return(trainer.learner.policy(), spec["env"])
        ok = ret >= THRESHOLDS[name]
        missed += [] if ok else [name]
        verdict = "met" if ok else "MISSED"
        print(f"{name}: greedy {ret:.1f} over 20 episodes after {trainer.env_steps:,} env steps "
              f"(needs >= {THRESHOLDS[name]:.0f}: {verdict}); {cpu:.0f} s CPU (1 thread), "
              f"{wall:.0f} s wall, load {os.getloadavg()[0]:.1f}", flush=True)  # fmt: skip
    return 1 if missed else 0


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    sys.exit(main())
