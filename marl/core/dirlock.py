"""An exclusive lock on a folder for as long as one process writes into it.

Two processes writing one run folder (a second `marl train --out` there, or `--resume` of a
run still training) would overwrite each other's checkpoints and delete each other's
temporary files. `hold_dir` takes an advisory `flock` on the folder itself (no lock file is
left behind). The OS drops it when the holder ends, even by a crash, and when the worker
processes it forked meanwhile (the process env backend) have ended too. Where no such lock
exists (Windows; NFS and other network filesystems that refuse `flock` on a folder) the run
goes on unlocked, with a warning on a filesystem that refused it.
"""

from __future__ import annotations

import errno
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

UNSUPPORTED = {errno.EBADF, errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL}
"""What `flock` raises where a filesystem cannot lock a folder (NFS, CIFS, some FUSE)."""


class DirInUseError(RuntimeError):
    """Another process (or another handle in this one) holds the folder."""


@contextmanager
def hold_dir(folder: Path) -> Iterator[None]:
    """Hold `folder` exclusively for the block; raise DirInUseError if someone else does."""
    if fcntl is None:  # pragma: no cover - Windows
        yield
        return
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        _lock(fd, folder)
        yield
    finally:
        os.close(fd)


def _lock(fd: int, folder: Path) -> None:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise DirInUseError(
            f"{folder} is in use by another marl run (a process training or resuming there "
            "now); wait for it to finish, or choose another folder"
        ) from None
    except OSError as err:
        if err.errno not in UNSUPPORTED:
            raise
        warnings.warn(
            f"{folder}: this filesystem cannot lock a folder ({err.strerror}); nothing stops "
            "a second marl process from writing there at the same time",
            stacklevel=4,
        )
