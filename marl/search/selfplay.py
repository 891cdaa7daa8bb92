"""B games of self-play advancing together, each move chosen by one batched search.

Two KataGo-style knobs (`SelfPlayTargets`) say which moves are trained on and what value
they learn: playout cap randomization gives most moves a cheap search that only plays the
move, and a seeded fraction the full search whose result becomes a training target; the
value target can mix the game's outcome with the search's root value.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from marl.core.config import ConfigError
from marl.search.config import SearchConfig, SearchResult
from marl.search.evaluator import Evaluator
from marl.search.game import SelfPlayGame
from marl.search.mcts import MCTS, run_search, select_action
from marl.search.replay import Batch


@dataclass(frozen=True)
class SelfPlayTargets:
    """Which self-play moves become training samples, and the value they are trained to."""

    full_search_fraction: float = 1.0
    """Share of moves searched with the full `search.simulations` and trained on (playout
    cap randomization, Wu 2019); the others get `cheap_simulations`, no root noise, and are
    played but not trained on. 1 searches every move fully (plain AlphaZero)."""
    cheap_simulations: int = 16
    """Simulations of a cheap search (used only when `full_search_fraction` < 1)."""
    value_target_mix: float = 0.0
    """Value target = (1 - mix) * game outcome + mix * the search's root value (0: outcome)."""

    def validate(self, simulations: int | None = None) -> None:
        """Refuse settings that cannot run (beside a full search of `simulations`, if given)."""
        if not 0.0 < self.full_search_fraction <= 1.0:
            raise ConfigError(
                f"full_search_fraction={self.full_search_fraction}: expected a share in (0, 1]"
            )
        top = simulations if simulations is not None and self.full_search_fraction < 1 else None
        if self.cheap_simulations < 1 or (top is not None and self.cheap_simulations > top):
            raise ConfigError(
                f"cheap_simulations={self.cheap_simulations}: expected 1..{top or 'simulations'} "
                "(at most the full search's simulations)"
            )
        if not 0.0 <= self.value_target_mix <= 1.0:
            raise ConfigError(f"value_target_mix={self.value_target_mix}: expected 0..1")


def value_targets(outcome: Tensor, root_value: Tensor, mix: float) -> Tensor:
    """(1 - mix) * outcome + mix * root_value, both from the side to move's view."""
    return outcome if mix == 0.0 else (1.0 - mix) * outcome + mix * root_value


class Finished(NamedTuple):
    """Games that ended during one self-play move, and the samples they produced."""

    samples: Batch  # every position of the finished games, valued by the final result
    returns: Tensor  # [G, 2] each finished game's result for the first and second player
    lengths: Tensor  # [G] moves each finished game took


class SelfPlay:
    """Keeps B games going: search, record (obs, policy, player), move, restart finished games."""

    def __init__(
        self,
        game: SelfPlayGame,
        evaluator: Evaluator,
        search: SearchConfig,
        num_games: int,
        temperature: float = 1.0,
        temperature_moves: int = 10,
        device: torch.device | str = "cpu",
        targets: SelfPlayTargets = SelfPlayTargets(),
    ):
        targets.validate(search.simulations)
        self.game, self.search_config, self.targets = game, search, targets
        self.cheap_search = dataclasses.replace(
            search,
            simulations=targets.cheap_simulations,
            dirichlet_fraction=0.0,
            forced_playouts=0.0,
        )
        self.temperature, self.temperature_moves = temperature, temperature_moves
        self.mcts = MCTS(game, evaluator, search, device)
        self.mcts.reset(game.initial(num_games, device))
        horizon = game.max_moves
        self.obs = torch.zeros(num_games, horizon, *game.obs_shape, device=device)
        self.policy = torch.zeros(num_games, horizon, game.num_actions, device=device)
        self.player = torch.zeros(num_games, horizon, dtype=torch.long, device=device)
        self.root_value = torch.zeros(num_games, horizon, device=device)
        self.trained = torch.zeros(num_games, horizon, dtype=torch.bool, device=device)
        self.full_searches = 0  # search steps run with the full budget (the rest were cheap)
        self.length = torch.zeros(num_games, dtype=torch.long, device=device)

    def step(self, rng: np.random.Generator) -> Finished:
        """One move in every game; return the games that ended with it."""
        game, rows = self.game, torch.arange(len(self.length), device=self.length.device)
        states = self.mcts.root_states()
        full = self._full_search(rng)
        result = self.mcts.search(rng) if full else self._cheap_search(rng)
        self.obs[rows, self.length] = game.observe(states)
        self.policy[rows, self.length] = result.policy
        self.player[rows, self.length] = game.to_play(states)
        self.root_value[rows, self.length] = result.root_value.to(self.root_value.device)
        self.trained[rows, self.length] = full
        if result.action is not None:
            actions = result.action
        else:
            explore = self.length < self.temperature_moves
            sampled = select_action(result.visit_counts, self.temperature, rng)
            actions = torch.where(explore, sampled, result.visit_counts.argmax(1))
        self.length += 1
        _, terminal, returns = self.mcts.advance(
            actions, new_games=lambda k: game.initial(k, self.length.device)
        )
        finished = self._collect(terminal, returns)
        self.length[terminal] = 0
        return finished

    def _full_search(self, rng: np.random.Generator) -> bool:
        """Whether this move's search (all B games at once, so it stays one batch) is full;
        draws from `rng` only when playout caps are on, so plain runs keep their stream."""
        fraction = self.targets.full_search_fraction
        full = fraction >= 1.0 or bool(rng.random() < fraction)
        self.full_searches += full
        return full

    def _cheap_search(self, rng: np.random.Generator) -> SearchResult:
        """A search of `cheap_simulations` without root noise on the same (reused) trees."""
        mcts = self.mcts
        return run_search(mcts.tree, self.game, mcts.evaluator, self.cheap_search, rng)

    def _collect(self, terminal: Tensor, returns: Tensor) -> Finished:
        steps = torch.arange(self.obs.shape[1], device=terminal.device)
        mask = terminal[:, None] & (steps[None] < self.length[:, None])  # [B, T]
        mask &= self.trained  # cheap-search moves were played, not trained on
        outcome = returns.gather(1, self.player)  # [B, T] result for the player who moved
        value = value_targets(outcome.float(), self.root_value, self.targets.value_target_mix)
        samples = Batch(self.obs[mask], self.policy[mask], value[mask])
        return Finished(samples, returns[terminal], self.length[terminal].clone())
