"""Env steps per CPU-second on simple_spread: JaxMARL's IPPO baseline, then marl's IPPO.

JaxMARL's `baselines/IPPO/ippo_ff_mpe.py` runs from a local clone of its repository
(`--jaxmarl PATH`), as its authors wrote it: only the env arguments, the budget, the seed
count and logging are set from the command line (hydra overrides, WANDB_MODE=disabled). It
runs on one CPU (taskset -c 0) with XLA single-threaded. It is run twice: for one update
(imports, tracing, XLA compilation: the fixed cost) and for the whole budget; its training
CPU time is the difference, and its compile time (JAX_LOG_COMPILES) is printed apart.

marl's IPPO then trains with the same settings (16 envs x 128 steps, 4 epochs x 4
minibatches, 64-unit tanh MLPs, lr 2.5e-4 annealed, clip 0.2, entropy 0.01, one network
shared by the agents), once per `--backends` entry (batched: the eager torch MPE;
compiled: its step through torch.compile) and `--gradients` entry (PPO's minibatch
gradient: analytic, the default, or autograd), measured the same way: `marl train` in a fresh
process pinned to one core with one torch thread, for one update (the fixed cost: imports,
building, and compiling for `compiled`) and for the whole budget; then the greedy
per-agent return of the whole run over 100 mpe2 episodes. Needs the bench extra (`pip
install -e '.[bench]'`: jaxmarl[algs]).

Conventions: an env step is one joint step of all agents in one world, for both. JaxMARL's
spread episodes are 26 steps (done when step >= 25 after the increment) and its log
wrapper multiplies returns by the number of agents; marl's are 25 steps, per agent.

    OMP_NUM_THREADS=1 PYTHONPATH=. nice -n 10 python benchmarks/spread_vs_jaxmarl.py \\
        --jaxmarl /tmp/jaxmarl --steps 2000000
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import tomli_w
from _spread import ENV_ID, ENV_KWARGS, LoadMeter, evaluate_greedy, speed_probe

SCRIPT = "baselines/IPPO/ippo_ff_mpe.py"
ROLLOUT = 16 * 128  # JaxMARL's NUM_ENVS x NUM_STEPS: env steps per update
SAME_SETTINGS = {
    "backend": "batched", "num_envs": 16, "rollout_len": 128, "epochs": 4, "minibatches": 4,
    "hidden": [64, 64], "lr": 2.5e-4, "anneal_lr": True, "clip": 0.2, "ent_coef": 0.01,
    "vf_coef": 0.5, "max_grad_norm": 0.5, "gamma": 0.99, "gae_lambda": 0.95,
}  # fmt: skip


def timed_child(
    command: list[str], env: dict[str, str], cwd: str, pin: bool = True
) -> tuple[subprocess.CompletedProcess, float, float]:
    """Run `command` on core 0 (`pin`, where taskset exists); (result, CPU seconds of it and
    the processes it waited for, wall seconds)."""
    if pin and shutil.which("taskset"):
        command = ["taskset", "-c", "0", *command]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:4])} failed:\n{done.stderr[-3000:]}")
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return done, cpu, wall


def marl_run(backend: str, steps: int, seed: int, out: Path, args: tuple[str, ...] = (),
             pin: bool = True, gradients: str = "analytic") -> dict[str, float]:  # fmt: skip
    """`marl train` of IPPO with JaxMARL's settings (and `args`) in a fresh process, on core 0
    if `pin`, its PPO gradient `gradients` (analytic or autograd); CPU and wall seconds."""
    out.parent.mkdir(parents=True, exist_ok=True)
    run_file = out.parent / f"{out.name}.toml"
    config = {**SAME_SETTINGS, "backend": backend, "gradients": gradients}
    record = {"algo": "ippo", "env": ENV_ID, "steps": steps, "seed": seed,
              "env_kwargs": ENV_KWARGS, "config": config}  # fmt: skip
    run_file.write_bytes(tomli_w.dumps(record).encode())
    command = [sys.executable, "-m", "marl", "train", "--config", str(run_file), "--out",
               str(out), "--force", "--threads", "1", "--no-progress", *args]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1")
    _, cpu, wall = timed_child(command, env, os.getcwd(), pin)
    # marl's loop runs whole iterations until the budget is reached (JaxMARL's stops below it)
    return {"cpu_s": cpu, "wall_s": wall, "env_steps": -(-steps // ROLLOUT) * ROLLOUT}


def jaxmarl_run(clone: Path, steps: int, seed: int) -> dict[str, float]:
    """Run the baseline script once; CPU and wall seconds, compile seconds, env steps."""
    env = dict(os.environ, WANDB_MODE="disabled", JAX_LOG_COMPILES="1", OMP_NUM_THREADS="1",
               XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
               JAX_PLATFORMS="cpu")  # fmt: skip
    with tempfile.TemporaryDirectory() as work:
        command = [
            sys.executable, str(clone / SCRIPT), "NUM_SEEDS=1", f"SEED={seed}",
            f"TOTAL_TIMESTEPS={steps}", "WANDB_MODE=disabled", f"hydra.run.dir={work}/hydra",
            "+ENV_KWARGS.num_agents=3", "+ENV_KWARGS.num_landmarks=3",
            f"+ENV_KWARGS.local_ratio={ENV_KWARGS['local_ratio']}",
            f"+ENV_KWARGS.max_steps={ENV_KWARGS['max_cycles']}",
        ]  # fmt: skip
        done, cpu, wall = timed_child(command, env, work)
    log = done.stdout + done.stderr
    found = re.findall(r"Finished (?:XLA compilation|jaxpr to MLIR module conversion) of "
                       r"jit\(train\) in ([0-9.]+) sec", log)  # fmt: skip
    return {"cpu_s": cpu, "wall_s": wall, "compile_s": sum(map(float, found)),
            "env_steps": steps // ROLLOUT * ROLLOUT}  # fmt: skip


def marl_row(backend: str, gradients: str, steps: int, seed: int, out: Path) -> tuple:
    """marl's fixed cost (one update), then its whole budget, then the greedy return."""
    name = f"{backend}-{gradients}"
    with LoadMeter() as load:
        fixed = marl_run(backend, ROLLOUT, seed, out / f"{name}-fixed", gradients=gradients)
        full = marl_run(backend, steps, seed, out / f"{name}-full", gradients=gradients)
    train_cpu = full["cpu_s"] - fixed["cpu_s"]
    trained = full["env_steps"] - fixed["env_steps"]
    print(f"marl {backend}, {gradients} gradients: fixed cost (imports, building, compiling, "
          f"1 update) {fixed['cpu_s']:.1f} s CPU; whole run {full['cpu_s']:.1f} s CPU, "
          f"{full['wall_s']:.1f} s wall", flush=True)  # fmt: skip
    ret = evaluate_greedy(out / f"{name}-full")
    what = {"batched": "eager torch MPE", "compiled": "MPE step compiled"}[backend]
    rates = (trained / train_cpu, full["env_steps"] / full["cpu_s"])
    return (f"marl IPPO ({what}, {gradients} gradients)", full["env_steps"], full["wall_s"],
            full["cpu_s"], *rates, ret, load.mean)  # fmt: skip


