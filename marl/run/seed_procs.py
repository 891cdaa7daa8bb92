"""`--seeds K` over P processes: the K seeds split into P blocks, each block a `--seeds`
trainer (`seed_runs.block_trainer`: batched for PPO/IPPO/MAPPO, runs side by side for the
others) in a process of its own, driven together as one trainer.

One process of K stacked seeds does its update arithmetic on one core; P processes put
P cores on it. A seed's run is the same bit for bit whichever block of two or more seeds it
is in (MKL's batched `gemm` computes each seed's product alone; tested), so the split
`auto_procs` chooses does not change a run; a block of one seed runs through the plain
`gemm` and differs in float32 rounding (2e-8 in the weights after 3 iterations). The
checkpoint is the one-process run's (each seed's state, in seed order) and resumes with
any number of processes. Seeds run side by side (the other algorithms) are each their
single run, whatever the split.

Children are spawned (not forked: torch's thread pools do not survive a fork), so a script
that trains with `procs > 1` needs the usual `if __name__ == "__main__":` guard. They ignore
Ctrl-C: the parent stops them when its loop ends.
"""

from __future__ import annotations

import contextlib
import functools
import io
import multiprocessing
import os
import signal
import sys
import traceback
from collections import defaultdict
from multiprocessing.connection import Connection
from typing import Any, NoReturn

import numpy as np
import torch

from marl.core.children import stop_children
from marl.core.config import ConfigError
from marl.core.device import set_threads
from marl.core.learner import across_seeds, check_seeds
from marl.envs.registry import import_user_modules, user_modules
from marl.run.seed_runs import block_trainer, same_env_steps, seeds_view


