"""`mamujoco/<Robot>-<agents>x<joints>`: Gymnasium-Robotics' Multi-Agent MuJoCo.

A MuJoCo robot's joints split among agents (de Witt et al. 2020, "Deep Multi-Agent
Reinforcement Learning for Decentralised Continuous Cooperative Control"): in
`mamujoco/HalfCheetah-2x3` two agents each drive three joints of the cheetah (back leg,
front leg), see the same shared reward, and observe their own joints plus their neighbours'
at graph distance `agent_obsk`. Actions are Box(-1, 1) per joint; the global state is the
single-agent env's observation. All agents are one team.

The env comes from `gymnasium_robotics.mamujoco_v1` (a PettingZoo ParallelEnv), which needs
the `mujoco` extra: `pip install -e ".[mujoco]"`. Without it the ids are still listed, and
making one raises an ImportError that names the extra.
"""

from __future__ import annotations

from typing import Any

from marl.core.config import MissingExtraError
from marl.envs.teams import Register, one_team

EXTRA_HINT = 'pip install -e ".[mujoco]"  (installs mujoco and gymnasium-robotics)'

SCENARIOS = (
    ("HalfCheetah", "2x3"),
    ("HalfCheetah", "6x1"),
    ("Hopper", "3x1"),
    ("Walker2d", "2x3"),
    ("Ant", "2x4"),
    ("Swimmer", "2x1"),
)
"""(robot, agent partition) pairs registered as `mamujoco/<robot>-<partition>`."""


def mamujoco_env(
    scenario: str, agent_conf: str, agent_obsk: int = 1, render_mode: str | None = None
) -> Any:
    """The Multi-Agent MuJoCo ParallelEnv of `scenario` split by `agent_conf` (e.g. '2x3')."""
    try:
        from gymnasium_robotics import mamujoco_v1
    except ImportError as err:
        raise MissingExtraError(
            f"mamujoco/{scenario}-{agent_conf} needs MuJoCo and Gymnasium-Robotics, which are "
            f"not installed ({err}); install the extra: {EXTRA_HINT}"
        ) from None
    return mamujoco_v1.parallel_env(
        scenario, agent_conf, agent_obsk=agent_obsk, render_mode=render_mode
    )


def register_all(register: Register) -> None:
    """Register `mamujoco/<robot>-<partition>` for each known scenario (made lazily)."""
    for scenario, conf in SCENARIOS:
        register(f"mamujoco/{scenario}-{conf}", mamujoco_env, kind="parallel", family="mamujoco",
                 source="gymnasium_robotics", teams=one_team, scenario=scenario,
                 agent_conf=conf)  # fmt: skip
