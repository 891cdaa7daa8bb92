"""Is an action in its agent's action space? One check, with a message that names both.

The board games' own adapters (`marl.games.aec`) and the env layer's wrappers
(`marl.envs.actions`) call it, so it sits below both.
"""

from __future__ import annotations

import numbers
import reprlib
from typing import Any

import gymnasium
import numpy as np

_short = reprlib.Repr()  # a 5,000-digit action must not flood the message
_short.maxstring, _short.maxlong, _short.maxother, _short.maxlist = 40, 40, 60, 20


class ActionError(ValueError):
    """An action that is not in the acting agent's action space, or a missing one."""


def describe(value: Any) -> str:
    """A short repr of a value: long strings, arrays and huge integers are abbreviated."""
    if isinstance(value, int) and value.bit_length() > 128:  # repr fails past 4,300 digits
        return f"<an integer of about {int(value.bit_length() * 0.30103) + 1} digits>"
    return _short.repr(value)


def _is_integer(action: Any) -> bool:
    if isinstance(action, bool | np.bool_):
        return False  # True is an int to Python, but never a meant move
    if isinstance(action, np.ndarray):
        return action.shape == () and np.issubdtype(action.dtype, np.integer)
    return isinstance(action, numbers.Integral)


def action_problem(action: Any, space: gymnasium.Space) -> str | None:
    """Why `action` is not an action of `space`, or None when it is one."""
    if action is None:
        return "no action was given"
    if isinstance(space, gymnasium.spaces.Discrete):
        if not _is_integer(action):
            return f"expected an integer, got a {type(action).__name__}"
        low, high = int(space.start), int(space.start + space.n - 1)
        if not low <= int(action) <= high:  # not space.contains: this runs every env step
            return f"expected {low}..{high}"
        return None
    if isinstance(space, gymnasium.spaces.Box):
        # Continuous envs clip out-of-bounds actions themselves; shape and type must be right.
        array = np.asarray(action)
        if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
            return f"expected numbers, got {array.dtype}"
        if array.shape != space.shape:
            return f"expected shape {space.shape}, got {array.shape}"
        return None if np.isfinite(array).all() else "expected finite numbers"
    return None if space.contains(action) else "not an element of the space"


def legal_actions(space: gymnasium.Space, mask: Any) -> list[int] | None:
    """The actions of a `Discrete` `space` that `mask` (1 = legal) allows, or None when
    there is no mask to check."""
    if mask is None or not isinstance(space, gymnasium.spaces.Discrete):
        return None
    return (np.flatnonzero(np.asarray(mask)) + int(space.start)).tolist()


def check_action(agent: str, action: Any, space: gymnasium.Space, mask: Any = None) -> None:
    """Raise ActionError naming the agent, the action and the space if `action` is not valid,
    or, given the agent's action `mask`, naming the legal actions if it is masked out."""
    problem = action_problem(action, space)
    if problem is not None:
        raise ActionError(
            f"action {describe(action)} of agent {agent!r} is not in its action space "
            f"{space}: {problem}"
        )
    legal = legal_actions(space, mask)
    if legal is not None and int(action) not in legal:
        raise ActionError(
            f"action {describe(action)} of agent {agent!r} is illegal now (its action mask "
            f"rules it out); legal actions: {describe(legal)}"
        )
