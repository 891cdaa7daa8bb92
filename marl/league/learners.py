"""Learners trained inside a league: K updates per round, snapshots, round checkpoints.

After each round's games every learner runs `iterations_per_round` updates, through the
same `Trainer` as `marl train`: on a board game it self-plays on the game's batched rules;
on a team env it acts for its team against the opponents it met in that round (one
opponent per update, in turn), each a frozen copy. Every `snapshot_every` updates it adds a
snapshot: a weights-only checkpoint in `snapshots/` and a row in the store's `players`
table, written in one transaction. After its updates it writes its whole state (weights,
optimizer, replay buffer, RNGs, counters) atomically to `learners/<name>.pt`; the next
round's games play it from that file.

A killed league resumes every learner from that file: the updates it made after its last
checkpoint are redone (snapshots they had added are kept and not added again, so the
redone updates may differ slightly from the snapshots' weights); nothing else is lost.
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Any

from marl.algorithms import local_trainer, make_config, num_envs
from marl.core.checkpoint import load_checkpoint, load_state, save_checkpoint
from marl.core.config import config_to_dict
from marl.envs.vector import vec_spec
from marl.league.learned import alphazero_env, team_spec, with_checkpoint
from marl.league.players import PlayerEntry, PlayerError
from marl.league.store import LeagueStore, SnapshotRow, TrainingRow
from marl.league.teams import TeamGame, TeamView, make_team_env

LEARNERS_DIR = "learners"
"""Folder (in the league folder) of the learners' round checkpoints."""
SNAPSHOTS_DIR = "snapshots"
"""Folder (in the league folder) of the snapshots' weights."""


def snapshot_name(learner: str, updates: int) -> str:
    """The player name of `learner`'s snapshot after `updates` updates."""
    return f"{learner}@{updates}"


def mean_stats(stats: list[dict[str, float]]) -> dict[str, float]:
    """Each stat's mean over the updates that reported it (NaNs left out)."""
    keys = sorted({k for s in stats for k in s})
    out = {}
    for key in keys:
        values = [s[key] for s in stats if key in s and not math.isnan(s[key])]
        out[key] = sum(values) / len(values) if values else math.nan
    return out


class LeagueLearner:
    """One learner of a league, with its round checkpoint and its snapshots."""

    def __init__(self, entry: PlayerEntry, game: Any, out_dir: str | Path):
        """Build the learner `entry` describes for `game` (OpenSpiel game or TeamGame)."""
        spec = entry.spec
        self.entry, self.out_dir = entry, Path(out_dir)
        self.path = self.out_dir / LEARNERS_DIR / f"{entry.name}.pt"
        self.algo = getattr(spec, "algo", "alphazero")
        self.config = make_config(self.algo, spec.config)
        self.team = getattr(spec, "team", "")
        self.view: TeamView | None = None
        if isinstance(game, TeamGame):  # it learns one team, against the league's players
            self.env_id = game.env_id
            backend = getattr(self.config, "backend", "sync")
            env = make_team_env(game.env_id, num_envs(self.config), game.kwargs, backend)
            self.view = TeamView(env, self.team)
            env_spec = team_spec(game, self.team, backend)
        else:  # a board game: it learns by self-play on its rules (batched where marl has them)
            self.env_id, env_kwargs = alphazero_env(game)
            env_spec = vec_spec(self.env_id, **env_kwargs)
        self.trainer = local_trainer(self.algo, env_spec, self.config, spec.seed, env=self.view)
        self.learner = self.trainer.learner
        self.rounds_trained = 0
        self.updates = 0

    @property
    def name(self) -> str:
        """The learner's player name."""
        return self.entry.name

    def start(self, store: LeagueStore) -> None:
        """Resume from the learner's checkpoint, or write it now (the round-0 weights)."""
        if not self.path.exists():
            self.save(None)
            return
        record = load_checkpoint(
            self.path, env_id=self.env_id, algo=self.algo, needs=("learner", "progress", "league")
        )
        state = {"learner": record["learner"], **record["progress"]}
        load_state(self.trainer.load_state_dict, state, self.path, f"{self.algo} on {self.env_id}")
        league = record["league"]
        self.rounds_trained, self.updates = int(league["rounds_trained"]), int(league["updates"])
        if league["last"] is not None:  # the store may have missed it if killed right after
            store.record_training(TrainingRow(**league["last"]))

    def playing_entry(self) -> PlayerEntry:
        """The learner as a frozen player: its weights as of its latest round checkpoint."""
        return with_checkpoint(self.entry, str(self.path))

    def train_round(self, round_: int, opponents: list[Any], store: LeagueStore) -> TrainingRow:
        """Run the round's updates (snapshots on the way), checkpoint, record the round."""
        spec, start, stats = self.entry.spec, time.perf_counter(), []
        if self.view is not None and not opponents:
            raise PlayerError(f"learner {self.name!r} has no opponent in round {round_}")
        for k in range(spec.iterations_per_round):
            if self.view is not None:
                self.view.opponent = opponents[k % len(opponents)]
            stats.append(self.trainer.iterate())
            self.updates += 1
            if spec.snapshot_every and self.updates % spec.snapshot_every == 0:
                self.snapshot(store, round_)
        row = TrainingRow(
            self.name, round_, self.updates, int(self.learner.env_steps),
            time.perf_counter() - start, mean_stats(stats), store.run_number(),
        )  # fmt: skip
        self.rounds_trained = round_ + 1
        self.save(row)
        store.record_training(row)
        return row

    def snapshot(self, store: LeagueStore, round_: int) -> bool:
        """Add the current weights as a snapshot player; False if it was already added."""
        name = snapshot_name(self.name, self.updates)
        relative = f"{SNAPSHOTS_DIR}/{name}.pt"
        row = SnapshotRow(name, self.name, self.updates, round_, self.algo, self.team, relative)
        league = {"name": name, "lineage": self.name, "team": self.team, "updates": self.updates}

        def write() -> None:
            save_checkpoint(
                self.out_dir / relative, algo=self.algo, env_id=self.env_id,
                config=config_to_dict(self.config), learner={"weights": self.learner.weights()},
                league=league,
            )  # fmt: skip

        return store.add_snapshot(row, write)

    def close(self) -> None:
        """Stop the learner's workers and close its env."""
        self.trainer.close()

    def save(self, last: TrainingRow | None) -> None:
        """Write the learner's whole state and league counters atomically."""
        league = {
            "name": self.name,
            "team": self.team,
            "rounds_trained": self.rounds_trained,
            "updates": self.updates,
            "last": dataclasses.asdict(last) if last is not None else None,
        }
        state = self.trainer.state_dict()
        save_checkpoint(
            self.path, algo=self.algo, env_id=self.env_id, config=config_to_dict(self.config),
            learner=state["learner"], progress={"iteration": state["iteration"]}, league=league,
        )  # fmt: skip
