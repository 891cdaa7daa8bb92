"""`mpe/<scenario>-vN`: every scenario the `mpe2` package ships, as ParallelEnvs."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from typing import Any

from marl.envs.teams import Register

MODULE_PATTERN = re.compile(r"^(?P<name>[a-z_]+)_v(?P<version>\d+)$")
# Smallest value of each count kwarg; below it mpe2 fails deep inside numpy ("zero-size
# array to reduction operation"). Obstacles and forests may be absent.
MINIMUM = {"N": 1, "num_good": 1, "num_adversaries": 1, "num_food": 1, "num_collectors": 1,
           "num_deposits": 1, "num_treasures": 1, "max_cycles": 1, "num_obstacles": 0,
           "num_forests": 0}  # fmt: skip


def scenario_modules() -> dict[str, str]:
    """Map `mpe/<name>-vN` ids to their mpe2 module names (found by listing the package)."""
    import mpe2

    ids = {}
    for info in pkgutil.iter_modules(mpe2.__path__):
        match = MODULE_PATTERN.match(info.name)
        if match:
            ids[f"mpe/{match['name']}-v{match['version']}"] = info.name
    return ids


def register_all(register: Register) -> None:
    """Register each mpe2 scenario as a parallel env with its teams by name prefix."""
    for env_id, module in scenario_modules().items():
        register(env_id, f"mpe2.{module}:parallel_env", kind="parallel", source="mpe2")


def kwarg_defaults(env_id: str) -> dict[str, Any]:
    """The scenario's constructor kwargs and defaults (N, local_ratio, max_cycles...)."""
    module = importlib.import_module(f"mpe2.{scenario_modules()[env_id]}")
    params = inspect.signature(module.raw_env.__init__).parameters.values()
    return {p.name: p.default for p in params if p.name != "self"}
