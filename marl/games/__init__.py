"""Board games as natively batched pure functions, plus thin PettingZoo adapters."""

from __future__ import annotations

from marl.core.config import closest
from marl.games.lines import CONNECT_FOUR, GAMES, TIC_TAC_TOE, IllegalMoveError, LineGame

CLASSIC_IDS = {
    "classic/connect_four-v0": ("marl.games.aec:connect_four_env", CONNECT_FOUR),
    "classic/tic_tac_toe-v0": ("marl.games.aec:tic_tac_toe_env", TIC_TAC_TOE),
}
"""Env id -> (PettingZoo entry point, batched game) for the games this package provides."""


def game_for_env(env_id: str) -> LineGame:
    """The batched game behind `env_id`; an unknown id gets the closest known ones named."""
    if env_id in CLASSIC_IDS:
        return CLASSIC_IDS[env_id][1]
    near = closest(env_id, CLASSIC_IDS)
    hint = f"; did you mean {' or '.join(near)}?" if near else ""
    raise ValueError(
        f"no batched game for env id {env_id!r}{hint} (known: {', '.join(CLASSIC_IDS)})"
    )


__all__ = [
    "CLASSIC_IDS",
    "CONNECT_FOUR",
    "GAMES",
    "TIC_TAC_TOE",
    "IllegalMoveError",
    "LineGame",
    "game_for_env",
]
