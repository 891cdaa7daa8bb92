"""Playing strength of an AlphaZero player against OpenSpiel's C++ `pyspiel.MCTSBot`.

The bot searches with random-rollout evaluation (the classic MCTS baseline the issue names).
Games alternate colors: the player moves first in even-numbered games. Positions are kept
twice, as OpenSpiel states for the bot and as one batched board tensor for our player, which
moves in all games where it is to play with one batched search.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from marl.search.play import greedy_player, load_player
from marl.search.players import AlphaZeroPlayer


@dataclass(frozen=True)
class StrengthResult:
    """Wins, draws and losses of the player against the bot."""

    wins: int
    draws: int
    losses: int
    simulations: int
    """Simulations per move of our player."""
    bot_simulations: int
    """Random-rollout simulations per move of the bot."""
    wins_as_first: int = 0
    """Of the wins, those in games where our player moved first."""
    solve: bool = False
    """Whether the bot ran MCTS-Solver (proves won and lost subtrees)."""

    @property
    def games(self) -> int:
        """Games played."""
        return self.wins + self.draws + self.losses

    @property
    def score(self) -> float:
        """(wins + draws / 2) / games."""
        return (self.wins + 0.5 * self.draws) / max(self.games, 1)

    def summary(self) -> str:
        """One line, e.g. for `marl eval` or the benchmark."""
        solver = ", solve=True" if self.solve else ""
        return (
            f"vs pyspiel.MCTSBot({self.bot_simulations} random-rollout sims/move{solver}): "
            f"{self.wins} wins, {self.draws} draws, {self.losses} losses in {self.games} games "
            f"(colors alternating; {self.wins_as_first} of the wins moving first); "
            f"score {self.score:.0%} ({self.simulations} sims/move)"
        )


def rollout_bot(game: Any, simulations: int, seed: int, uct_c: float = 2.0, solve: bool = False):
    """OpenSpiel's C++ MCTS with one random rollout per leaf (1 GB tree cap; MCTS-Solver if
    `solve`), for `game` (a pyspiel game, or the name of one)."""
    import pyspiel

    game = pyspiel.load_game(game) if isinstance(game, str) else game
    evaluator = pyspiel.RandomRolloutEvaluator(1, seed)
    # arguments: game, evaluator, uct_c, max_simulations, max_memory_mb, solve, seed, verbose
    return game, pyspiel.MCTSBot(game, evaluator, uct_c, simulations, 1000, solve, seed, False)


def versus_mcts_bot(
    player: AlphaZeroPlayer, games: int, bot_simulations: int = 1000, seed: int = 0,
    solve: bool = False,
) -> StrengthResult:  # fmt: skip
    """Play `games` games against `pyspiel.MCTSBot` (colors alternating, MCTS-Solver on if
    `solve`); count the results."""
    if games < 1:
        raise ValueError(f"games={games}: expected at least 1")
    game = player.game
    # An OpenSpielGame searches OpenSpiel's states themselves; a LineGame keeps its own boards.
    spiel_game, bot = rollout_bot(getattr(game, "game", game.name), bot_simulations, seed,
                                  solve=solve)  # fmt: skip
    states = [spiel_game.new_initial_state() for _ in range(games)]
    boards = None if hasattr(game, "game") else game.initial(games)
    ours = [g % 2 for g in range(games)]  # our seat: first in even games, second in odd ones
    while True:
        live = [g for g, s in enumerate(states) if not s.is_terminal()]
        if not live:
            break
        mine = [g for g in live if states[g].current_player() == ours[g]]
        positions = game.positions([states[g] for g in mine]) if boards is None else boards[mine]
        moves = dict(zip(mine, player.act_batch(positions).tolist())) if mine else {}
        for g in live:
            move = moves[g] if g in moves else bot.step(states[g])
            states[g].apply_action(move)
            if boards is not None:
                boards[g : g + 1] = game.play(boards[g : g + 1], torch.tensor([move]))
    results = np.array([s.returns()[ours[g]] for g, s in enumerate(states)])
    return StrengthResult(
        int((results > 0).sum()), int((results == 0).sum()), int((results < 0).sum()),
        player.search.simulations, bot_simulations, int((results[0::2] > 0).sum()), solve,
    )  # fmt: skip


def score_learner(learner: Any, seed: int) -> dict[str, float]:
    """`eval/*` stats of an AlphaZero learner's current net (greedy, `eval_simulations`)
    against MCTSBot(`eval_bot_simulations`) over `eval_games` games: the strength curve."""
    cfg = learner.config
    net = copy.deepcopy(learner.net)  # the learner's own net stays in training mode
    player = greedy_player(net, learner.game, cfg)
    player.device = learner.device
    return score_player(player, seed, cfg.eval_games, cfg.eval_bot_simulations)


def score_player(
    player: Any, seed: int, games: int = 20, bot_simulations: int = 200
) -> dict[str, float]:
    """`eval/*` stats of a board-game search player against MCTSBot(`bot_simulations`) over
    `games` games, colors alternating."""
    result = versus_mcts_bot(player, games, bot_simulations, seed)
    games = result.games
    return {"eval/score": result.score, "eval/win_rate": result.wins / games,
            "eval/draw_rate": result.draws / games, "eval/wins": float(result.wins),
            "eval/games": float(games)}  # fmt: skip


def evaluate_checkpoint(
    checkpoint: str | Path,
    games: int = 100,
    simulations: int | None = None,
    bot_simulations: int = 1000,
    seed: int = 0,
    solve: bool = False,
) -> StrengthResult:
    """Strength of an alphazero checkpoint (or run dir) against the rollout MCTS bot."""
    player = load_player(None, checkpoint, simulations)
    return versus_mcts_bot(player, games, bot_simulations, seed, solve)


def evaluate(source: str | Path, *, episodes: int = 100, seed: int = 0) -> StrengthResult:
    """`marl eval` for alphazero: games vs pyspiel.MCTSBot(1,000 rollouts), colors alternating."""
    return evaluate_checkpoint(source, games=episodes, seed=seed)
