"""Checkpoints written atomically and read without executing code.

A checkpoint is a `torch.save`d dict of tensors and plain values (no pickled classes), so
`torch.load(..., weights_only=True)` reads it. It always carries `format`, `algo`,
`env_id` and `config` so that `marl eval CKPT` needs nothing else.
"""

from __future__ import annotations

import io
import os
import pickle
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch

FORMAT = "marl-checkpoint-v1"


class CheckpointError(ValueError):
    """A checkpoint that is missing, corrupt, foreign, or for another env or algorithm."""


def _umask_mode() -> int:
    """The mode a plain `open(path, "w")` would give a new file (mkstemp gives 0600)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see the old file or the new one, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _umask_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_checkpoint(
    path: str | Path, *, algo: str, env_id: str, config: dict, **payload: Any
) -> Path:
    """Atomically save a checkpoint with its algorithm, env id and config beside `payload`."""
    record = {"format": FORMAT, "algo": algo, "env_id": env_id, "config": config, **payload}
    buffer = io.BytesIO()
    torch.save(record, buffer)
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)


def load_checkpoint(
    path: str | Path,
    *,
    env_id: str | None = None,
    algo: str | None = None,
    map_location: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Load a checkpoint safely; with `env_id`/`algo`, refuse one made for something else."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}: expected a file written by marl train")
    try:
        record = torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError) as err:
        raise CheckpointError(
            f"{path} is not a readable marl checkpoint (corrupt, truncated, or it needs "
            f"code execution to load): {str(err).splitlines()[0]}"
        ) from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a marl checkpoint (expected format {FORMAT!r})")
    for key, want in (("env_id", env_id), ("algo", algo)):
        if want is not None and record[key] != want:
            raise CheckpointError(
                f"{path} was trained with {key}={record[key]!r}, but {key}={want!r} was asked for"
            )
    return record
