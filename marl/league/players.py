"""League players: one small protocol, the baselines, and adapters for learned policies.

A `Player` picks one legal action for each of B positions at once (a `PositionBatch`: the
OpenSpiel states, for search players, and the observation/mask arrays, for networks). Each
position comes with its own `np.random.Generator`, so a game's moves depend only on that
game's seed and not on which other games shared the batch: a resumed league replays an
unfinished game exactly as an uninterrupted run would have.

Kinds named in a league TOML: `random`, `mcts` (OpenSpiel's C++ MCTSBot with random
rollouts), `alphazero` (board games) and `ppo` (one team of a team env). A learned kind
without a `checkpoint` is a learner the league trains; its snapshots join as `snapshot`
players (marl.league.learned loads them; marl.league.teams plays team envs).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import numpy as np
import pyspiel

if TYPE_CHECKING:  # importing marl.core.learner would load torch in every arena worker
    from marl.core.learner import Policy


class PlayerError(ValueError):
    """A player that cannot be built or that broke the rules of the game."""


class PositionBatch(NamedTuple):
    """B positions to move in, each from the view of the player to move."""

    states: list[Any]  # B pyspiel.State (not to be modified by players)
    obs: np.ndarray  # [B, O] float32 observation tensor of the player to move
    action_mask: np.ndarray  # [B, A] bool legal actions
    to_move: np.ndarray  # [B] int seat (0 moves first) of the player to move


class Player(Protocol):
    """Anything that picks one legal action per position."""

    def act(self, batch: PositionBatch, rngs: Sequence[np.random.Generator]) -> np.ndarray:
        """[B] int actions, one legal action per position; row i draws only from rngs[i]."""
        ...


@dataclass(frozen=True)
class RandomSpec:
    """A uniformly random legal move."""


@dataclass(frozen=True)
class MCTSSpec:
    """OpenSpiel's C++ MCTS (UCT) with random-rollout leaf evaluation."""

    simulations: int = 100
    """Simulations per move."""
    rollouts: int = 1
    """Random rollouts per leaf evaluation."""
    uct_c: float = 2.0
    """UCT exploration constant."""
    solve: bool = True
    """Back up proven wins/losses (MCTS-Solver)."""
    max_memory_mb: int = 1000
    """Tree memory cap of one search."""

    def validate(self) -> None:
        """Refuse non-positive counts."""
        if self.simulations < 1 or self.rollouts < 1:
            raise PlayerError(f"mcts needs simulations >= 1 and rollouts >= 1, got {self}")


@dataclass(frozen=True)
class LearnedSpec:
    """What every learned player kind shares: a checkpoint to play, or training in the league."""

    checkpoint: str = ""
    """Checkpoint to play frozen (alphazero: from `marl train` or a league; ppo: a league
    snapshot or learner file); empty: a learner the league trains."""
    iterations_per_round: int = 4
    """Learner iterations (updates) after each round's games."""
    snapshot_every: int = 8
    """Add a frozen snapshot of the learner to the league every K updates (0: never)."""
    seed: int = 0
    """Seed of the learner (weights, self-play, sampling)."""
    config: dict[str, Any] = field(default_factory=dict)
    """The learner's config table ([players.config]), checked against its CONFIG."""

    def validate(self) -> None:
        """Refuse negative counts and a learner that never updates."""
        if self.iterations_per_round < 1 or self.snapshot_every < 0:
            raise PlayerError(
                f"iterations_per_round={self.iterations_per_round} (expected >= 1), "
                f"snapshot_every={self.snapshot_every} (expected >= 0)"
            )


@dataclass(frozen=True)
class AlphaZeroSpec(LearnedSpec):
    """An AlphaZero learner (marl.search.alphazero) on a board game the league plays."""

    simulations: int = 0
    """Search simulations per move in league games (0: the config's eval_simulations)."""


