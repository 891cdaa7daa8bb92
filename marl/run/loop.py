"""The training loop every learner shares: iterate, log, checkpoint, resume, plot.

`train(...)` is `marl train` from Python. One run lives in one directory:
`config.toml` (what was asked), `metrics.csv` and `tb/` (what happened), `checkpoint.pt`
(written atomically, enough to resume or evaluate), `learning_curve.png`.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from marl.run.algos import learner_module, make_config
from marl.run.checkpoint import atomic_write_bytes, load_checkpoint, save_checkpoint
from marl.run.config import config_to_dict
from marl.run.device import get_device, set_threads
from marl.run.metrics import MetricsLog, plot_learning_curve
from marl.run.progress import TrainProgress
from marl.run.seeding import seed_everything

CHECKPOINT = "checkpoint.pt"


@dataclass
class Run:
    """A finished (or resumed and finished) training run."""

    out_dir: Path
    algo: str
    env_id: str
    config: Any
    learner: Any
    rows: list[dict[str, float]] = field(default_factory=list)

    @property
    def checkpoint(self) -> Path:
        """The run's checkpoint file."""
        return self.out_dir / CHECKPOINT


def _has_field(config: Any, name: str) -> bool:
    return any(f.name == name for f in dataclasses.fields(config))


def _build(algo, env_id, config, seed, device, env_kwargs, steps, threads, ray=None) -> tuple:
    set_threads(threads)
    if _has_field(config, "total_steps"):
        config = dataclasses.replace(config, total_steps=steps)
    seed_everything(seed)
    if ray is not None:  # --backend ray: actors act, this process learns
        from marl.distributed import RayConfig, make_ray_learner

        learner = make_ray_learner(
            algo, env_id, config, seed, get_device(device), env_kwargs, RayConfig(**ray)
        )
        return config, learner
    learner = learner_module(algo).make_learner(
        env_id, config, seed=seed, device=get_device(device), env_kwargs=env_kwargs
    )
    return config, learner


def _ray_options(backend: str, ray: dict[str, Any] | None) -> dict[str, Any] | None:
    """The RayConfig fields of a run on `backend` (None for local), without None values."""
    if backend not in ("local", "ray"):
        raise ValueError(f"backend={backend!r}: expected 'local' or 'ray'")
    if backend == "local":
        return None
    return {k: v for k, v in (ray or {}).items() if v is not None}


def _save(run: Run, learner: Any, spec: dict[str, Any]) -> None:
    save_checkpoint(
        run.out_dir / CHECKPOINT,
        algo=run.algo,
        env_id=run.env_id,
        config=config_to_dict(run.config),
        run=spec,
        learner=learner.state_dict(),
    )


def train(
    algo: str,
    env_id: str,
    *,
    steps: int,
    seed: int = 0,
    out: str | Path | None = None,
    config: dict[str, Any] | None = None,
    env_kwargs: dict[str, Any] | None = None,
    device: str = "auto",
    checkpoint_every: int | None = None,
    threads: int = 1,
    progress: bool = True,
    backend: str = "local",
    ray: dict[str, Any] | None = None,
) -> Run:
    """Train `algo` on `env_id` for `steps` env steps; return the run.

    `threads` is torch's CPU thread count: 1 by default, because the small networks of MARL
    gain nothing from more, and two threads on a busy 2-core machine ran 10x slower.
    `backend="ray"` steps the envs (or plays self-play) in Ray actors; `ray` holds
    `marl.distributed.RayConfig` fields (address, actors, max_lag, ...).
    """
    ray = _ray_options(backend, ray)
    if steps <= 0:
        raise ValueError(f"steps={steps}: expected a positive number of env steps")
    cfg = make_config(algo, config)
    out_dir = Path(out or f"runs/{algo}-{env_id.replace('/', '_')}-s{seed}")
    if (out_dir / CHECKPOINT).exists():
        raise FileExistsError(f"{out_dir} already holds a run; resume it with --resume {out_dir}")
    cfg, learner = _build(algo, env_id, cfg, seed, device, env_kwargs or {}, steps, threads, ray)
    spec = {
        "steps": steps, "seed": seed, "env_kwargs": env_kwargs or {}, "device": device,
        "threads": threads, "checkpoint_every": checkpoint_every or max(steps // 10, 1),
    }  # fmt: skip
    if ray is not None:
        spec["ray"] = ray
    out_dir.mkdir(parents=True, exist_ok=True)
    record = {"algo": algo, "env_id": env_id, **spec, "config": config_to_dict(cfg)}
    atomic_write_bytes(out_dir / "config.toml", tomli_w.dumps(record).encode())
    run = Run(out_dir, algo, env_id, cfg, learner)
    return _loop(run, spec, progress)


def resume(
    out: str | Path, *, progress: bool = True, backend: str | None = None,
    ray: dict[str, Any] | None = None,
) -> Run:  # fmt: skip
    """Continue the run in `out` from its last checkpoint to its planned step count.

    It resumes on the backend it ran on unless `backend` (with `ray` options) says otherwise.
    """
    out_dir = Path(out)
    if not out_dir.is_dir():
        raise FileNotFoundError(f"no run directory at {out_dir}")
    record = load_checkpoint(out_dir / CHECKPOINT)
    algo, env_id, spec = record["algo"], record["env_id"], record["run"]
    cfg = make_config(algo, record["config"])
    if backend is not None:
        options = _ray_options(backend, ray)
        spec = {k: v for k, v in spec.items() if k != "ray"}
        if options is not None:
            spec["ray"] = options
    cfg, learner = _build(algo, env_id, cfg, spec["seed"], spec["device"], spec["env_kwargs"],
                          spec["steps"], spec.get("threads", 1), spec.get("ray"))  # fmt: skip
    learner.load_state_dict(record["learner"])
    run = Run(out_dir, algo, env_id, cfg, learner)
    return _loop(run, spec, progress)


def _loop(run: Run, spec: dict[str, Any], progress: bool) -> Run:
    learner, total = run.learner, spec["steps"]
    metrics = MetricsLog(run.out_dir, resume_at=learner.env_steps)
    next_checkpoint = learner.env_steps + spec["checkpoint_every"]
    with TrainProgress(total, learner.env_steps, f"{run.algo} {run.env_id}", progress) as bar:
        while learner.env_steps < total:
            start = time.perf_counter()
            stats = learner.iterate()
            stats["time/iteration_s"] = time.perf_counter() - start
            metrics.log(learner.env_steps, stats)
            bar.update(learner.env_steps, stats)
            if learner.env_steps >= next_checkpoint or learner.env_steps >= total:
                _save(run, learner, spec)
                next_checkpoint = learner.env_steps + spec["checkpoint_every"]
    metrics.close()
    if "ray" in spec:
        learner.close()  # stop the actors; the learner's own net stays usable
    run.rows = metrics.rows
    plot_learning_curve(run.rows, run.out_dir / "learning_curve.png", f"{run.algo} on {run.env_id}")
    return run
