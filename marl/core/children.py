"""Child processes that take commands over a pipe: stopping them the same way everywhere."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import Any


def stop_children(conns: Sequence[Connection], procs: Sequence[Any], timeout: float,
                  drain: bool = False) -> None:  # fmt: skip
    """Send ("close", None) down each pipe, wait until `timeout` seconds from now for the
    processes to end (`drain`: reading and dropping what they still send, so that one
    blocked writing a large reply gets to the "close"), terminate any still running, and
    close the pipes."""
    for conn in conns:
        with contextlib.suppress(OSError, ValueError):
            conn.send(("close", None))
    deadline = time.monotonic() + timeout
    while any(p.is_alive() for p in procs) and time.monotonic() < deadline:
        for conn, proc in zip(conns, procs):
            if drain and proc.is_alive():
                _drop_pending(conn)
            proc.join(timeout=0.05)
    for proc in procs:
        if proc.is_alive():
            proc.terminate()
        proc.join()
    for conn in conns:
        conn.close()


def _drop_pending(conn: Connection) -> None:
    with contextlib.suppress(EOFError, OSError, ValueError):
        while conn.poll():
            conn.recv()