@dataclass(frozen=True)
class MuZeroSpec(AlphaZeroSpec):
    """A MuZero learner (marl.search.muzero) on a board game the league plays: it searches
    its learned model, not the game's rules."""

    algo: str = "muzero"
    """The algorithm its config is checked against (always muzero)."""


@dataclass(frozen=True)
class PPOSpec(LearnedSpec):
    """A learner controlling one team of a team env: any algorithm on the learner protocol
    (`marl train`'s names), the PPO family's `mappo` by default."""

    algo: str = "mappo"
    """The algorithm (and preset) the config starts from, e.g. mappo, ippo, iql, qlearning."""
    team: str = ""
    """The team it controls, e.g. adversary or agent in mpe/simple_tag-v3."""


@dataclass(frozen=True)
class SnapshotSpec:
    """A frozen learned player read from a checkpoint the league wrote (weights only)."""

    checkpoint: str
    """Path of the checkpoint."""
    algo: str
    """alphazero, or the PPO-family preset."""
    team: str = ""
    """Team of a PPO-family player ('' for board games)."""
    simulations: int = 0
    """Search simulations per move (AlphaZero; 0: the checkpoint's eval_simulations)."""


@dataclass(frozen=True)
class PlayerEntry:
    """One `[[players]]` table of a league TOML."""

    name: str
    """Unique player name (the key of every stored game)."""
    kind: str
    """random | mcts | alphazero | muzero | ppo | snapshot."""
    spec: Any = field(default_factory=RandomSpec)
    """The kind's options (its spec dataclass in KINDS)."""


class RandomPlayer:
    """Picks uniformly among legal actions."""

    def act(self, batch: PositionBatch, rngs: Sequence[np.random.Generator]) -> np.ndarray:
        """[B] uniformly random legal actions."""
        return np.array([rng.choice(np.flatnonzero(m)) for m, rng in zip(batch.action_mask, rngs)])


class MCTSPlayer:
    """`pyspiel.MCTSBot` with `pyspiel.RandomRolloutEvaluator`, seeded per move from rngs[i]."""

    def __init__(self, game: Any, spec: MCTSSpec) -> None:
        """Search `game` with the budget in `spec`."""
        self.game = game
        self.spec = spec

    def act(self, batch: PositionBatch, rngs: Sequence[np.random.Generator]) -> np.ndarray:
        """[B] actions chosen by a fresh search from each position."""
        actions = []
        for state, rng in zip(batch.states, rngs):
            seed = int(rng.integers(0, 2**31 - 1))
            evaluator = pyspiel.RandomRolloutEvaluator(self.spec.rollouts, seed)
            s = self.spec
            bot = pyspiel.MCTSBot(
                self.game, evaluator, s.uct_c, s.simulations, s.max_memory_mb, s.solve, seed, False
            )
            actions.append(bot.step(state))
        return np.array(actions, dtype=np.int64)


class PolicyPlayer:
    """Adapts a `marl.core.learner.Policy` (PPO family) to the `Player` protocol.

    The policy sees the mover's observation as a one-agent team: obs [B, 1, O] and mask
    [B, 1, A]. It acts greedily by default, which keeps games reproducible from their seeds.
    """

    def __init__(self, policy: Policy, greedy: bool = True) -> None:
        """Wrap `policy`."""
        self.policy = policy
        self.greedy = greedy

    def act(self, batch: PositionBatch, rngs: Sequence[np.random.Generator]) -> np.ndarray:
        """[B] actions of the wrapped policy."""
        actions = self.policy.act(
            batch.obs[:, None], batch.action_mask[:, None], greedy=self.greedy
        )
        return np.asarray(actions).reshape(len(batch.states)).astype(np.int64)


def is_learner(entry: PlayerEntry) -> bool:
    """Whether the league trains this player (a learned kind without a fixed checkpoint)."""
    return isinstance(entry.spec, LearnedSpec) and not entry.spec.checkpoint
