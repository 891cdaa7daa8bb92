"""League players: one small protocol, the baselines, and adapters for learned policies.

A `Player` picks one legal action for each of B positions at once (a `PositionBatch`: the
OpenSpiel states, for search players, and the observation/mask arrays, for networks). Each
position comes with its own `np.random.Generator`, so a game's moves depend only on that
game's seed and not on which other games shared the batch: a resumed league replays an
unfinished game exactly as an uninterrupted run would have.

Kinds named in a league TOML: `random` and `mcts` (OpenSpiel's C++ MCTSBot with random
rollouts) work now; `alphazero` and `ppo` are part of the schema and answer "not available
yet" until their learners land (they will come in through `PolicyPlayer` or a search
player built on `marl.search`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import numpy as np
import pyspiel

if TYPE_CHECKING:  # importing marl.run.learner would load torch in every arena worker
    from marl.run.learner import Policy


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
class LearnerSpec:
    """A learned player: a checkpoint to play, or a training config to train in the league."""

    checkpoint: str = ""
    """Path of a checkpoint written by `marl train` (played frozen)."""
    config: str = ""
    """Path of a training config TOML (the league trains this learner between rounds)."""
    snapshot_every: int = 0
    """Add a frozen snapshot of the learner to the league every K updates (0: never)."""
    simulations: int = 0
    """Search simulations per move (AlphaZero only; 0: the checkpoint's own setting)."""
    greedy: bool = True
    """Play the most likely action instead of sampling (PPO only)."""


@dataclass(frozen=True)
class PlayerEntry:
    """One `[[players]]` table of a league TOML."""

    name: str
    """Unique player name (the key of every stored game)."""
    kind: str
    """random | mcts | alphazero | ppo."""
    spec: Any = field(default_factory=RandomSpec)
    """The kind's options (RandomSpec, MCTSSpec or LearnerSpec)."""


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
    """Adapts a `marl.run.learner.Policy` (PPO family) to the `Player` protocol.

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


def _not_available(what: str) -> Callable[[Any, PlayerEntry], Player]:
    def factory(game: Any, entry: PlayerEntry) -> Player:
        raise PlayerError(
            f"player {entry.name!r}: kind {entry.kind!r} is not available yet ({what}); "
            f"kinds that work now: {', '.join(k for k, v in KINDS.items() if v[1] is not None)}"
        )

    return factory


KINDS: dict[str, tuple[type, Callable[[Any, PlayerEntry], Player] | None]] = {
    "random": (RandomSpec, lambda game, entry: RandomPlayer()),
    "mcts": (MCTSSpec, lambda game, entry: MCTSPlayer(game, entry.spec)),
    "alphazero": (LearnerSpec, None),
    "ppo": (LearnerSpec, None),
}
"""Player kind -> (its spec dataclass, factory(game, entry) or None while not implemented)."""

_PENDING = {
    "alphazero": "AlphaZero players arrive with marl.search",
    "ppo": "PPO league players arrive with marl.learners.ppo",
}


def make_player(game: Any, entry: PlayerEntry) -> Player:
    """Build the player an entry describes, for an OpenSpiel `game`."""
    if entry.kind not in KINDS:
        from marl.run.config import closest

        near = closest(entry.kind, KINDS)
        hint = f"; did you mean {' or '.join(near)}?" if near else ""
        raise PlayerError(
            f"player {entry.name!r}: unknown kind {entry.kind!r}{hint} (kinds: {', '.join(KINDS)})"
        )
    factory = KINDS[entry.kind][1] or _not_available(_PENDING.get(entry.kind, "not implemented"))
    return factory(game, entry)
