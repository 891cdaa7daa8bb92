"""`--seeds K` measured: K seeds in one process against one seed, the kernel choice, and drift.

Three parts, each optional, all on `mpe/simple_spread-v3` (N=3, local_ratio 0.5, 25 steps),
one torch thread, CPU time of this process beside wall time and the load average:

- `--kernel`: the stacked 64-64 tanh MLP's forward + backward at spread's sizes, K seeds
  at once by `torch.func` (`stack_module_state` + `functional_call` + `vmap`, what
  `marl.learners.ppo.seeds` uses) against grouped matmuls (`torch.baddbmm` on `[K, in,
  out]` weights) and against K separate modules called in a loop.
- `--train`: the same config trained with one seed, then with `--seeds K`, through
  `marl.run.loop.train` (metrics and checkpoints included), one after the other in this
  run: wall, CPU (the seed processes' included), env steps per CPU-second (all seeds' env
  steps), and the wall ratio (the issue's goal: K=8 takes at most 2x the wall clock of one
  seed). The K seeds train in as many processes as `marl train` chooses (one per core,
  two seeds or more each), or `--procs P` (1: all in this process).
- `--commands`: `marl train` with one seed, then `--seeds K` (`--procs`), each timed as a
  fresh command (imports, spawning and building included), JaxMARL's settings.
- `--drift N`: a 2-seed run against the two separate runs, iteration by iteration: the
  largest absolute weight difference (the batched matmuls sum in another order).
- `--split G`: K seeds as G groups of K/G (each one `--seeds`-style trainer) trained at the
  same time in G Python threads, then in G processes, `--steps` env steps per seed each
  (building and a warm-up iteration included), against one seed's wall clock (two cores:
  can the groups overlap?).

The config is JaxMARL's IPPO settings (16 envs x 128 steps, 4 epochs x 4 minibatches,
64-64 tanh; `spread_vs_jaxmarl.SAME_SETTINGS`) or a run file's `[config]` (`--config`).

    OMP_NUM_THREADS=1 PYTHONPATH=. nice -n 10 python benchmarks/seeds.py --kernel \\
        --train --steps 204800 --seeds 8 --drift 50
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from _spread import ENV_ID, ENV_KWARGS, LoadMeter, cpu_ms, run_file, speed_probe
from spread_vs_jaxmarl import ROLLOUT, SAME_SETTINGS, marl_run
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from marl.core.seeding import torch_generator
from marl.learners.ppo import activation
from marl.learners.ppo.nets import mlp


def kernel(k: int, repeats: int) -> None:
    """Forward + backward of K 64-64 tanh MLPs (21 -> 64 -> 64 -> 5, IPPO's actor on spread
    with agent ids) three ways, at acting rows (16 envs x 3 agents) and minibatch rows."""
    nets = [mlp(21, (64, 64), 5, torch_generator(s)) for s in range(k)]
    params, _ = stack_module_state(nets)  # type: ignore[arg-type]
    weights = [
        (lin.weight.detach(), lin.bias.detach()) for lin in nets[0] if isinstance(lin, nn.Linear)
    ]
    grouped = [
        (torch.stack([w.T] * k).requires_grad_(), torch.stack([b[None]] * k).requires_grad_())
        for w, b in weights
    ]

    def by_vmap(x: torch.Tensor) -> torch.Tensor:
        return vmap(lambda p, xs: functional_call(nets[0], p, (xs,)))(params, x)

    def by_bmm(x: torch.Tensor) -> torch.Tensor:
        for i, (w, b) in enumerate(grouped):
            x = torch.baddbmm(b, x, w)
            x = activation.tanh(x) if i < len(grouped) - 1 else x
        return x

    def by_loop(x: torch.Tensor) -> torch.Tensor:
        return torch.stack([net(xs) for net, xs in zip(nets, x)])

    print(f"kernel: K={k} MLPs 21-64-64-5 tanh, forward + backward, CPU ms per call")
    print("| rows per seed | torch.func vmap | grouped baddbmm | K modules in a loop |")
    print("|--:|--:|--:|--:|")
    for rows in (48, 1536):
        x = torch.randn(k, rows, 21, generator=torch_generator(0))
        times = [cpu_ms(lambda f=f, x=x: f(x).square().sum().backward(), repeats)
                 for f in (by_vmap, by_bmm, by_loop)]  # fmt: skip
        print(f"| {rows} | {times[0]:.3f} | {times[1]:.3f} | {times[2]:.3f} |", flush=True)


def cpu_seconds() -> float:
    """CPU time of this process and of its children that have ended (seed processes)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def timed_train(algo: str, steps: int, seeds: int, config: dict[str, Any], out: Path,
                threads: int = 1, procs: int = 0) -> dict:  # fmt: skip
    """Train through the run loop; wall, CPU (seed processes included) and load of the run."""
    from marl.run.loop import RunSpec, train

    spec = RunSpec(algo, ENV_ID, steps=steps, seed=0, seeds=seeds, env_kwargs=ENV_KWARGS,
                   device="cpu", threads=threads, procs=procs)  # fmt: skip
    with LoadMeter() as load:
        wall, cpu = time.perf_counter(), cpu_seconds()
        run = train(spec, config, out=out / f"{algo}-x{seeds}", progress=False)
        wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    blocks = getattr(run.trainer, "blocks", [run.spec.run_seeds])
    total = run.learner.env_steps * seeds
    return {"seeds": seeds, "steps": total, "wall": wall, "cpu": cpu, "load": load.mean,
            "rows": run.rows, "procs": len(blocks)}  # fmt: skip


