"""Learned league players read from checkpoints (weights only): AlphaZero search, learner teams.

Board games are played by OpenSpiel in the arena. AlphaZero searches connect four and
tic-tac-toe on `marl.games`' batched rules: a position is rebuilt from the OpenSpiel state's
move history (both number moves the same way: a column in connect four, a cell in
tic-tac-toe). Any other two-player zero-sum game is searched on OpenSpiel's own states.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from marl.core.spec import VecSpec
from marl.league.players import PlayerEntry, PlayerError, PositionBatch
from marl.league.teams import PolicyTeamPlayer, TeamGame, TeamView, make_team_env

BOARD_GAMES = {"connect_four": "classic/connect_four-v0", "tic_tac_toe": "classic/tic_tac_toe-v0"}
"""OpenSpiel game name -> the env id of the batched rules AlphaZero learns on."""


def alphazero_env(game: Any) -> tuple[str, dict[str, Any]]:
    """(env id, env kwargs) AlphaZero learns an OpenSpiel game on: the batched rules where
    marl has them, else `openspiel/<game>` with the parameters that differ from the game's
    defaults (`hex` with `board_size=5`); a clear error for a game AlphaZero cannot learn."""
    import pyspiel

    from marl.core.config import ConfigError
    from marl.search.alphazero import rules_for_env

    name = game.get_type().short_name if hasattr(game, "get_type") else str(game)
    params = game.get_parameters() if hasattr(game, "get_parameters") else {}
    defaults = pyspiel.load_game(name).get_parameters()
    changed = {k: v for k, v in params.items() if defaults.get(k) != v}
    if name in BOARD_GAMES and not changed:
        return BOARD_GAMES[name], {}
    try:
        rules_for_env(f"openspiel/{name}", changed)
    except ConfigError as err:
        need = "alphazero players need a deterministic two-player zero-sum turn game"
        raise PlayerError(f"{need}: {err}") from None
    return f"openspiel/{name}", changed


class SearchTurnPlayer:
    """An `AlphaZeroPlayer` (greedy batched search) over OpenSpiel positions."""

    def __init__(self, player: Any):
        """Wrap a `marl.search.players.AlphaZeroPlayer`."""
        self.player = player

    def boards(self, states: Sequence[Any]) -> Any:
        """[B, cells] boards of the batched rules, replayed from each state's history (or, for
        a game searched on OpenSpiel's own rules, copies of the states)."""
        import torch

        game = self.player.game
        if hasattr(game, "positions"):
            return game.positions(states)
        boards = game.initial(len(states))
        histories = [s.history() for s in states]
        for t in range(max(len(h) for h in histories)):
            rows = [i for i, h in enumerate(histories) if t < len(h)]
            moves = torch.tensor([histories[i][t] for i in rows])
            boards[rows] = game.play(boards[rows], moves)
        return boards

    def act(self, batch: PositionBatch, rngs: Sequence[np.random.Generator]) -> np.ndarray:
        """[B] moves chosen by one batched search from all B positions."""
        boards = self.boards(batch.states)
        legal = self.player.game.legal_mask(boards).numpy()
        if not np.array_equal(legal, batch.action_mask):
            raise PlayerError("the rebuilt boards disagree with OpenSpiel's legal moves")
        return self.player.act_batch(boards).numpy().astype(np.int64)


def _checkpoint(entry: PlayerEntry) -> str:
    path = entry.spec.checkpoint
    if not path:
        raise PlayerError(
            f"player {entry.name!r} is a learner: the league trains it and plays it from the "
            "checkpoint it writes each round (give `checkpoint` to play a fixed one instead)"
        )
    return path


def turn_player(game: Any, entry: PlayerEntry) -> SearchTurnPlayer:
    """An AlphaZero or MuZero checkpoint (a league snapshot or a `marl train` run) as a board
    player."""
    from marl.core.checkpoint import CheckpointError
    from marl.search.play import load_player

    if getattr(entry.spec, "algo", "alphazero") not in ("alphazero", "muzero"):
        raise PlayerError(f"player {entry.name!r} ({entry.spec.algo}) cannot play board games")
    try:
        env_id, env_kwargs = alphazero_env(game)
        player = load_player(env_id, _checkpoint(entry), entry.spec.simulations, env_kwargs)
    except CheckpointError as err:
        raise PlayerError(f"player {entry.name!r}: {err}") from None
    return SearchTurnPlayer(player)


def team_spec(game: TeamGame, team: str, backend: str = "auto") -> VecSpec:
    """The `VecSpec` a learner for `team` of `game` is built from (the team's own agents)."""
    game.team_index(team)
    view = TeamView(make_team_env(game.env_id, 1, game.kwargs, backend), team)
    try:
        return VecSpec.of(view, game.env_id, game.kwargs)
    finally:
        view.close()


def team_player(game: Any, entry: PlayerEntry) -> PolicyTeamPlayer:
    """A learner checkpoint written by a league (a snapshot or a learner) as a team player."""
    from marl.algorithms import learner_module, make_config
    from marl.core.checkpoint import CheckpointError, load_checkpoint, load_state

    if not isinstance(game, TeamGame):
        raise PlayerError(f"player {entry.name!r}: team players play team envs (mpe/...)")
    try:
        record = load_checkpoint(_checkpoint(entry), env_id=game.env_id, needs=("learner",))
    except CheckpointError as err:
        raise PlayerError(f"player {entry.name!r}: {err}") from None
    team = record.get("league", {}).get("team")
    if team is None:
        raise PlayerError(f"{entry.spec.checkpoint} is not a league checkpoint (no league.team)")
    if entry.spec.team and entry.spec.team != team:
        raise PlayerError(
            f"player {entry.name!r}: team={entry.spec.team!r} but the checkpoint "
            f"{entry.spec.checkpoint} plays team {team!r}"
        )
    config = make_config(record["algo"], record["config"])
    spec = team_spec(game, team, getattr(config, "backend", "auto"))
    learner = learner_module(record["algo"]).make_learner(spec, config, 0, "cpu")
    state, path = record["learner"], entry.spec.checkpoint
    built_for = f"team {team!r} of {game.env_id} {game.kwargs or '(default kwargs)'}"
    try:
        if "weights" in state:  # a snapshot
            load_state(learner.load_weights, state["weights"], path, built_for)
        else:  # a learner's round checkpoint: its whole state
            load_state(learner.load_state_dict, state, path, built_for)
    except CheckpointError as err:
        raise PlayerError(f"player {entry.name!r}: {err}") from None
    return PolicyTeamPlayer(learner.policy(), team)


def with_checkpoint(entry: PlayerEntry, checkpoint: str) -> PlayerEntry:
    """A frozen snapshot entry that plays `entry`'s learner from `checkpoint`."""
    from marl.league.players import SnapshotSpec

    spec = entry.spec
    snapshot = SnapshotSpec(
        checkpoint,
        getattr(spec, "algo", "alphazero"),
        getattr(spec, "team", ""),
        getattr(spec, "simulations", 0),
    )
    return dataclasses.replace(entry, kind="snapshot", spec=snapshot)
