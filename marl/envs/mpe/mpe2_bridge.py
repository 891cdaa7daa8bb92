"""Copy the state of an mpe2 env into a batched world (used to test the two agree)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from marl.envs.mpe.world import WorldState


def _index(items: list[Any], target: Any) -> int:
    """Position of the very object `target` in `items`."""
    return next(i for i, item in enumerate(items) if item is target)


def _no_goals(world: Any) -> list[int]:
    return []


def _shared_goal(world: Any) -> list[int]:
    return [_index(world.landmarks, world.agents[0].goal_a)]


def _goal_per_agent(world: Any) -> list[int]:
    return [_index(world.landmarks, agent.goal_b) for agent in world.agents]


def _speaker_goal(world: Any) -> list[int]:
    return [_index(world.landmarks, world.agents[0].goal_b)]


def _goal_and_key(world: Any) -> list[int]:
    colors = [lm.color for lm in world.landmarks]
    return [_index(world.landmarks, world.agents[0].goal_a), _index(colors, world.agents[2].key)]


def _treasure_columns(world: Any) -> list[int]:
    holding = [-1 if a.holding is None else a.holding for a in world.agents if a.collector]
    alive = [int(lm.alive) for lm in world.landmarks]
    kinds = [lm.type for lm in world.landmarks]
    return holding + alive + kinds + [0]


GOAL_READERS: dict[str, Callable[[Any], list[int]]] = {
    "simple_v3": _no_goals,
    "simple_spread_v3": _no_goals,
    "simple_tag_v3": _no_goals,
    "simple_world_comm_v3": _no_goals,
    "simple_line_v1": _no_goals,
    "simple_formation_v1": _no_goals,
    "simple_adversary_v3": _shared_goal,
    "simple_push_v3": _shared_goal,
    "simple_reference_v3": _goal_per_agent,
    "simple_speaker_listener_v4": _speaker_goal,
    "simple_crypto_v3": _goal_and_key,
    "collect_treasure_v1": _treasure_columns,
}
"""mpe2 module name -> the reader of that scenario's discrete draws (WorldState.goals)."""


def import_mpe2_state(
    env: Any, module: str, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float64
) -> WorldState:
    """The state of one mpe2 env (any wrapper of it) as a batch of one world."""
    world = env.unwrapped.world
    entities = world.agents + world.landmarks
    pos = np.stack([e.state.p_pos for e in entities])
    vel = np.stack([a.state.p_vel for a in world.agents])
    comm = np.stack([a.state.c for a in world.agents]).reshape(len(world.agents), -1)

    def tensor(x: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(x, dtype=np.float64), device=device, dtype=dtype)[None]

    goals = torch.tensor([GOAL_READERS[module](world)], dtype=torch.long, device=device)
    return WorldState(tensor(pos), tensor(vel), tensor(comm), goals, tensor(np.zeros((0, 2))))
