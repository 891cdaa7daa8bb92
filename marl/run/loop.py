"""The training loop every learner shares: iterate, log, checkpoint, resume, plot.

`train(...)` is `marl train` from Python. One run lives in one directory:
`config.toml` (what was asked), `metrics.csv` and `tb/` (what happened), `checkpoint.pt`
(written atomically, enough to resume or evaluate), `learning_curve.png`. The run is
assembled here (learner, workers, backend), then driven by the same loop on every backend.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import tomli_w
import tomllib
import torch

from marl.algorithms import (
    EVALUATIONS,
    evaluation_module,
    local_trainer,
    make_config,
    threaded_trainer,
)
from marl.core.checkpoint import (
    atomic_write_bytes,
    load_checkpoint,
    load_state,
    remove_stale_temporaries,
    save_checkpoint,
)
from marl.core.config import ConfigError, check_fields, config_to_dict
from marl.core.device import get_device, set_threads
from marl.core.dirlock import hold_dir
from marl.core.seeding import EVAL, child_seed
from marl.core.trainer import Driven
from marl.envs.vector import resolve_backend, vec_spec
from marl.run.metrics import MetricsLog, plot_learning_curve
from marl.run.progress import TrainProgress
from marl.run.seed_procs import SeedProcesses, auto_procs
from marl.run.seed_runs import batched, block_trainer, check_seedable

CHECKPOINT = "checkpoint.pt"
RUN_FILES = ("config.toml", "metrics.csv", "tb", CHECKPOINT, "learning_curve.png")
"""What a run directory holds (all written by this module)."""


@dataclass(frozen=True)
class RunSpec:
    """What a run is: algorithm, env, budget and where it runs (the learner's settings apart)."""

    algo: str
    """Algorithm name (`marl train ALGO`)."""
    env_id: str
    """Env id."""
    steps: int
    """Env-step budget."""
    seed: int = 0
    """The run's one seed: every random stream of the run is derived from it."""
    seeds: int = 1
    """K > 1: K independent runs, seeded seed, seed+1, ..., seed+K-1, in `procs`
    processes: PPO, IPPO and MAPPO as one batched computation a process
    (`marl.algorithms.SEEDED`), the other algorithms as runs side by side, each the run its
    seed trains alone (`marl.run.seed_runs`); `steps` is each run's budget."""
    procs: int = 0
    """With `seeds` K > 1: processes the K seeds split over (each a block of seeds trained
    as one computation, `threads` torch threads each; the runs are the same whatever the
    split into blocks of two or more); 0: one per `threads` cores this process may use,
    at most one a seed (PPO, IPPO, MAPPO: two seeds or more a process)."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """Kwargs of the env."""
    device: str = "auto"
    """auto | cpu | cuda: where the learner's networks live."""
    threads: int = 1
    """Torch CPU threads of this process."""
    checkpoint_every: int = 0
    """Env steps between checkpoints (0: a tenth of `steps`)."""
    checkpoint_minutes: float = 10.0
    """Wall-clock minutes after which a checkpoint is written even if `checkpoint_every`
    env steps have not passed (a huge `steps` would otherwise never checkpoint). A
    checkpoint starts fresh episodes (so a resumed run repeats the uninterrupted one), so
    where a time-triggered one falls depends on the machine's speed: a run that must
    repeat to the bit on other machines sets this above its length (e.g. 1e9)."""
    eval_every: int = 0
    """Iterations between games against the algorithm's fixed baseline, logged as `eval/*`
    (alphazero: pyspiel.MCTSBot); 0: never."""
    backend: Literal["local", "threads", "ray"] = "local"
    """local: workers in this process; threads: `workers` worker threads in this process
    (asynchronous actors with no Ray); ray: workers as Ray actors."""
    workers: int = 2
    """threads: how many worker threads act (the learner's envs split among them)."""
    ray: dict[str, Any] = field(default_factory=dict)
    """`marl.distributed.RayConfig` fields (with backend ray)."""

    def validate(self) -> None:
        """Raise ConfigError naming the first value out of range."""
        checks = [
            ("steps", self.steps > 0, "a positive number of env steps"),
            ("seed", self.seed >= 0, "a seed >= 0"),
            ("seeds", self.seeds >= 1, ">= 1 (how many seeds train together)"),
            ("procs", 0 <= self.procs <= self.seeds, f"0 (auto) to seeds={self.seeds}"),
            ("threads", self.threads >= 1, ">= 1"),
            ("checkpoint_every", self.checkpoint_every >= 0, ">= 0"),
            ("checkpoint_minutes", self.checkpoint_minutes > 0, "> 0"),
            ("eval_every", self.eval_every >= 0, ">= 0"),
            ("backend", self.backend in ("local", "threads", "ray"), "local, threads or ray"),
            ("workers", self.workers >= 1, ">= 1"),
        ]
        check_fields(self, checks)
        if self.ray and self.backend != "ray":
            raise ConfigError(f"ray options {sorted(self.ray)} only apply with backend='ray'")
        check_seedable(self.algo, self.seeds)
        if self.seeds > 1 and self.backend != "local":
            raise ConfigError(
                f"seeds={self.seeds} trains its runs in processes of this machine "
                f"(procs): use backend='local', not {self.backend!r}"
            )

    @property
    def run_seeds(self) -> list[int]:
        """The seed of each run: `seed` alone, or `seed, ..., seed + seeds - 1`."""
        return list(range(self.seed, self.seed + self.seeds))

    @property
    def checkpoint_interval(self) -> int:
        """Env steps between checkpoints."""
        return self.checkpoint_every or max(self.steps // 10, 1)


@dataclass
class Run:
    """A finished (or resumed and finished) training run."""

    out_dir: Path
    spec: RunSpec
    config: Any
    trainer: Driven
    rows: list[dict[str, float]] = field(default_factory=list)

    @property
    def checkpoint(self) -> Path:
        """The run's checkpoint file."""
        return self.out_dir / CHECKPOINT

    @property
    def learner(self) -> Any:
        """The trained learner."""
        return self.trainer.learner


def env_backend(spec: RunSpec, config: Any, say: bool) -> Any:
    """The config with its vector-env `backend` resolved (auto -> batched or sync), so the
    run's config.toml records what ran; `say` prints which backend steps the envs and why."""
    if not any(f.name == "backend" for f in dataclasses.fields(config)):
        return config
    backend, why = resolve_backend(spec.env_id, config.backend, spec.env_kwargs)
    if say:
        print(f"env backend: {why}", flush=True)
    return dataclasses.replace(config, backend=backend)


def assemble(spec: RunSpec, config: Any) -> tuple[Any, Driven]:
    """The learner for `spec` with its workers on the spec's backend (the one place that
    chooses local or Ray); returns the config as run (with its step budget) and the trainer."""
    set_threads(spec.threads)
    if any(f.name == "total_steps" for f in dataclasses.fields(config)):
        config = dataclasses.replace(config, total_steps=spec.steps)
    env = vec_spec(spec.env_id, backend=getattr(config, "backend", "auto"), **spec.env_kwargs)
    device = get_device(spec.device)
    if spec.seeds > 1:
        procs = seed_procs(spec, device, batched(spec.algo, config))
        if procs > 1:
            trainer = SeedProcesses(spec.algo, env, config, spec.run_seeds, procs, spec.threads)
            return config, trainer
        return config, block_trainer(spec.algo, env, config, spec.run_seeds, device)
    if spec.backend == "ray":
        from marl.distributed import RayConfig, ray_trainer

        return config, ray_trainer(spec.algo, env, config, spec.seed, device, RayConfig(**spec.ray))
    if spec.backend == "threads":
        return config, threaded_trainer(spec.algo, env, config, spec.seed, device, spec.workers)
    return config, local_trainer(spec.algo, env, config, spec.seed, device)


def seed_procs(spec: RunSpec, device: torch.device, is_batched: bool) -> int:
    """How many processes `spec`'s seeds train in (`procs`, 0: as many as the cores allow;
    one off the CPU, where the K seeds are one larger kernel)."""
    if device.type != "cpu":
        if spec.procs > 1:
            raise ConfigError(
                f"procs={spec.procs} splits seeds over CPU processes; on {device} the "
                f"{spec.seeds} seeds train in one (procs=1)"
            )
        return 1
    if spec.procs and is_batched and spec.procs > spec.seeds // 2:
        raise ConfigError(
            f"procs={spec.procs} puts a seed of {spec.algo} alone in a process; at most "
            f"{max(1, spec.seeds // 2)} for {spec.seeds} seeds (two or more a process, so the "
            "runs are the same to the bit whatever the split)"
        )
    if spec.procs:
        return spec.procs
    return auto_procs(spec.seeds, spec.threads, is_batched)


def default_out(spec: RunSpec) -> Path:
    """The run directory when none is given: runs/ALGO-ENV-sSEED (-sFIRST-LAST with seeds)."""
    seeds = f"s{spec.seed}" + (f"-{spec.seed + spec.seeds - 1}" if spec.seeds > 1 else "")
    return Path(f"runs/{spec.algo}-{spec.env_id.replace('/', '_')}-{seeds}")


def train(spec: RunSpec, config: dict[str, Any] | None = None, *, out: str | Path | None = None,
          progress: bool = True, force: bool = False) -> Run:  # fmt: skip
    """Train `spec.algo` on `spec.env_id` for `spec.steps` env steps; return the run.

    `out` must be new, empty, or a run of this loop with no checkpoint yet; `force` writes
    into any folder (replacing the run files there, nothing else).
    """
    spec.validate()
    cfg = make_config(spec.algo, config)
    baseline_evaluation(spec)  # refuses eval_every for an algorithm without a baseline
    out_dir = Path(out) if out is not None else default_out(spec)
    make_out_dir(out_dir)
    with hold_dir(out_dir):
        check_out_dir(out_dir, force)
        if force:  # an earlier run's checkpoint must not be resumed as this one's
            remove_run_files(out_dir)
        cfg, trainer = assemble(spec, env_backend(spec, cfg, progress))
        if progress and isinstance(trainer, SeedProcesses):
            print(trainer.describe(), flush=True)
        record = {**_spec_record(spec), "config": config_to_dict(cfg)}
        atomic_write_bytes(out_dir / "config.toml", tomli_w.dumps(record).encode())
        return _loop(Run(out_dir, spec, cfg, trainer), progress)


def make_out_dir(out_dir: Path) -> None:
    """Make the run directory if it is new (before `hold_dir` can lock it)."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise unwritable(out_dir, err) from None


def check_out_dir(out_dir: Path, force: bool = False) -> None:
    """Refuse a run directory that holds a run to resume, or anything but run files, or
    cannot be written; clear killed writes' temporaries (the caller holds it: `hold_dir`)."""
    if (out_dir / CHECKPOINT).exists() and not force:
        raise FileExistsError(
            f"{out_dir} already holds a run; resume it with --resume {out_dir} "
            "(or --force to start again there)"
        )
    if not force and not _is_run_dir(out_dir):
        found = ", ".join(sorted(p.name for p in out_dir.iterdir())[:5])
        raise FileExistsError(
            f"--out {out_dir} is a folder that is not a marl run (it holds {found}); "
            "choose a new folder, or pass --force to write the run's files into it"
        )
    try:
        probe = out_dir / f".{CHECKPOINT}.write-test.tmp"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise unwritable(out_dir, err) from None
    for name in RUN_FILES:
        remove_stale_temporaries(out_dir / name)


def remove_run_files(out_dir: Path) -> None:
    """Delete the files an earlier run wrote in `out_dir` (`--force`), nothing else."""
    for name in RUN_FILES:
        path = out_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


class RunDirError(ValueError):
    """A run directory that cannot be written."""


def unwritable(out_dir: Path, err: OSError) -> RunDirError:
    """The error for a run directory that `err` says cannot be made or written."""
    return RunDirError(f"--out {out_dir}: cannot write there: {err.strerror or err}")


def _is_run_dir(out_dir: Path) -> bool:
    """Empty, or only the files this loop writes, with its config.toml among them."""
    names = {p.name for p in out_dir.iterdir() if not p.name.endswith(".tmp")}
    if not names:
        return True
    if not names <= set(RUN_FILES) or "config.toml" not in names:
        return False
    try:
        return "algo" in tomllib.loads((out_dir / "config.toml").read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return False


def resume(out: str | Path, *, progress: bool = True,
           changes: dict[str, Any] | None = None) -> Run:  # fmt: skip
    """Continue the run in `out` from its last checkpoint to its planned step count.

    `changes` replaces RunSpec fields that say where and how long it runs, not what it is:
    `steps` (more than the run has done: extends it), `device`, `threads`, `procs`,
    `backend`, `ray`, `workers`.
    """
    out_dir = Path(out)
    if not out_dir.is_dir():
        raise FileNotFoundError(f"no run directory at {out_dir}")
    with hold_dir(out_dir):
        return _resume(out_dir, progress, changes or {})


def _resume(out_dir: Path, progress: bool, changes: dict[str, Any]) -> Run:
    path = out_dir / CHECKPOINT
    for name in RUN_FILES:
        remove_stale_temporaries(out_dir / name)
    record = load_checkpoint(path, needs=("run", "learner", "progress"))
    spec = _resumed_spec(record, changes)
    config = env_backend(spec, make_config(spec.algo, record["config"]), say=False)
    cfg, trainer = assemble(spec, config)
    built_for = f"{spec.algo} on {spec.env_id} {spec.env_kwargs or '(default kwargs)'}"
    state = {"learner": record["learner"], **record["progress"]}
    try:
        load_state(trainer.load_state_dict, state, path, built_for)
    except BaseException:
        trainer.close()  # its workers or seed processes too
        raise
    run = Run(out_dir, spec, cfg, trainer)
    if "steps" in changes and spec.steps <= trainer.env_steps:
        trainer.close()
        raise ConfigError(
            f"--steps {spec.steps}: the run in {out_dir} has already done "
            f"{trainer.env_steps:,} env steps; give more to extend it"
        )
    if changes:  # config.toml says how the run goes on (budget, device, threads, backend)
        config_record = {**_spec_record(spec), "config": config_to_dict(cfg)}
        atomic_write_bytes(out_dir / "config.toml", tomli_w.dumps(config_record).encode())
    if "steps" in changes:
        _save(run)  # the new budget survives a kill from here on
    return _loop(run, progress)


def _resumed_spec(record: dict[str, Any], changes: dict[str, Any]) -> RunSpec:
    """The spec the checkpoint was written with, with `changes` (where and how long) made."""
    allowed = ("steps", "device", "threads", "procs", "backend", "ray", "workers")
    if set(changes) - set(allowed):
        raise ConfigError(f"a resumed run can change only {', '.join(allowed)}: {sorted(changes)}")
    try:
        spec = RunSpec(algo=record["algo"], env_id=record["env_id"], **record["run"])
    except TypeError as err:
        raise ConfigError(f"the checkpoint's run settings are not a RunSpec: {err}") from None
    if "backend" in changes:
        changes = {"ray": {}, **changes}
    spec = dataclasses.replace(spec, **changes)
    spec.validate()
    return spec


def _spec_record(spec: RunSpec) -> dict[str, Any]:
    """The spec as config.toml records it (no empty tables, no `seeds`/`procs` for one seed)."""
    record = dataclasses.asdict(spec)
    return {
        k: v
        for k, v in record.items()
        if (v != {} or k == "env_kwargs") and not (k in ("seeds", "procs") and spec.seeds == 1)
    }


def _save(run: Run) -> None:
    state = run.trainer.state_dict()
    run_fields = {
        k: v for k, v in dataclasses.asdict(run.spec).items() if k not in ("algo", "env_id")
    }
    save_checkpoint(
        run.checkpoint, algo=run.spec.algo, env_id=run.spec.env_id,
        config=config_to_dict(run.config), run=run_fields, learner=state["learner"],
        progress={k: v for k, v in state.items() if k != "learner"},  # iteration, counters
    )  # fmt: skip


def baseline_evaluation(spec: RunSpec) -> Callable[[Any, int], dict[str, float]] | None:
    """`score(learner, seed) -> eval/* stats` of the algorithm's fixed baseline, if asked for."""
    if not spec.eval_every:
        return None
    module = evaluation_module(spec.algo)
    score = getattr(module, "score_learner", None)
    if score is None:
        raise ConfigError(
            f"eval_every={spec.eval_every}: {spec.algo} has no fixed baseline to play "
            f"(algorithms with one: {', '.join(EVALUATIONS)})"
        )
    return score


class CheckpointClock:
    """When the next checkpoint is due: every `checkpoint_interval` env steps, or sooner
    once `checkpoint_minutes` have passed since the last one."""

    def __init__(self, spec: RunSpec, env_steps: int) -> None:
        self.every, self.seconds = spec.checkpoint_interval, spec.checkpoint_minutes * 60
        self.saved(env_steps)

    def saved(self, env_steps: int) -> None:
        """A checkpoint was written at `env_steps`."""
        self.next_steps, self.last_time = env_steps + self.every, time.monotonic()

    def due(self, env_steps: int) -> bool:
        """Whether to write a checkpoint now."""
        return env_steps >= self.next_steps or time.monotonic() - self.last_time >= self.seconds


def _loop(run: Run, progress: bool) -> Run:
    trainer, total = run.trainer, run.spec.steps
    metrics = MetricsLog(run.out_dir, resume_at=trainer.env_steps)
    clock = CheckpointClock(run.spec, trainer.env_steps)
    score, every = baseline_evaluation(run.spec), run.spec.eval_every
    title = f"{run.spec.algo} {run.spec.env_id}"
    try:
        with TrainProgress(total, trainer.env_steps, title, progress) as bar:
            while trainer.env_steps < total:
                start = time.perf_counter()
                stats = trainer.iterate()
                stats["time/iteration_s"] = time.perf_counter() - start
                if score is not None and trainer.iteration % every == 0:
                    stats |= score(run.learner, child_seed(run.spec.seed, EVAL, trainer.iteration))
                metrics.log(trainer.env_steps, stats)
                bar.update(trainer.env_steps, stats)
                if clock.due(trainer.env_steps) or trainer.env_steps >= total:
                    _save(run)
                    clock.saved(trainer.env_steps)
    finally:  # also after Ctrl-C: the curve of what was done
        metrics.close()
        trainer.close()
        run.rows = metrics.rows
        if run.rows:
            plot_learning_curve(
                run.rows, run.out_dir / "learning_curve.png", title.replace(" ", " on ")
            )
    return run
