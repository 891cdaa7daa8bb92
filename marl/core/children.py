"""Child processes that take commands over a pipe: stopping them the same way everywhere."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import Any


def stop_children(conns: Sequence[Connection], procs: Sequence[Any], timeout: float) -> None:
    """Send ("close", None) down each pipe, wait up to `timeout` seconds for each process,
    terminate one that is still running, and close the pipes."""
    for conn in conns:
        with contextlib.suppress(OSError, ValueError):
            conn.send(("close", None))
    for proc in procs:
        proc.join(timeout=timeout)
        if proc.is_alive():
            proc.terminate()
            proc.join()
    for conn in conns:
        conn.close()
