"""The one place that picks a torch device and CPU thread count."""

from __future__ import annotations

import os

import torch

_DEVICES = ("auto", "cpu", "cuda", "mps")


def get_device(name: str = "auto") -> torch.device:
    """Return the device `name` names; "auto" takes CUDA when present, else the CPU."""
    base = name.split(":")[0]
    if base not in _DEVICES:
        raise ValueError(f"unknown device {name!r}; expected one of {', '.join(_DEVICES)}")
    if base == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if base == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but torch sees no CUDA GPU; use 'auto'")
    if base == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device 'mps' was asked for but torch sees no Apple GPU; use 'auto'")
    try:
        return torch.device(name)
    except RuntimeError as err:  # cuda:abc
        raise ValueError(f"device {name!r}: {err}") from None


def set_threads(num_threads: int | None = None) -> int:
    """Give torch `num_threads` CPU threads (default: all cores this process may use)."""
    if num_threads is None:
        num_threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
    torch.set_num_threads(max(1, num_threads))
    return torch.get_num_threads()