def usable_cores() -> int:
    """How many cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def auto_procs(seeds: int, threads: int, batched: bool) -> int:
    """Processes for `seeds` seeds at `threads` torch threads each: one per `threads`
    cores, at most one per seed; for `batched` seeds (feedforward PPO, IPPO, MAPPO) each
    with at least two seeds (a block of one seed takes MKL's plain `gemm`, not its batched
    one, and so differs from the one-process run in float32 rounding)."""
    most = seeds // 2 if batched else seeds
    return max(1, min(most, usable_cores() // threads))


def seed_blocks(seeds: list[int], procs: int) -> list[list[int]]:
    """`seeds` in `procs` consecutive blocks whose sizes differ by at most one."""
    return [list(map(int, b)) for b in np.array_split(np.asarray(seeds), procs)]


class SeedProcessError(ChildProcessError):
    """A seed process crashed or died; the message names its seeds and what went wrong.
    (A user error in a process, e.g. a bad setting, is raised as a `ConfigError`.)"""


class SeedProcessDied(SeedProcessError):
    """A seed process ended without answering (`who` it was, its `exitcode`)."""

    def __init__(self, message: str, who: str = "", exitcode: int | None = None) -> None:
        super().__init__(message)
        self.who, self.exitcode = who, exitcode


class SeedProcesses:
    """K seeds' runs in P processes (blocks of `seed_blocks`), driven as one `Trainer`.

    `learner` is a `--seeds K` learner in this process, built when first asked for, that
    holds the runs' state as the processes have it (fetched when they stop, for
    `Run.learner` after a run): no copy of the runs' state (replay buffers included) is kept
    here while they train.
    """

    def __init__(self, algo: str, spec: Any, config: Any, seeds: list[int], procs: int,
                 threads: int = 1) -> None:  # fmt: skip
        self.blocks, self.threads = seed_blocks(seeds, procs), threads
        self._make_view = functools.partial(seeds_view, algo, spec, config, seeds)
        self._view: Any = None
        self._final: dict[str, Any] | None = None  # the learners' state as the processes ended
        self._in_step = True  # a call is under way or was cut short: replies may be pending
        self.iteration, self._env_steps = 0, 0
        self._conns: list[Connection] = []
        self._procs: list[Any] = []
        try:
            self._start(algo, spec, config, threads)
            self._call("ready")
        except SeedProcessDied as err:
            self.close()
            raise SeedProcessDied(
                f"{err.who} died before it was ready (exit code {err.exitcode}; its error is "
                "above): a script that trains with procs > 1 needs its code under `if "
                "__name__ == '__main__':` (the processes are spawned and import it), or procs=1"
            ) from None
        except BaseException:
            self.close()
            raise

    def _start(self, algo: str, spec: Any, config: Any, threads: int) -> None:
        """Spawn one process a block (not daemonic: a block's env may start processes)."""
        ctx = multiprocessing.get_context("spawn")
        modules = user_modules()
        for block in self.blocks:
            parent, child = ctx.Pipe()
            args = (child, algo, spec, config, block, threads, modules)
            name = f"marl-seeds-{block[0]}-{block[-1]}"
            proc = ctx.Process(target=_serve_then_exit, args=args, name=name)
            try:
                proc.start()
            finally:
                child.close()
            self._conns.append(parent)
            self._procs.append(proc)

    def describe(self) -> str:
        """Which process trains which seeds (one line)."""
        blocks = ", ".join(f"{b[0]}-{b[-1]}" if len(b) > 1 else str(b[0]) for b in self.blocks)
        return (f"seeds: {len(self.blocks)} processes (seeds {blocks}), "
                f"{self.threads} torch thread{'s' * (self.threads > 1)} each")  # fmt: skip

    @property
    def env_steps(self) -> int:
        """Env steps each seed has learned from."""
        return self._env_steps

    @property
    def learner(self) -> Any:
        """A `--seeds K` learner holding the runs' state now (or as the processes ended)."""
        if self._procs:
            self._final = self._learners("learner_state")
        if self._final is not None:
            self._view = self._view or self._make_view()
            self._view.load_state_dict(self._final)
            self._final = None
        if self._view is None:
            raise SeedProcessError("the seed processes ended without handing back their runs")
        return self._view

    def iterate(self) -> dict[str, float]:
        """One iteration of every block; each seed's stats under `seed{k}/` (k: its place
        among all K seeds) and each stat's mean across the K seeds under its own name."""
        replies = self._call("iterate")
        self._env_steps = same_env_steps([s for _, s in replies], "the seed processes")
        self.iteration += 1
        return merge_stats([stats for stats, _ in replies], [len(b) for b in self.blocks])

    def state_dict(self) -> dict[str, Any]:
        """The one-process `--seeds K` trainer's state (every block starts fresh episodes
        next, as a one-process trainer does after `state_dict()`)."""
        parts = self._call("state_dict")
        learner = merge_learners([p["learner"] for p in parts])
        return {"learner": learner, "iteration": parts[0]["iteration"]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore `state_dict()` (also a one-process `--seeds K` trainer's)."""
        check_seeds(state["learner"], [s for b in self.blocks for s in b])
        runs, start, parts = state["learner"]["runs"], 0, []
        for block in self.blocks:
            learner = {**state["learner"], "seeds": block, "runs": runs[start : start + len(block)]}
            parts.append({**state, "learner": learner})
            start += len(block)
        self._call("load_state_dict", parts)
        self.iteration, self._env_steps = (
            int(state["iteration"]),
            int(state["learner"]["env_steps"]),
        )

    def policy(self) -> Any:
        """The first seed's current policy."""
        return self.learner.policy()

    def close(self) -> None:
        """Keep the runs' state (unless a call was cut short), then stop the processes (one
        that does not stop within 30 s is terminated)."""
        if self._procs and not self._in_step:
            with contextlib.suppress(SeedProcessError, ConfigError):
                self._final = self._learners("learner_state")
        stop_children(self._conns, self._procs, timeout=30, drain=True)
        self._conns, self._procs = [], []
        if self._view is not None:
            self._view.close()

    def _learners(self, command: str) -> dict[str, Any]:
        """Every block's learner state (`command`'s reply), merged in seed order."""
        return merge_learners(self._call(command))

    def _call(self, command: str, args: list[Any] | None = None) -> list[Any]:
        """Send `command` (block i's argument `args[i]`) to every process; their replies."""
        self._in_step = True
        for i, conn in enumerate(self._conns):
            try:
                conn.send((command, None if args is None else _pack(args[i])))
            except (OSError, ValueError):  # its end of the pipe is gone: it died
                self._died(i)
        replies = [self._reply(i) for i in range(len(self._conns))]
        self._in_step = False
        return replies

    def _reply(self, i: int) -> Any:
        try:
            status, payload = self._conns[i].recv()
        except (EOFError, OSError):
            self._died(i)
        if status == "user error":
            raise ConfigError(f"seeds {self.blocks[i]}: {payload}")
        if status == "error":
            raise SeedProcessError(f"seeds {self.blocks[i]}: {payload}")
        return _unpack(payload)

    def _died(self, i: int) -> NoReturn:
        proc = self._procs[i]
        proc.join(timeout=5)
        who = f"the process of seeds {self.blocks[i]}"
        raise SeedProcessDied(
            f"{who} died (exit code {proc.exitcode}); resume the run from its last "
            "checkpoint with --resume",
            who,
            proc.exitcode,
        ) from None


def merge_stats(parts: list[dict[str, float]], sizes: list[int]) -> dict[str, float]:
    """Blocks' `--seeds` stats as one K-seed run's: block i's `seed{j}/x` becomes
    `seed{offset+j}/x`, per-seed stats are averaged over all K seeds, the rest (`lr`, times)
    over the blocks."""
    per_seed: list[dict[str, float]] = []
    shared: dict[str, list[float]] = defaultdict(list)
    for part, size in zip(parts, sizes):
        seeds: list[dict[str, float]] = [{} for _ in range(size)]
        for key, value in part.items():
            head, _, rest = key.partition("/")
            if head.startswith("seed") and head[4:].isdigit() and rest:
                seeds[int(head[4:])][rest] = value
            else:
                shared[key].append(value)
        per_seed += seeds
    return {key: float(np.mean(values)) for key, values in shared.items()} | across_seeds(per_seed)


def merge_learners(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Blocks' `--seeds` learner states as one: seeds and runs concatenated in order."""
    return {**parts[0], "seeds": [s for p in parts for s in p["seeds"]],
            "runs": [r for p in parts for r in p["runs"]]}  # fmt: skip


def _pack(value: Any) -> bytes:
    """Tensors cross the pipe as `torch.save` bytes (not shared-memory handles)."""
    buffer = io.BytesIO()
    torch.save(value, buffer)
    return buffer.getvalue()


def _unpack(data: bytes) -> Any:
    return torch.load(io.BytesIO(data), weights_only=True)


def _serve_then_exit(*args: Any) -> None:
    """`_serve`; after a clean "close" (the block's trainer, its envs and the pipe closed),
    end the process without the interpreter's teardown, which took about a second with
    torch loaded and which the parent waited for at the end of every run. Its output is
    flushed first; exit handlers (`atexit`, a user module's included) do not run then. After
    an error or a lost parent the process ends the usual way."""
    if not _serve(*args):
        return
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            with contextlib.suppress(Exception):
                stream.flush()
    os._exit(0)


def _serve(conn: Connection, algo: str, spec: Any, config: Any, seeds: list[int],
           threads: int, modules: list[str]) -> bool:  # fmt: skip
    """A seed process: import the user's env modules, build the block's trainer, then
    answer commands until "close". Whether it ended on "close" (else on an error, reported
    down the pipe, or on the parent's end)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    trainer = None
    try:
        set_threads(threads)
        import_user_modules(modules)
        trainer = block_trainer(algo, spec, config, seeds)
        commands = {
            "ready": lambda: None,
            "iterate": lambda: (trainer.iterate(), trainer.env_steps),
            "state_dict": trainer.state_dict,
            "learner_state": trainer.learner.state_dict,
            "load_state_dict": lambda state: trainer.load_state_dict(_unpack(state)),
        }
        while True:
            command, arg = conn.recv()
            if command == "close":
                return True
            result = commands[command](*([] if arg is None else [arg]))
            conn.send(("ok", _pack(result)))
    except EOFError:  # the parent is gone
        return False
    except ValueError as err:  # a user error (ConfigError and friends): one line
        with contextlib.suppress(OSError):
            conn.send(("user error", str(err.args[0]) if err.args else type(err).__name__))
    except Exception as err:
        with contextlib.suppress(OSError):
            conn.send(("error", f"{type(err).__name__}: {err}\n{traceback.format_exc()}"))
    finally:
        if trainer is not None:
            trainer.close()
        conn.close()
    return False
