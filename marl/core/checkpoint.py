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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

FORMAT = "marl-checkpoint-v1"


def load_optimizer(optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """`optimizer.load_state_dict(state)`, keeping the optimizer's own `foreach` choice: torch
    takes every group setting from the saved state, and a checkpoint from before marl's
    optimizers asked for `foreach` would turn it off (the same numbers, a slower step)."""
    foreach = [group.get("foreach") for group in optimizer.param_groups]
    optimizer.load_state_dict(state)
    for group, choice in zip(optimizer.param_groups, foreach, strict=True):
        group["foreach"] = choice


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


ZIP_MAGIC = b"PK\x03\x04"
"""The first bytes of every file `torch.save` writes (a zip archive)."""

REQUIRED = {"algo": str, "env_id": str, "config": dict}
"""Keys every marl checkpoint carries, with their types."""


def _read(path: Path, map_location: str | torch.device) -> Any:
    """`torch.load(path, weights_only=True)`, each way of failing said in one line."""
    try:
        with open(path, "rb") as f:
            head = f.read(len(ZIP_MAGIC))
    except OSError as err:
        raise CheckpointError(f"{path} cannot be read: {err.strerror or err}") from None
    if not head:
        raise CheckpointError(f"{path} is empty (0 bytes): not a marl checkpoint")
    if head != ZIP_MAGIC:
        raise CheckpointError(
            f"{path} is not a marl checkpoint: it is not a torch archive (a checkpoint starts "
            f"with {ZIP_MAGIC!r}, this file with {head!r})"
        )
    _refuse_foreign_zip(path)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:  # torch's text advises weights_only=False: never here
        raise CheckpointError(
            f"{path} holds pickled Python objects that would run code when loaded; marl "
            "checkpoints hold only tensors and plain values, so it is not loaded"
        ) from None
    except Exception as err:  # noqa: BLE001 - a cut archive: RuntimeError, OSError(22), ...
        first = (str(err).splitlines() or [type(err).__name__])[0].split(". ")[0]
        raise CheckpointError(f"{path} is truncated or corrupt: {first}") from None


def _refuse_foreign_zip(path: Path) -> None:
    """Refuse an intact zip archive that is not a torch one (an .npz, a .zip): torch's own
    error would call it corrupt. A cut archive is left to torch (truncated)."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return
    if not any(name.endswith("/data.pkl") for name in names):
        shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
        raise CheckpointError(
            f"{path} is not a marl checkpoint: a zip archive of other files ({shown}), "
            "not a torch checkpoint"
        )


def load_checkpoint(
    path: str | Path,
    *,
    env_id: str | None = None,
    algo: str | None = None,
    map_location: str | torch.device = "cpu",
    needs: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Load a checkpoint safely; with `env_id`/`algo`, refuse one made for something else.

    `needs` names further keys the caller reads (e.g. `learner` and `run` to resume).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}: expected a file written by marl train")
    record = _read(path, map_location)
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a marl checkpoint (expected format {FORMAT!r})")
    for key, kind in {**REQUIRED, **dict.fromkeys(needs, dict)}.items():
        if not isinstance(record.get(key), kind):
            found = "lacks it" if key not in record else f"has {type(record[key]).__name__}"
            raise CheckpointError(
                f"{path} is a damaged marl checkpoint: {key!r} must be a {kind.__name__}, "
                f"but the file {found}"
            )
    for key, want in (("env_id", env_id), ("algo", algo)):
        if want is not None and record[key] != want:
            raise CheckpointError(
                f"{path} was trained with {key}={record[key]!r}, but {key}={want!r} was asked for"
            )
    return record


def load_state(load: Callable[[Any], Any], state: Any, path: str | Path, built_for: str) -> None:
    """`load(state)` (a `load_state_dict`); a checkpoint for other shapes is named as such.

    `built_for` says what the loading object was built for (e.g. "dqn on matrix/two_step-v0"):
    the env or env kwargs whose observation and action sizes the saved tensors do not match.
    """
    try:
        load(state)
    except (RuntimeError, KeyError, ValueError, TypeError) as err:
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        detail = next((line for line in lines if line.startswith("size mismatch")), None)
        detail = detail or (lines[-1] if lines else type(err).__name__)
        raise CheckpointError(
            f"{path} does not fit {built_for}: its tensors were saved for other shapes or "
            f"another learner (trained on another env, other env kwargs or other network "
            f"settings?): {detail.removesuffix('.')}"
        ) from None


def remove_stale_temporaries(path: str | Path) -> list[Path]:
    """Delete the `.{name}.*.tmp` files a killed `atomic_write_bytes(path)` left behind."""
    path = Path(path)
    stale = sorted(path.parent.glob(f".{path.name}.*.tmp")) if path.parent.is_dir() else []
    for tmp in stale:
        tmp.unlink(missing_ok=True)
    return stale
