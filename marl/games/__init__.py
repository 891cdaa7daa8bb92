"""Board games as natively batched pure functions, plus thin PettingZoo adapters.

The rules (`marl.games.lines`) need torch, which takes about a second to import; this
package's top level does not, so registering and listing envs (`marl envs list`) stays fast.
`CONNECT_FOUR`, `TIC_TAC_TOE`, `GAMES`, `LineGame` and `IllegalMoveError` load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from marl.core.config import closest

if TYPE_CHECKING:
    from marl.games.lines import CONNECT_FOUR, GAMES, TIC_TAC_TOE, IllegalMoveError, LineGame

CLASSIC_IDS = {
    "classic/connect_four-v0": "connect_four",
    "classic/tic_tac_toe-v0": "tic_tac_toe",
}
"""Env id -> name of the batched game (in `marl.games.lines.GAMES`) it plays."""

_FROM_LINES = ("CONNECT_FOUR", "GAMES", "TIC_TAC_TOE", "IllegalMoveError", "LineGame")


def __getattr__(name: str) -> Any:
    """The torch-backed names, imported from `marl.games.lines` when first asked for."""
    if name in _FROM_LINES:
        from marl.games import lines

        return getattr(lines, name)
    raise AttributeError(f"module 'marl.games' has no attribute {name!r}")


def game_for_env(env_id: str) -> LineGame:
    """The batched game behind `env_id`; an unknown id gets the closest known ones named."""
    from marl.games.lines import GAMES

    if env_id in CLASSIC_IDS:
        return GAMES[CLASSIC_IDS[env_id]]
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
