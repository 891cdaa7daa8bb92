"""The built-in env families, registered lazily the first time the registry is read."""

from __future__ import annotations

import inspect
import numbers
from typing import Any

import numpy as np

from marl.envs.families import classic, gym, mamujoco, matrix, maze, mpe, openspiel
from marl.envs.teams import Register


def register_builtin(register: Register) -> None:
    """Register every built-in family's ids with `register` (the registry's own)."""
    for family in (mpe, openspiel, gym, matrix, maze, classic, mamujoco):
        family.register_all(register)


class _Required:
    """The default of a kwarg that has none (printed as `required`)."""

    def __repr__(self) -> str:
        return "required"


REQUIRED = _Required()


def _signature_defaults(fn: Any) -> dict[str, Any] | None:
    """Keyword parameters of `fn` and their defaults (None where it takes **kwargs)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    named = [p for p in params if p.name != "self" and p.kind is not p.VAR_POSITIONAL]
    return {p.name: REQUIRED if p.default is p.empty else p.default for p in named}


def kwarg_defaults(reg: Any) -> dict[str, Any] | None:
    """Each kwarg an id accepts with the value it gets when not given; None where unknown."""
    if reg.family == "mpe":
        return mpe.kwarg_defaults(reg.env_id)
    if reg.family == "openspiel":
        return openspiel.kwarg_defaults(reg.env_id)
    if reg.family == "gym":
        return None  # gymnasium.make takes any kwarg its env does; they cannot be listed
    import pettingzoo

    spec = pettingzoo.parallel_registry.get(reg.env_id) or pettingzoo.aec_registry.get(reg.env_id)
    entry = spec.entry_point if spec is not None else None
    if isinstance(entry, str):
        entry = _load_entry_point(entry)
    defaults = _signature_defaults(entry) if callable(entry) else None
    # the kwargs the registration fixes (matrix/<game>'s `game`) are part of the id, not options
    return None if defaults is None else {k: v for k, v in defaults.items() if k not in reg.kwargs}


def _load_entry_point(entry: str) -> Any:
    import importlib

    module, _, attr = entry.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError):
        return None  # `make` reports the broken entry point when it is used


def accepted_kwargs(reg: Any) -> set[str] | None:
    """The kwargs an id accepts, or None where they cannot be known in advance."""
    defaults = kwarg_defaults(reg)
    return None if defaults is None else set(defaults)


def check_kwarg_values(reg: Any, kwargs: dict[str, Any]) -> None:
    """Refuse a kwarg whose value has the wrong type for its default, or is below its minimum."""
    defaults = kwarg_defaults(reg) or {}
    minimum = mpe.MINIMUM if reg.family == "mpe" else {}
    for key, value in kwargs.items():
        expected = _expected_type(defaults.get(key))
        if expected is not None and not _is_a(value, expected):
            raise ValueError(f"{reg.env_id}: {key}={value!r}: expected {expected}")
        if key in minimum and _is_a(value, "an integer") and value < minimum[key]:
            raise ValueError(f"{reg.env_id}: {key}={value!r}: expected at least {minimum[key]}")


def _expected_type(default: Any) -> str | None:
    """What a kwarg with this default must be (None: anything, e.g. a default of None)."""
    if isinstance(default, bool):
        return "True or False"
    if isinstance(default, numbers.Integral):
        return "an integer"
    if isinstance(default, numbers.Real):
        return "a number"
    return None


def _is_a(value: Any, expected: str) -> bool:
    if isinstance(value, bool | np.bool_):
        return expected == "True or False"
    if expected == "an integer":
        return isinstance(value, numbers.Integral)
    if expected == "a number":
        return isinstance(value, numbers.Real)
    return False
