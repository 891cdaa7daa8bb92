"""marl's own board games (`marl.games`) as `classic/<name>-v0` AEC envs."""

from __future__ import annotations

from marl.envs.teams import Register, each_own_team
from marl.games import CLASSIC_IDS


def register_all(register: Register) -> None:
    """Register the PettingZoo envs of the batched board games in marl's registry."""
    for env_id, name in CLASSIC_IDS.items():
        register(env_id, f"marl.games.aec:{name}_env", kind="aec", family="classic",
                 teams=each_own_team, source="marl")  # fmt: skip
