"""`marl eval` and `marl train --eval-every` for MuZero runs (games against pyspiel.MCTSBot).

Kept apart from `marl.search.muzero` so that the learner need not import the players and
the strength harness that load it (`play.load_player` reads muzero checkpoints).
"""

from __future__ import annotations

import copy
from typing import Any

from marl.core.config import ConfigError
from marl.search.muzero import MuZeroLearner
from marl.search.play import load_player
from marl.search.strength import score_player, versus_mcts_bot


def score_learner(learner: MuZeroLearner, seed: int) -> dict[str, float]:
    """`eval/*` stats for `marl train --eval-every`: board games against MCTSBot(200)."""
    if not learner.two_player:
        raise ConfigError(
            "muzero's --eval-every plays board games against pyspiel.MCTSBot; "
            f"{learner.spec.env_id} is single-agent (its returns are logged)"
        )
    player = learner.player()
    player.net = copy.deepcopy(learner.net)  # games never touch the learner's own net
    return score_player(player, seed)


def evaluate(source: Any, *, episodes: int = 100, seed: int = 0) -> Any:
    """`marl eval` of a muzero run: a board game's run plays pyspiel.MCTSBot(1,000 rollouts)
    (colors alternating, as AlphaZero's); None for a single-agent run, whose evaluation is
    the usual greedy returns."""
    try:
        player = load_player(None, source)
    except ConfigError:  # a single-agent run has no board player
        return None
    return versus_mcts_bot(player, episodes, 1000, seed)
