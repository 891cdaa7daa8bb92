"""B games of self-play advancing together, each move chosen by one batched search."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from marl.search.config import SearchConfig
from marl.search.evaluator import Evaluator
from marl.search.game import SelfPlayGame
from marl.search.mcts import MCTS, select_action
from marl.search.replay import Batch


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
    ):
        self.game, self.search_config = game, search
        self.temperature, self.temperature_moves = temperature, temperature_moves
        self.mcts = MCTS(game, evaluator, search, device)
        self.mcts.reset(game.initial(num_games, device))
        horizon = game.max_moves
        self.obs = torch.zeros(num_games, horizon, *game.obs_shape, device=device)
        self.policy = torch.zeros(num_games, horizon, game.num_actions, device=device)
        self.player = torch.zeros(num_games, horizon, dtype=torch.long, device=device)
        self.length = torch.zeros(num_games, dtype=torch.long, device=device)

    def step(self, rng: np.random.Generator) -> Finished:
        """One move in every game; return the games that ended with it."""
        game, rows = self.game, torch.arange(len(self.length), device=self.length.device)
        states = self.mcts.root_states()
        result = self.mcts.search(rng)
        self.obs[rows, self.length] = game.observe(states)
        self.policy[rows, self.length] = result.policy
        self.player[rows, self.length] = game.to_play(states)
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

    def _collect(self, terminal: Tensor, returns: Tensor) -> Finished:
        steps = torch.arange(self.obs.shape[1], device=terminal.device)
        mask = terminal[:, None] & (steps[None] < self.length[:, None])  # [B, T]
        outcome = returns.gather(1, self.player)  # [B, T] result for the player who moved
        samples = Batch(self.obs[mask], self.policy[mask], outcome[mask])
        return Finished(samples, returns[terminal], self.length[terminal].clone())
