"""The training loop every learner shares: iterate, log, checkpoint, resume, plot.

`train(...)` is `marl train` from Python. One run lives in one directory:
`config.toml` (what was asked), `metrics.csv` and `tb/` (what happened), `checkpoint.pt`
(written atomically, enough to resume or evaluate), `learning_curve.png`. The run is
assembled here (learner, workers, backend), then driven by the same loop on every backend.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import tomli_w

from marl.algorithms import local_trainer, make_config
from marl.core.checkpoint import atomic_write_bytes, load_checkpoint, save_checkpoint
from marl.core.config import ConfigError, check_fields, config_to_dict
from marl.core.device import get_device, set_threads
from marl.core.trainer import Trainer
from marl.envs.vector import vec_spec
from marl.run.metrics import MetricsLog, plot_learning_curve
from marl.run.progress import TrainProgress

CHECKPOINT = "checkpoint.pt"


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
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """Kwargs of the env."""
    device: str = "auto"
    """auto | cpu | cuda: where the learner's networks live."""
    threads: int = 1
    """Torch CPU threads of this process."""
    checkpoint_every: int = 0
    """Env steps between checkpoints (0: a tenth of `steps`)."""
    backend: Literal["local", "ray"] = "local"
    """local: workers in this process; ray: workers as Ray actors."""
    ray: dict[str, Any] = field(default_factory=dict)
    """`marl.distributed.RayConfig` fields (with backend ray)."""

    def validate(self) -> None:
        """Raise ConfigError naming the first value out of range."""
        checks = [
            ("steps", self.steps > 0, "a positive number of env steps"),
            ("seed", self.seed >= 0, "a seed >= 0"),
            ("threads", self.threads >= 1, ">= 1"),
            ("checkpoint_every", self.checkpoint_every >= 0, ">= 0"),
            ("backend", self.backend in ("local", "ray"), "'local' or 'ray'"),
        ]
        check_fields(self, checks)
        if self.ray and self.backend != "ray":
            raise ConfigError(f"ray options {sorted(self.ray)} only apply with backend='ray'")

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
    trainer: Trainer
    rows: list[dict[str, float]] = field(default_factory=list)

    @property
    def checkpoint(self) -> Path:
        """The run's checkpoint file."""
        return self.out_dir / CHECKPOINT

    @property
    def learner(self) -> Any:
        """The trained learner."""
        return self.trainer.learner


def assemble(spec: RunSpec, config: Any) -> tuple[Any, Trainer]:
    """The learner for `spec` with its workers on the spec's backend (the one place that
    chooses local or Ray); returns the config as run (with its step budget) and the trainer."""
    set_threads(spec.threads)
    if any(f.name == "total_steps" for f in dataclasses.fields(config)):
        config = dataclasses.replace(config, total_steps=spec.steps)
    env = vec_spec(spec.env_id, backend=getattr(config, "backend", "sync"), **spec.env_kwargs)
    device = get_device(spec.device)
    if spec.backend == "ray":
        from marl.distributed import RayConfig, ray_trainer

        return config, ray_trainer(spec.algo, env, config, spec.seed, device, RayConfig(**spec.ray))
    return config, local_trainer(spec.algo, env, config, spec.seed, device)


def train(spec: RunSpec, config: dict[str, Any] | None = None, *, out: str | Path | None = None,
          progress: bool = True) -> Run:  # fmt: skip
    """Train `spec.algo` on `spec.env_id` for `spec.steps` env steps; return the run."""
    spec.validate()
    cfg = make_config(spec.algo, config)
    out_dir = Path(out or f"runs/{spec.algo}-{spec.env_id.replace('/', '_')}-s{spec.seed}")
    if (out_dir / CHECKPOINT).exists():
        raise FileExistsError(f"{out_dir} already holds a run; resume it with --resume {out_dir}")
    cfg, trainer = assemble(spec, cfg)
    out_dir.mkdir(parents=True, exist_ok=True)
    record = {**_spec_record(spec), "config": config_to_dict(cfg)}
    atomic_write_bytes(out_dir / "config.toml", tomli_w.dumps(record).encode())
    return _loop(Run(out_dir, spec, cfg, trainer), progress)


def resume(out: str | Path, *, progress: bool = True, backend: str | None = None,
           ray: dict[str, Any] | None = None) -> Run:  # fmt: skip
    """Continue the run in `out` from its last checkpoint to its planned step count.

    It resumes on the backend it ran on unless `backend` (with `ray` options) says otherwise.
    """
    out_dir = Path(out)
    if not out_dir.is_dir():
        raise FileNotFoundError(f"no run directory at {out_dir}")
    record = load_checkpoint(out_dir / CHECKPOINT)
    spec = RunSpec(algo=record["algo"], env_id=record["env_id"], **record["run"])
    if backend is not None:
        spec = dataclasses.replace(spec, backend=backend, ray=ray or {})  # type: ignore[arg-type]
    spec.validate()
    cfg, trainer = assemble(spec, make_config(spec.algo, record["config"]))
    trainer.load_state_dict({"learner": record["learner"], **record["progress"]})
    return _loop(Run(out_dir, spec, cfg, trainer), progress)


def _spec_record(spec: RunSpec) -> dict[str, Any]:
    return {k: v for k, v in dataclasses.asdict(spec).items() if v != {} or k == "env_kwargs"}


def _save(run: Run) -> None:
    state = run.trainer.state_dict()
    run_fields = {
        k: v for k, v in dataclasses.asdict(run.spec).items() if k not in ("algo", "env_id")
    }
    save_checkpoint(
        run.checkpoint, algo=run.spec.algo, env_id=run.spec.env_id,
        config=config_to_dict(run.config), run=run_fields, learner=state["learner"],
        progress={"iteration": state["iteration"]},
    )  # fmt: skip


def _loop(run: Run, progress: bool) -> Run:
    trainer, total = run.trainer, run.spec.steps
    metrics = MetricsLog(run.out_dir, resume_at=trainer.env_steps)
    every = run.spec.checkpoint_interval
    next_checkpoint = trainer.env_steps + every
    title = f"{run.spec.algo} {run.spec.env_id}"
    try:
        with TrainProgress(total, trainer.env_steps, title, progress) as bar:
            while trainer.env_steps < total:
                start = time.perf_counter()
                stats = trainer.iterate()
                stats["time/iteration_s"] = time.perf_counter() - start
                metrics.log(trainer.env_steps, stats)
                bar.update(trainer.env_steps, stats)
                if trainer.env_steps >= next_checkpoint or trainer.env_steps >= total:
                    _save(run)
                    next_checkpoint = trainer.env_steps + every
    finally:
        metrics.close()
        trainer.close()
    run.rows = metrics.rows
    plot_learning_curve(run.rows, run.out_dir / "learning_curve.png", title.replace(" ", " on "))
    return run
