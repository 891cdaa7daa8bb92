"""The built-in env families, registered lazily the first time the registry is read."""

from __future__ import annotations

import inspect
from typing import Any

from marl.envs.families import gym, matrix, maze, mpe, openspiel


def register_builtin() -> None:
    """Register every built-in family's ids."""
    mpe.register_all()
    openspiel.register_all()
    gym.register_all()
    matrix.register_all()
    maze.register_all()
    try:
        from marl.games import register_classic
    except ImportError:  # the batched board games are optional until they land
        return
    register_classic()


def _signature_kwargs(fn: Any) -> set[str] | None:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return {p.name for p in params if p.name != "self"}


def accepted_kwargs(reg: Any) -> set[str] | None:
    """The kwargs an id accepts, or None where they cannot be known in advance."""
    if reg.family == "mpe":
        return mpe.accepted_kwargs(reg.env_id)
    if reg.family == "openspiel":
        return openspiel.accepted_kwargs(reg.env_id)
    if reg.family == "gym":
        return None
    import pettingzoo

    spec = pettingzoo.parallel_registry.get(reg.env_id) or pettingzoo.aec_registry.get(reg.env_id)
    entry = spec.entry_point if spec is not None else None
    return _signature_kwargs(entry) if callable(entry) else None
