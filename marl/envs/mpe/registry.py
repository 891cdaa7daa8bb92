"""Env ids of the batched MPE scenarios, and `make_batched`, which builds one."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import torch

from marl.core.config import closest
from marl.core.device import get_device
from marl.envs.mpe.env import BatchedMPE
from marl.envs.mpe.scenarios.communication import (
    SimpleCrypto,
    SimpleReference,
    SimpleSpeakerListener,
)
from marl.envs.mpe.scenarios.cooperative import Simple, SimpleSpread
from marl.envs.mpe.scenarios.formation import SimpleFormation, SimpleLine
from marl.envs.mpe.scenarios.goals import SimpleAdversary, SimplePush
from marl.envs.mpe.scenarios.predator_prey import SimpleTag, SimpleWorldComm
from marl.envs.mpe.scenarios.treasure import CollectTreasure

SCENARIOS: dict[str, type] = {
    "mpe/simple-v3": Simple,
    "mpe/simple_spread-v3": SimpleSpread,
    "mpe/simple_tag-v3": SimpleTag,
    "mpe/simple_adversary-v3": SimpleAdversary,
    "mpe/simple_push-v3": SimplePush,
    "mpe/simple_reference-v3": SimpleReference,
    "mpe/simple_speaker_listener-v4": SimpleSpeakerListener,
    "mpe/simple_crypto-v3": SimpleCrypto,
    "mpe/simple_world_comm-v3": SimpleWorldComm,
    "mpe/simple_line-v1": SimpleLine,
    "mpe/simple_formation-v1": SimpleFormation,
    "mpe/collect_treasure-v1": CollectTreasure,
}
BATCHED_IDS: tuple[str, ...] = tuple(SCENARIOS)

_ENV_KWARGS = ("max_cycles", "continuous_actions")
# mpe2 keywords that only change rendering or info dicts, with the one value we accept
# (None: any value). Curriculum learning is not part of the batched scenarios.
_ACCEPTED_AS = {"render_mode": None, "dynamic_rescaling": None, "benchmark_data": False}
_REFUSED_UNLESS = {"curriculum": False}


def mpe2_module(env_id: str) -> str:
    """The mpe2 module an id names: "mpe/simple_spread-v3" -> "simple_spread_v3"."""
    return env_id.removeprefix("mpe/").replace("-", "_")


def _scenario_kwargs(env_id: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Check mpe2 keyword arguments; return those the scenario itself takes."""
    params = list(inspect.signature(SCENARIOS[env_id]).parameters)[2:]
    known = [*params, *_ENV_KWARGS, *_ACCEPTED_AS, *_REFUSED_UNLESS]
    for key, value in kwargs.items():
        if key not in known:
            near = closest(key, known)
            hint = f"; did you mean {' or '.join(near)}?" if near else ""
            raise ValueError(f"{env_id} takes no argument {key!r}{hint} (it takes {known})")
        if key == "render_mode" and value is not None:
            raise ValueError("the batched MPE does not render; use marl.make(...) to render")
        for table in (_ACCEPTED_AS, _REFUSED_UNLESS):
            if key in table and table[key] is not None and value != table[key]:
                raise ValueError(f"{key}={value!r} is not supported by the batched MPE")
    return {k: v for k, v in kwargs.items() if k in params}


def batched_kwargs_error(env_id: str, kwargs: dict[str, Any]) -> str | None:
    """Why the batched `env_id` cannot take `kwargs` (None when it can)."""
    try:
        _scenario_kwargs(env_id, kwargs)
    except ValueError as err:
        return str(err)
    return None


def make_batched(
    env_id: str,
    num_envs: int,
    *,
    device: torch.device | str = "cpu",
    seed: int | Sequence[int] | None = None,
    dtype: torch.dtype = torch.float32,
    check_actions: bool = True,
    compile: bool = False,
    **kwargs: Any,
) -> BatchedMPE:
    """`num_envs` copies of an MPE scenario as one tensor env (kwargs as mpe2 takes them;
    `compile`: the step through `torch.compile`, see `BatchedMPE`)."""
    if env_id not in SCENARIOS:
        near = closest(env_id, BATCHED_IDS)
        which = f"closest supported ids: {', '.join(near)}" if near else f"supported: {BATCHED_IDS}"
        raise ValueError(f"unknown batched MPE id {env_id!r}; {which}")
    device = get_device(str(device))
    scenario = SCENARIOS[env_id](device, dtype, **_scenario_kwargs(env_id, kwargs))
    return BatchedMPE(
        scenario,
        num_envs,
        max_cycles=kwargs.get("max_cycles", 25),
        continuous_actions=kwargs.get("continuous_actions", False),
        check_actions=check_actions,
        compile=compile,
        device=device,
        dtype=dtype,
        seed=seed,
    )