def main() -> None:
    """JaxMARL (fixed cost, then the budget), then marl; print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jaxmarl", type=Path, required=True, help="a clone of JaxMARL")
    parser.add_argument("--steps", type=int, default=2_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("runs/bench_jaxmarl"))
    parser.add_argument("--skip-jaxmarl", action="store_true")
    parser.add_argument("--backends", nargs="+", default=["batched", "compiled"],
                        choices=["batched", "compiled"], help="marl's env backends")  # fmt: skip
    parser.add_argument("--gradients", nargs="+", default=["analytic"],
                        choices=["analytic", "autograd"], help="marl's PPO gradient")  # fmt: skip
    args = parser.parse_args()
    print(speed_probe(), "(start)", flush=True)
    rows = []
    if not args.skip_jaxmarl:
        if not (args.jaxmarl / SCRIPT).is_file():
            raise SystemExit(f"--jaxmarl {args.jaxmarl}: no {SCRIPT} there (a JaxMARL clone?)")
        with LoadMeter() as load:
            fixed = jaxmarl_run(args.jaxmarl, ROLLOUT, args.seed)
            full = jaxmarl_run(args.jaxmarl, args.steps, args.seed)
        train_cpu = full["cpu_s"] - fixed["cpu_s"]
        steps = full["env_steps"] - fixed["env_steps"]
        print(f"JaxMARL: fixed cost (imports, tracing, compile, 1 update) {fixed['cpu_s']:.1f} s "
              f"CPU; jit(train) compile {full['compile_s']:.1f} s wall; whole run "
              f"{full['cpu_s']:.1f} s CPU, {full['wall_s']:.1f} s wall", flush=True)  # fmt: skip
        rows.append(("JaxMARL IPPO (ippo_ff_mpe.py)", full["env_steps"], full["wall_s"],
                     full["cpu_s"], steps / train_cpu, full["env_steps"] / full["cpu_s"],
                     float("nan"), load.mean))  # fmt: skip
    for backend in args.backends:
        for gradients in args.gradients:
            rows.append(marl_row(backend, gradients, args.steps, args.seed, args.out))
    print(speed_probe(), "(end)", flush=True)
    print(f"\nsimple_spread {ENV_KWARGS}, 16 envs x 128 steps, 4 epochs x 4 minibatches, "
          f"64-unit tanh MLPs, seed {args.seed}, one CPU thread each\n")  # fmt: skip
    print(
        "| method | env steps | wall | CPU | env steps / CPU-s (training) "
        "| env steps / CPU-s (all) | greedy per agent | load |"
    )
    print("|---|--:|--:|--:|--:|--:|--:|--:|")
    for name, steps, wall, cpu, rate, rate_all, ret, load_avg in rows:
        print(
            f"| {name} | {steps:,} | {wall:.0f} s | {cpu:.0f} s | {rate:,.0f} | "
            f"{rate_all:,.0f} | {ret:.2f} | {load_avg:.1f} |"
        )


if __name__ == "__main__":
    main()
