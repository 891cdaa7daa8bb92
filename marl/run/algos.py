"""Algorithm names -> the module that implements them, with each name's config presets.

A learner module exposes `CONFIG` (its frozen config dataclass), `ALGOS` (algorithm name ->
config overrides, e.g. `"mappo": {"critic": "state"}`) and
`make_learner(env_id, config, seed, device, env_kwargs) -> Learner`.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from marl.run.config import build_config, closest

ALGORITHMS = {
    "ppo": "marl.learners.ppo",
    "ippo": "marl.learners.ppo",
    "mappo": "marl.learners.ppo",
    "qmix": "marl.learners.qmix",
    "vdn": "marl.learners.qmix",
    "iql": "marl.learners.qmix",
    "dqn": "marl.learners.qmix",
    "alphazero": "marl.search.alphazero",
}


def learner_module(algo: str) -> ModuleType:
    """The module implementing `algo` (clear error for unknown or not-installed ones)."""
    if algo not in ALGORITHMS:
        near = closest(algo, ALGORITHMS)
        hint = f"did you mean {' or '.join(near)}? " if near else ""
        raise ValueError(f"unknown algorithm {algo!r}; {hint}known: {', '.join(ALGORITHMS)}")
    try:
        return importlib.import_module(ALGORITHMS[algo])
    except ImportError as err:
        raise NotImplementedError(f"algorithm {algo!r} is not available: {err}") from None


def make_config(algo: str, values: dict[str, Any] | None = None) -> Any:
    """The config of `algo`: its class defaults, then its presets, then `values`."""
    module = learner_module(algo)
    return build_config(module.CONFIG, {**module.ALGOS.get(algo, {}), **(values or {})})
