"""Search-backed players: act on a batch of positions (leagues) or on VecEnv arrays (eval)."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from marl.search.config import SearchConfig
from marl.search.evaluator import NetEvaluator
from marl.search.game import SelfPlayGame
from marl.search.mcts import MCTS, select_action


class AlphaZeroPlayer:
    """Chooses moves for B positions at once by a fresh batched search on a policy/value net."""

    def __init__(
        self,
        net: nn.Module,
        simulations: int,
        game: SelfPlayGame,
        search: SearchConfig | None = None,
        temperature: float = 0.0,
        device: torch.device | str = "cpu",
        torch_compile: bool = False,
    ):
        base = search or SearchConfig()
        self.search = dataclasses.replace(base, simulations=simulations)
        self.net, self.game = net, game
        self.temperature, self.device = temperature, torch.device(device)
        self.evaluator = NetEvaluator(net, torch_compile)

    def act_batch(self, boards: Any, rng: np.random.Generator | None = None) -> Tensor:
        """[B] moves for unfinished positions `boards` (a board tensor, or OpenSpiel states);
        `rng` is needed for temperature > 0."""
        if rng is None:
            if self.temperature > 0 or self.search.gumbel or self.search.dirichlet_fraction > 0:
                raise ValueError("this player draws random numbers: pass rng=np.random.Generator")
            rng = np.random.default_rng(0)  # never drawn from when the search is deterministic
        mcts = MCTS(self.game, self.evaluator, self.search, self.device)
        mcts.reset(boards.to(self.device) if isinstance(boards, Tensor) else boards)
        result = mcts.search(rng)
        if result.action is not None:
            return result.action.cpu()
        return select_action(result.visit_counts, self.temperature, rng).cpu()


class SearchPolicy:
    """`marl.core.learner.Policy` for turn-based VecEnv arrays: the acting agent searches."""

    def __init__(self, player: AlphaZeroPlayer, rng: np.random.Generator):
        self.player, self.rng = player, rng

    def act(self, obs: Any, action_mask: Any, *, greedy: bool = True) -> np.ndarray:
        """obs [B, N, O], action_mask [B, N, A] -> actions [B, N] (0 where an agent cannot act)."""
        game = self.player.game
        if not hasattr(game, "from_observation"):
            raise NotImplementedError(
                f"{game.name}: an OpenSpiel position cannot be rebuilt from its observation; "
                "evaluate with `marl eval` (games against pyspiel.MCTSBot) or in a league"
            )
        obs = torch.as_tensor(np.asarray(obs), dtype=torch.float32)
        mask = torch.as_tensor(np.asarray(action_mask)).bool()
        b, n = mask.shape[:2]
        actions = torch.zeros(b * n, dtype=torch.long)
        acting = mask.flatten(0, 1).any(1).nonzero()[:, 0]
        if acting.numel() > 0:
            boards = game.from_observation(obs.flatten(0, 1)[acting])
            temperature = self.player.temperature
            self.player.temperature = 0.0 if greedy else max(temperature, 1.0)
            try:
                actions[acting] = self.player.act_batch(boards, self.rng)
            finally:
                self.player.temperature = temperature
        return actions.view(b, n).numpy()
