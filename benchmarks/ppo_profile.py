"""Where a PPO iteration spends its time: env, policy, values, GAE, update, copies, Python.

Trains IPPO (or MAPPO) on simple_spread with JaxMARL's IPPO settings (16 envs x 128 steps,
4 epochs x 4 minibatches, 64-unit tanh MLPs) for `--iterations` iterations after one
warm-up iteration, with timers wrapped around the functions of the hot path. Times are CPU
time of this process (time.process_time, one torch thread), so other processes on a busy
machine do not inflate them; they are inclusive (a phase contains the phases listed under
it); "other" is what the listed children of a phase do not cover (Python glue, stacking,
indexing).

    OMP_NUM_THREADS=1 PYTHONPATH=. nice -n 10 python benchmarks/ppo_profile.py --backend batched

The update's minibatch gradient is the analytic one (the default); `--set
gradients=autograd` times autograd's instead, its forward and backward apart.

`--floor` then times the arithmetic a minibatch step cannot avoid: the actor's and the
critic's matrix products and tanh, forward and backward, on the minibatch's rows, alone (no
loss, no optimizer), for one network and for K stacked ones as `--seeds K` runs them
(grouped `bmm`), in float32 and, for comparison, bfloat16.

`--tanh-pairs P` instead alternates whole iterations with each form of the activation
(`marl/learners/ppo/activation.py`: torch's tanh, the sigmoid form) in this one process, P
pairs, and prints each form's median and minimum CPU ms an iteration: on a host whose speed
drifts, alternation inside one process compares the two at the same moments.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import torch
from _spread import ENV_ID, ENV_KWARGS, cpu_ms, speed_probe
from torch import Tensor, nn

import marl.learners.ppo.learner as learner_mod
import marl.learners.ppo.loss as loss_mod
import marl.learners.ppo.rollout as rollout_mod
from marl.algorithms import local_trainer, make_config
from marl.core.config import parse_overrides
from marl.envs import vec_spec
from marl.learners.ppo import activation, analytic
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
    "gradients": ("update", "a minibatch's gradient (analytic, or autograd below)"),
    "ppo_loss": ("gradients", "autograd: forward of actor and critic + loss"),
    "backward": ("gradients", "autograd: backward"),
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
    loss_mod.autograd_gradients = timer("gradients", loss_mod.autograd_gradients)
    analytic.minibatch_gradients = timer("gradients", analytic.minibatch_gradients)
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
        if not CALLS[label]:
            continue  # a path not taken: the autograd phases when gradients are analytic
        depth = 0
        p = parent
        while p is not None:
            depth, p = depth + 1, TREE[p][0]
        ms = 1e3 * TIMES[label] / iterations
        calls = CALLS[label] / iterations
        name = "&nbsp;&nbsp;" * depth + label
        print(f"| {name} | {ms:.1f} | {TIMES[label] / total:.0%} | {calls:.0f} | {what} |")
        children = [c for c, (pa, _) in TREE.items() if pa == label and CALLS[c]]
        if children:
            rest = TIMES[label] - sum(TIMES[c] for c in children)
            name = "&nbsp;&nbsp;" * (depth + 1) + "other"
            print(f"| {name} | {1e3 * rest / iterations:.1f} | {rest / total:.0%} | | "
                  f"{label}'s Python glue, copies, stacking |")  # fmt: skip


def bare_mlp_step(
    rows: int, nets: list[list[int]], seeds: int, dtype: torch.dtype
) -> Callable[[], None]:
    """Forward + backward of tanh MLPs (`nets`: each net's layer widths, input first) on
    `rows` rows per seed, `seeds` of each stacked: only matrix products and tanh."""
    generator = torch.Generator().manual_seed(0)

    def weights(sizes: list[int]) -> list[Tensor]:
        shapes = zip(sizes[:-1], sizes[1:])
        return [torch.randn(seeds, a, b, generator=generator, dtype=dtype) for a, b in shapes]

    # one input per width: IPPO's actor and critic read the same observation tensor
    widths = {sizes[0] for sizes in nets}
    inputs = {w: torch.randn(seeds, rows, w, generator=generator, dtype=dtype) for w in widths}
    layers = [[w.requires_grad_() for w in weights(sizes)] for sizes in nets]

    def step() -> None:
        total = torch.zeros((), dtype=dtype)
        for sizes, net in zip(nets, layers):
            h = inputs[sizes[0]]
            for i, w in enumerate(net):
                h = torch.bmm(h, w)
                h = activation.tanh(h) if i < len(net) - 1 else h
            total = total + h.sum()
        total.backward()

    return step


def widths(*modules: nn.Module) -> list[int]:
    """Layer widths, input first, of the linear layers in `modules` (in order)."""
    linears = [m for module in modules for m in module.modules() if isinstance(m, nn.Linear)]
    return [linears[0].in_features, *(layer.out_features for layer in linears)]


def floor(cfg: Any, spec: Any, net: MultiAgentActorCritic, seeds: int) -> None:
    """Print one minibatch step's CPU time (from the profile) beside its bare arithmetic."""
    rows = cfg.num_envs * cfg.rollout_len * spec.n_agents // cfg.minibatches
    group = net.nets[0]  # the widths as built (agent ids, critic input), not re-derived
    nets = [widths(group.body, group.head), widths(group.critic)]
    step_ms = 1e3 * TIMES["update"] / CALLS["gradients"]
    print(f"\none minibatch step of the update ({rows} rows, MLPs {nets}, tanh): "
          f"{step_ms:.2f} ms CPU (from the profile above)\n")  # fmt: skip
    print("| bare matrix products + tanh, forward + backward | float32 ms | bfloat16 ms |")
    print("|---|--:|--:|")
    for k in sorted({1, seeds}):
        times = [
            cpu_ms(bare_mlp_step(rows, nets, k, dt), 200) for dt in (torch.float32, torch.bfloat16)
        ]
        print(f"| {k} seed{'s' * (k > 1)} | {times[0]:.2f} | {times[1]:.2f} |")


def alternate_tanh(trainer: Any, pairs: int) -> None:
    """Iterations with each tanh form in turn; each form's median and min CPU ms."""
    times: dict[str, list[float]] = {form: [] for form in activation.CHOICES}
    for _ in range(pairs):
        for form in activation.CHOICES:
            activation.BY_SIGMOID = form == "sigmoid"
            start = time.process_time()
            trainer.iterate()
            times[form].append((time.process_time() - start) * 1e3)
    for form, ms in times.items():
        print(f"tanh {form}: median {statistics.median(ms):.1f} ms CPU an iteration, "
              f"min {min(ms):.1f} ({pairs} iterations alternating)")  # fmt: skip


def main() -> None:
    """Build the trainer, warm up one iteration, then time `--iterations`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algo", default="ippo", choices=["ippo", "mappo"])
    parser.add_argument("--backend", default="batched", choices=["batched", "compiled", "sync"])
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument(
        "--floor",
        type=int,
        metavar="K",
        default=0,
        help="then time a minibatch step's bare arithmetic for 1 and K seeds",
    )
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="extra config key=value, repeatable")  # fmt: skip
    parser.add_argument("--tanh-pairs", type=int, default=0, metavar="P",
                        help="instead: P pairs of iterations, one per tanh form")  # fmt: skip
    args = parser.parse_args()
    print(speed_probe(), "(start)", flush=True)
    config = {"backend": args.backend, "num_envs": 16, "rollout_len": 128, "epochs": 4,
              "minibatches": 4, "hidden": (64, 64), "lr": 2.5e-4}  # fmt: skip
    config |= parse_overrides(args.overrides)  # as `marl train --set`: a bare word is a string
    cfg = make_config(args.algo, config)
    spec = vec_spec(ENV_ID, backend=args.backend, **ENV_KWARGS)
    trainer = local_trainer(args.algo, spec, cfg, seed=0)
    trainer.iterate()  # warm-up: first reset, allocator
    if args.tanh_pairs:
        alternate_tanh(trainer, args.tanh_pairs)
        return
    instrument(trainer)
    iterate = timer("iteration", trainer.iterate)
    start, steps0 = time.perf_counter(), trainer.env_steps
    for _ in range(args.iterations):
        iterate()
    seconds, load = time.perf_counter() - start, os.getloadavg()[0]
    print(f"{args.algo} on {ENV_ID} {ENV_KWARGS}, backend {args.backend}, config {config}")
    report(args.iterations, trainer.env_steps - steps0, seconds, load)
    if args.floor:
        floor(cfg, spec, trainer.learner.net, args.floor)


if __name__ == "__main__":
    main()
