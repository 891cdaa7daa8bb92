"""Where a PPO iteration spends its time: env, policy, values, GAE, update, copies, Python.

Trains IPPO (or MAPPO) on simple_spread with JaxMARL's IPPO settings (16 envs x 128 steps,
4 epochs x 4 minibatches, 64-unit tanh MLPs) for `--iterations` iterations after one
warm-up iteration, with timers wrapped around the functions of the hot path. Times are CPU
time of this process (time.process_time, one torch thread), so other processes on a busy
machine do not inflate them; they are inclusive (a phase contains the phases listed under
it); "other" is what the listed children of a phase do not cover (Python glue, stacking,
indexing).

    OMP_NUM_THREADS=1 PYTHONPATH=. nice -n 10 python benchmarks/ppo_profile.py --backend batched
"""

from __future__ import annotations

import argparse
import functools
import os
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from _spread import ENV_ID, ENV_KWARGS

import marl.learners.ppo.learner as learner_mod
import marl.learners.ppo.loss as loss_mod
import marl.learners.ppo.rollout as rollout_mod
from marl.algorithms import local_trainer, make_config
from marl.envs import vec_spec
from marl.learners.ppo.nets import MultiAgentActorCritic

TIMES: dict[str, float] = defaultdict(float)
CALLS: dict[str, int] = defaultdict(int)
# phase -> (parent, what it is)
TREE: dict[str, tuple[str | None, str]] = {
    "iteration": (None, "one collect + learn"),
    "collect": ("iteration", "rollout_len env steps"),
    "env.step": ("collect", "the env's step (autoreset included)"),
    "policy.act": ("collect", "actor forward + sampling + log-prob"),
    "critic.values": ("collect", "critic forward at collection"),
    "learn": ("iteration", "GAE + update + stats"),
    "make_batch": ("learn", "bootstrap targets + GAE"),
    "update": ("learn", "epochs x minibatches of SGD"),
    "ppo_loss": ("update", "forward of actor and critic + loss"),
    "backward": ("update", "autograd backward"),
    "clip_grad_norm": ("update", "global grad-norm clip"),
    "adam.step": ("update", "optimizer step"),
}


def timer(label: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """`fn` that adds its CPU time to TIMES[label] (not counted inside another of itself)."""
    running = [0]

    @functools.wraps(fn)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if running[0]:
            return fn(*args, **kwargs)
        running[0] += 1
        start = time.process_time()
        try:
            return fn(*args, **kwargs)
        finally:
            TIMES[label] += time.process_time() - start
            CALLS[label] += 1
            running[0] -= 1

    return wrapped


def instrument(trainer: Any) -> None:
    """Wrap the hot path's functions with timers (this process only)."""
    env = trainer.pool.workers[0].env
    env.step = timer("env.step", env.step)
    net = trainer.learner.net
    in_collect = [False]
    act, values = net.act, net.values
    net.act = timer("policy.act", act)
    timed_values = timer("critic.values", values)
    net.values = lambda *a, **k: (timed_values if in_collect[0] else values)(*a, **k)
    collect = rollout_mod.collect

    def flagged_collect(*args: Any, **kwargs: Any) -> Any:
        in_collect[0] = True
        try:
            return collect(*args, **kwargs)
        finally:
            in_collect[0] = False

    learner_mod.collect = timer("collect", flagged_collect)
    learner_mod.make_batch = timer("make_batch", learner_mod.make_batch)
    learner_mod.update = timer("update", learner_mod.update)
    loss_mod.ppo_loss = timer("ppo_loss", loss_mod.ppo_loss)
    clip = loss_mod.torch.nn.utils.clip_grad_norm_
    loss_mod.torch.nn.utils.clip_grad_norm_ = timer("clip_grad_norm", clip)
    opt = trainer.learner.optimizer
    opt.step = timer("adam.step", opt.step)
    backward = loss_mod.torch.Tensor.backward
    loss_mod.torch.Tensor.backward = timer("backward", backward)  # restored by exit
    trainer.learner.learn = timer("learn", trainer.learner.learn)
    assert isinstance(net, MultiAgentActorCritic)


def report(iterations: int, env_steps: int, seconds: float, load: float) -> None:
    """Print the phase table: CPU ms per iteration and share of the iteration."""
    total = TIMES["iteration"]
    print(f"\n{env_steps:,} env steps in {total:.2f} s CPU (1 thread), {seconds:.2f} s wall, "
          f"load avg {load:.1f}: {env_steps / total:,.0f} env steps per CPU-second; per "
          f"iteration {1e3 * total / iterations:.1f} ms CPU\n")  # fmt: skip
    print("| phase | CPU ms / iteration | share | calls / iteration | what |")
    print("|---|---:|---:|---:|---|")
    for label, (parent, what) in TREE.items():
        depth = 0
        p = parent
        while p is not None:
            depth, p = depth + 1, TREE[p][0]
        ms = 1e3 * TIMES[label] / iterations
        calls = CALLS[label] / iterations
        name = "&nbsp;&nbsp;" * depth + label
        print(f"| {name} | {ms:.1f} | {TIMES[label] / total:.0%} | {calls:.0f} | {what} |")
        children = [c for c, (pa, _) in TREE.items() if pa == label]
        if children:
            rest = TIMES[label] - sum(TIMES[c] for c in children)
            name = "&nbsp;&nbsp;" * (depth + 1) + "other"
            print(f"| {name} | {1e3 * rest / iterations:.1f} | {rest / total:.0%} | | "
                  f"{label}'s Python glue, copies, stacking |")  # fmt: skip


def main() -> None:
    """Build the trainer, warm up one iteration, then time `--iterations`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algo", default="ippo", choices=["ippo", "mappo"])
    parser.add_argument("--backend", default="batched", choices=["batched", "sync"])
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--set", nargs="*", default=[], help="extra config key=value")
    args = parser.parse_args()
    overrides = dict(kv.split("=", 1) for kv in args.set)
    config = {"backend": args.backend, "num_envs": 16, "rollout_len": 128, "epochs": 4,
              "minibatches": 4, "hidden": (64, 64), "lr": 2.5e-4}  # fmt: skip
    config |= {k: eval(v) for k, v in overrides.items()}  # noqa: S307 (a local benchmark)
    cfg = make_config(args.algo, config)
    spec = vec_spec(ENV_ID, backend=args.backend, **ENV_KWARGS)
    trainer = local_trainer(args.algo, spec, cfg, seed=0)
    trainer.iterate()  # warm-up: first reset, allocator
    instrument(trainer)
    iterate = timer("iteration", trainer.iterate)
    start, steps0 = time.perf_counter(), trainer.env_steps
    for _ in range(args.iterations):
        iterate()
    seconds, load = time.perf_counter() - start, os.getloadavg()[0]
    print(f"{args.algo} on {ENV_ID} {ENV_KWARGS}, backend {args.backend}, config {config}")
    report(args.iterations, trainer.env_steps - steps0, seconds, load)


if __name__ == "__main__":
    main()
