"""Env-steps per second of simple_spread (N=3): mpe2, SuperSuit-vectorized mpe2, and ours
(the batched torch env, eager and with its step through torch.compile).

One env-step is one joint action of all agents in one world. Every backend samples
uniformly random discrete actions inside the timed loop.

    PYTHONPATH=. python benchmarks/mpe_throughput.py --threads 2 --seconds 3
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import torch

from marl.envs.mpe import make_batched

ENV_ID = "mpe/simple_spread-v3"
NUM_AGENTS = 3


def timed(step: Callable[[], int], seconds: float) -> float:
    """Call `step` (which returns env-steps done) for about `seconds`; env-steps per second."""
    step()  # warm-up
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        done += step()
    return done / (time.perf_counter() - start)


def mpe2_single(seconds: float) -> float:
    """mpe2's parallel API, one env, reset when the episode ends."""
    from mpe2 import simple_spread_v3

    env = simple_spread_v3.parallel_env(N=NUM_AGENTS)
    env.reset(seed=0)
    rng = np.random.default_rng(0)

    def step() -> int:
        actions = {a: int(rng.integers(5)) for a in env.agents}
        _, _, term, trunc, _ = env.step(actions)
        if any(term.values()) or any(trunc.values()):
            env.reset()
        return 1

    return timed(step, seconds)


def mpe2_supersuit(seconds: float, copies: int = 8) -> float:
    """SuperSuit: pettingzoo_env_to_vec_env_v1 + concat_vec_envs_v1 (in process)."""
    import supersuit as ss
    from mpe2 import simple_spread_v3

    vec = ss.pettingzoo_env_to_vec_env_v1(simple_spread_v3.parallel_env(N=NUM_AGENTS))
    vec = ss.concat_vec_envs_v1(vec, copies, num_cpus=0, base_class="gymnasium")
    vec.reset(seed=0)
    rng = np.random.default_rng(0)

    def step() -> int:
        vec.step(rng.integers(5, size=vec.num_envs))
        return copies

    return timed(step, seconds)


def ours(seconds: float, num_envs: int, device: str, compile: bool = False) -> float:
    """The batched torch env with B = num_envs, actions drawn on the same device (`compile`:
    its step through torch.compile, compiled by the warm-up step, which is not timed)."""
    env = make_batched(ENV_ID, num_envs, device=device, seed=0, N=NUM_AGENTS, compile=compile)
    env.reset()
    gen = torch.Generator(device=device).manual_seed(0)
    shape = (num_envs, NUM_AGENTS)

    def step() -> int:
        env.step(torch.randint(5, shape, generator=gen, device=device))
        if device != "cpu":
            torch.cuda.synchronize()
        return num_envs

    return timed(step, seconds)


def main() -> None:
    """Measure every backend in one run and print a table of ratios to mpe2."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--seconds", type=float, default=2.0, help="time per measurement")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 64, 1024, 8192])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = [("mpe2 parallel_env", 1, mpe2_single(args.seconds))]
    rows.append(("mpe2 + SuperSuit concat", 8, mpe2_supersuit(args.seconds)))
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        for b in args.sizes:
            rows.append((f"marl batched ({device})", b, ours(args.seconds, b, device)))
        for b in args.sizes:
            rate = ours(args.seconds, b, device, compile=True)
            rows.append((f"marl compiled ({device})", b, rate))
    base = rows[0][2]
    print(f"simple_spread N={NUM_AGENTS}, torch threads={args.threads}, {args.seconds}s each")
    print(f"| {'backend':26s} | {'B':>5s} | {'env-steps/s':>12s} | {'x mpe2':>7s} |")
    print(f"|{'-' * 28}|{'-' * 6}:|{'-' * 13}:|{'-' * 8}:|")
    for name, b, rate in rows:
        print(f"| {name:26s} | {b:5d} | {rate:12,.0f} | {rate / base:7.1f} |")


if __name__ == "__main__":
    main()
