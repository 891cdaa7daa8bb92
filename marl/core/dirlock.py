"""An exclusive lock on a folder for as long as one process writes into it.

Two processes writing one run folder (a second `marl train --out` there, or `--resume` of a
run still training) would overwrite each other's checkpoints and delete each other's
temporary files. `hold_dir` takes an advisory `flock` on the folder itself (no lock file is
left behind; the OS drops the lock when the process ends, even by a crash). Where `fcntl`
does not exist (Windows) the lock is not taken.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


class DirInUseError(RuntimeError):
    """Another process (or another handle in this one) holds the folder."""


@contextmanager
def hold_dir(folder: Path, what: str = "run") -> Iterator[None]:
    """Hold `folder` exclusively for the block; raise DirInUseError if someone else does."""
    if fcntl is None:  # pragma: no cover - Windows
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DirInUseError(
                f"{folder} is in use by another marl {what} (a process training or resuming "
                "there now); wait for it to finish, or choose another folder"
            ) from None
        yield
    finally:
        os.close(fd)
