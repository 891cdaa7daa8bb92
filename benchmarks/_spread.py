"""Shared parts of the simple_spread benchmarks: the protocol, one torch thread, load average.

Protocol (the issue's): `mpe/simple_spread-v3`, N=3, local_ratio 0.5, max_cycles 25, discrete
actions. The budget is counted in env steps (one joint step of all agents in one world). The
return is the mean per-agent undiscounted episode return of the GREEDY policy over 100 fresh
evaluation episodes (eval seed 10000). Throughput is env steps per second of the whole
training run (updates, logging and checkpoints included; evaluation excluded).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before torch is imported anywhere

import dataclasses  # noqa: E402
import json  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import torch  # noqa: E402

ENV_ID = "mpe/simple_spread-v3"
ENV_KWARGS = {"N": 3, "local_ratio": 0.5, "max_cycles": 25, "continuous_actions": False}
EVAL_EPISODES = 100
EVAL_SEED = 10_000

torch.set_num_threads(1)


def cpu_ms(fn: Callable[[], Any], repeats: int) -> float:
    """CPU milliseconds per call of `fn` (after 10 warm-up calls)."""
    for _ in range(10):
        fn()
    start = time.process_time()
    for _ in range(repeats):
        fn()
    return (time.process_time() - start) / repeats * 1e3


def speed_probe() -> str:
    """One line that says how fast this machine runs now, for figures taken at different
    times: the CPU time of a fixed product (1,536 x 64 by 64 x 64, then tanh: arithmetic)
    and of a tiny eager op (an add of 48 floats: dispatch), one thread, best of 5 rounds.
    The host of this project's VM changed both by up to 1.6x within an afternoon at a load
    average of about 1, which the load average does not show."""
    generator = torch.Generator().manual_seed(0)
    a, w = (torch.randn(n, 64, generator=generator) for n in (1536, 64))
    x = torch.randn(48, generator=generator)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # whatever the benchmark set meanwhile
    try:
        product = min(cpu_ms(lambda: torch.tanh(a @ w), 200) for _ in range(5))
        tiny = min(cpu_ms(lambda: x + x, 2000) for _ in range(5))
    finally:
        torch.set_num_threads(threads)
    return (f"speed probe (1 thread): matmul+tanh {1e3 * product:.0f} us, tiny op "
            f"{1e3 * tiny:.2f} us; {host()}")  # fmt: skip


def host() -> str:
    """The CPU (model name, family and model from /proc/cpuinfo, torch's vector ISA) and the
    PPO family's tanh form on it: this project's VM has run on Intel and on AMD hosts, whose
    figures differ (docs/speed.md)."""
    from marl.learners.ppo import activation

    fields = activation.cpu_fields()
    cpu = fields.get("model name", "unknown CPU")
    if "cpu family" in fields:
        cpu += f" (family {fields['cpu family']} model {fields.get('model', '?')})"
    form = "sigmoid form" if activation.BY_SIGMOID else "torch's"
    return f"{cpu}, {torch.backends.cpu.get_cpu_capability()}, tanh {form}"


class LoadMeter:
    """Samples the 1-minute load average every few seconds while a block runs."""

    def __init__(self, every_s: float = 5.0) -> None:
        self.every_s = every_s
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while True:
            self.samples.append(os.getloadavg()[0])
            if self._stop.wait(self.every_s):
                return

    def __enter__(self) -> LoadMeter:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def mean(self) -> float:
        """Mean of the sampled 1-minute load averages."""
        return sum(self.samples) / max(len(self.samples), 1)


@dataclass
class Result:
    """One training run: greedy return, time, throughput and the machine's load meanwhile."""

    method: str
    steps: int
    seed: int
    ret: float
    seconds: float
    load: float
    cpu_s: float = float("nan")
    """CPU time of the training process (one torch thread), beside wall time and load."""

    @property
    def steps_per_s(self) -> float:
        """Env steps per second of training."""
        return self.steps / self.seconds

    def describe(self) -> str:
        """One line: method, seed, return, time, throughput, load."""
        return (f"{self.method} seed {self.seed}: return {self.ret:.2f}, {self.steps:,} env "
                f"steps in {self.seconds:.0f} s wall, {self.cpu_s:.0f} s CPU (1 thread), "
                f"{self.steps_per_s:,.0f} env-steps/s, load avg {self.load:.1f}")  # fmt: skip


def save_result(result: Result, path: Path) -> None:
    """Write one run's result as JSON (so runs made one at a time can be tabled together)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dataclasses.asdict(result)))


def load_result(path: Path) -> Result:
    """Read a result written by `save_result`."""
    return Result(**json.loads(path.read_text()))


def cached_result(path: Path, table_only: bool, run: Callable[[], Result]) -> Result | None:
    """The result saved at `path`; else `run()` it, save it and print it (None if table_only)."""
    if not path.is_file():
        if table_only:
            return None
        result = run()
        save_result(result, path)
        print(result.describe(), flush=True)
    return load_result(path)


def evaluate_greedy(run_dir: Path) -> float:
    """Greedy per-agent return over the protocol's episodes, always on mpe2 (sync) envs.

    Every method meets the same 100 episodes, whatever backend it trained on.
    """
    from marl.run.evaluate import load_policy

    return greedy_return(load_policy(run_dir)[0])


def greedy_return(policy: Any) -> float:
    """The protocol's greedy per-agent return of any `policy.act(obs, mask, greedy)` (a marl
    policy, or another library's wrapped): 100 episodes on 16 mpe2 envs seeded EVAL_SEED."""
    from marl.envs import make_vec
    from marl.run.evaluate import run_episodes

    vec = make_vec(ENV_ID, 16, **ENV_KWARGS)
    returns = run_episodes(policy, vec, EVAL_EPISODES, greedy=True, seed=EVAL_SEED)
    vec.close()
    return float(returns.mean())


def train_marl(
    algo: str,
    steps: int,
    seed: int,
    out: Path,
    config: dict[str, Any],
    method: str = "",
) -> Result:
    """Train `algo` with marl's loop on the protocol, then evaluate it greedily."""
    from marl.run.loop import RunSpec, train

    run_dir = out / f"{method or algo}-{steps}-s{seed}"
    with LoadMeter() as load:
        start, cpu = time.perf_counter(), time.process_time()
        spec = RunSpec(algo, ENV_ID, steps=steps, seed=seed, env_kwargs=ENV_KWARGS,
                       device="cpu", threads=1)  # fmt: skip
        run = train(spec, config, out=run_dir, progress=False)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    ret = evaluate_greedy(run_dir)
    return Result(method or algo, run.learner.env_steps, seed, ret, seconds, load.mean, cpu)


def run_file(path: Path, algos: tuple[str, ...]) -> dict[str, Any]:
    """The `[config]` table of a run file (envs/*.toml), checked against the protocol.

    The file must be for one of `algos` and for the protocol's env and env kwargs.
    """
    from marl.core.config import load_toml

    record = load_toml(path)
    if record.get("algo") not in algos:
        raise ValueError(f"{path} is for algo {record.get('algo')!r}; expected one of {algos}")
    if record.get("env") != ENV_ID or record.get("env_kwargs") != ENV_KWARGS:
        raise ValueError(f"{path} is not for {ENV_ID} {ENV_KWARGS}; the benchmark needs that env")
    return dict(record.get("config", {}))


def seeds_table(groups: dict[str, list[Result]], label: str = "method") -> str:
    """A markdown table: one row per saved run, and a mean (sd) row per group of seeds."""
    import statistics

    lines = [f"| {label} | seed | greedy return | wall | CPU | env-steps/s | load avg |",
             "|---|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for name, results in groups.items():
        for r in results:
            lines.append(f"| {name} | {r.seed} | {r.ret:.2f} | {r.seconds:.0f} s | "
                         f"{r.cpu_s:.0f} s | {r.steps_per_s:,.0f} | {r.load:.1f} |")  # fmt: skip
        if len(results) > 1:
            rets = [r.ret for r in results]
            lines.append(f"| {name} | mean of {len(rets)} | {statistics.mean(rets):.2f} "
                         f"(sd {statistics.stdev(rets):.2f}) | | | | |")  # fmt: skip
    return "\n".join(lines)