def train_pair(algo: str, steps: int, k: int, config: dict[str, Any], threads: int = 1,
               procs: int = 0) -> None:  # fmt: skip
    """One seed, then K seeds (in `procs` processes, 0: as `marl train` chooses), same
    config and per-seed budget, one after the other."""
    with tempfile.TemporaryDirectory() as tmp:
        timed_train(algo, 2 * ROLLOUT, k, config, Path(tmp) / "warm-up", threads)  # lazy inits
        results = [timed_train(algo, steps, n, config, Path(tmp), threads, procs * (n > 1))
                   for n in (1, k)]  # fmt: skip
    print(f"\ntrain: {algo}, {steps:,} env steps per seed, config {config}")
    print(
        f"| seeds | processes | env steps (all seeds) | wall | CPU ({threads} torch threads "
        "a process) | env steps / CPU-s | env steps / wall-s | load avg | collect / learn |"
    )
    print("|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    for r in results:
        phases = {p: sum(row[f"time/{p}_s"] for row in r["rows"]) for p in ("collect", "learn")}
        split = f"{phases['collect']:.1f} s / {phases['learn']:.1f} s"
        print(f"| {r['seeds']} | {r['procs']} | {r['steps']:,} | {r['wall']:.1f} s | "
              f"{r['cpu']:.1f} s | {r['steps'] / r['cpu']:,.0f} | {r['steps'] / r['wall']:,.0f} | "
              f"{r['load']:.1f} | {split} |")  # fmt: skip
    one, many = results
    print(
        f"wall of {k} seeds / wall of 1 seed: {many['wall'] / one['wall']:.2f} "
        f"(CPU: {many['cpu'] / one['cpu']:.2f}); goal <= 2",
        flush=True,
    )


def commands(k: int, steps: int, backend: str, procs: int, gradients: str) -> None:
    """`marl train` with one seed, then with `--seeds K`, each a fresh command as a user
    types it (imports, spawning, building and checkpoints inside the wall clock)."""
    with tempfile.TemporaryDirectory() as tmp:
        runs = {n: marl_run(backend, steps, 0, Path(tmp) / f"x{n}", pin=False,
                            args=("--seeds", str(n), "--procs", str(procs)) if n > 1 else (),
                            gradients=gradients)
                for n in (1, k)}  # fmt: skip
    print(f"\ncommands: marl train ippo, {steps:,} env steps per seed, backend {backend}, "
          f"--procs {procs}, {gradients} gradients")  # fmt: skip
    print("| seeds | wall | CPU (all processes) |\n|--:|--:|--:|")
    for n, r in runs.items():
        print(f"| {n} | {r['wall_s']:.1f} s | {r['cpu_s']:.1f} s |")
    ratio = runs[k]["wall_s"] / runs[1]["wall_s"]
    print(f"wall of {k} seeds / wall of 1 seed: {ratio:.2f}; goal <= 2", flush=True)


def spec_and_config(algo: str, config: dict[str, Any]) -> tuple[Any, Any]:
    """The protocol env's VecSpec and `algo`'s config (no LR-annealing horizon)."""
    from marl.algorithms import make_config
    from marl.envs.vector import vec_spec

    cfg = make_config(algo, {**config, "total_steps": 10**9})
    return vec_spec(ENV_ID, backend=cfg.backend, **ENV_KWARGS), cfg


def drift(algo: str, iterations: int, config: dict[str, Any]) -> None:
    """Largest |weight difference| between a 2-seed run and the separate runs, by iteration."""
    from marl.algorithms import local_trainer, seeds_trainer

    spec, cfg = spec_and_config(algo, config)
    together = seeds_trainer(algo, spec, cfg, [0, 1])
    alone = [local_trainer(algo, spec, cfg, s) for s in (0, 1)]
    print(f"\ndrift: {algo}, 2 seeds together against 2 separate runs")
    print("| iteration | max abs weight difference | same episode returns |")
    print("|--:|--:|---|")
    for it in range(1, iterations + 1):
        stats = together.iterate()
        same = [
            stats[f"seed{k}/return/agent"] == t.iterate()["return/agent"]
            for k, t in enumerate(alone)
        ]
        runs = together.learner.state_dict()["runs"]
        diff = max((runs[k]["net"][n] - w).abs().max().item()
                   for k, t in enumerate(alone)
                   for n, w in t.learner.net.state_dict().items() if w.numel())  # fmt: skip
        if it in (1, 2, 5) or it % 10 == 0 or it == iterations:
            print(f"| {it} | {diff:.2e} | {'yes' if all(same) else 'no'} |", flush=True)


def _iterate_group(algo: str, seeds: list[int], config: dict[str, Any], iterations: int) -> None:
    """Build one trainer of `seeds` and run `iterations` iterations after a warm-up one."""
    from marl.algorithms import seeds_trainer

    torch.set_num_threads(1)
    trainer = seeds_trainer(algo, *spec_and_config(algo, config), seeds)
    trainer.iterate()
    for _ in range(iterations):
        trainer.iterate()


def split(algo: str, k: int, groups: int, config: dict[str, Any], iterations: int) -> None:
    """One seed alone, then K seeds as `groups` groups at once in threads, then processes."""
    import concurrent.futures as cf
    import multiprocessing

    size = k // groups
    parts = [list(range(g * size, (g + 1) * size)) for g in range(groups)]
    jobs = [(algo, part, config, iterations) for part in parts]
    executors = {"threads": lambda: cf.ThreadPoolExecutor(groups),
                 "processes": lambda: cf.ProcessPoolExecutor(
                     groups, mp_context=multiprocessing.get_context("spawn"))}  # fmt: skip
    start = time.perf_counter()
    _iterate_group(algo, [0], config, iterations)
    one = time.perf_counter() - start
    print(f"\nsplit: {algo}, {iterations} iterations; 1 seed: {one:.2f} s wall", flush=True)
    for name, make in executors.items():
        with make() as pool:
            start = time.perf_counter()
            list(pool.map(_iterate_group, *zip(*jobs)))  # includes each group's build
            wall = time.perf_counter() - start
        print(f"{k} seeds as {groups} x {size} in {groups} {name}: {wall:.2f} s wall "
              f"({wall / one:.2f}x one seed)", flush=True)  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--algo", default="ippo", choices=("ppo", "ippo", "mappo"))
    p.add_argument("--config", type=Path, help="a run file's [config] (default: JaxMARL's)")
    p.add_argument("--seeds", type=int, default=8)
    p.add_argument("--threads", type=int, default=1, help="torch threads of both runs")
    p.add_argument(
        "--procs",
        type=int,
        default=0,
        help="--train: processes of the K seeds (default 0: as marl train chooses)",
    )
    p.add_argument("--kernel", action="store_true", help="time vmap against baddbmm")
    p.add_argument("--repeats", type=int, default=200)
    p.add_argument("--train", action="store_true", help="time 1 seed against --seeds")
    p.add_argument("--steps", type=int, default=204_800, help="env steps per seed")
    p.add_argument(
        "--commands",
        action="store_true",
        help="time `marl train` for 1 seed against --seeds, as fresh commands",
    )
    p.add_argument("--drift", type=int, default=0, metavar="N", help="iterations of drift")
    p.add_argument("--split", type=int, default=0, metavar="G", help="groups at once")
    p.add_argument("--backend", choices=("batched", "compiled"), help="the env backend")
    p.add_argument("--gradients", choices=("analytic", "autograd"), help="PPO's gradient")
    args = p.parse_args()
    print(speed_probe(), "(start)", flush=True)
    config = run_file(args.config, ("mappo", "ippo")) if args.config else dict(SAME_SETTINGS)
    if args.backend:
        config["backend"] = args.backend
    if args.gradients:
        config["gradients"] = args.gradients
    omp = os.environ.get("OMP_NUM_THREADS")
    print(f"threads: {torch.get_num_threads()}, OMP_NUM_THREADS={omp}, "
          f"load average at start {os.getloadavg()[0]:.1f}", flush=True)  # fmt: skip
    if args.kernel:
        kernel(args.seeds, args.repeats)
    if args.train:
        train_pair(args.algo, args.steps, args.seeds, config, args.threads, args.procs)
    if args.commands:
        backend, gradients = config.get("backend", "batched"), config.get("gradients", "analytic")
        commands(args.seeds, args.steps, backend, args.procs, gradients)
    if args.drift:
        drift(args.algo, args.drift, config)
    if args.split:
        split(args.algo, args.seeds, args.split, config, args.steps // ROLLOUT)
    print(speed_probe(), "(end)", flush=True)


if __name__ == "__main__":
    main()
