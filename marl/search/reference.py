"""A plain, one-tree PUCT search with node objects: the readable twin of `marl.search.mcts`.

It follows the same conventions (values kept from the view of the player who moved into a
node, unvisited moves worth `fpu`, ties to the lowest move, float32 statistics) so that tests
can check the batched search against it move for move. It is slow and not used for play.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from marl.search.evaluator import Evaluator
from marl.search.game import BatchedGame

F32 = np.float32


class Node:
    """One position in the tree."""

    def __init__(self, state: Any, player: int):
        self.state = state  # a batch of one position
        self.player = player  # who moved into this node
        self.children: dict[int, Node] = {}
        self.visits = F32(0.0)
        self.value_sum = F32(0.0)
        self.prior = np.zeros(0, dtype=F32)
        self.legal = np.zeros(0, dtype=bool)
        self.to_play = 0
        self.terminal = False
        self.terminal_value = F32(0.0)

    def q(self, fpu: float) -> np.float32:
        """Mean value from `player`'s view, or `fpu` before the first visit."""
        return self.value_sum / self.visits if self.visits > 0 else F32(fpu)


def _open(node: Node, game: BatchedGame, evaluator: Evaluator) -> np.float32:
    """Fill in a new node's rules and evaluation; return its value from `node.player`'s view."""
    terminal, returns = game.outcome(node.state)
    node.terminal = bool(terminal[0])
    node.to_play = int(game.to_play(node.state)[0])
    node.legal = (game.legal_mask(node.state)[0] & ~terminal[0]).cpu().numpy()
    if node.terminal:
        node.terminal_value = F32(float(returns[0, node.player]))
        node.prior = np.zeros(len(node.legal), dtype=F32)
        return node.terminal_value
    prior, value = evaluator(game.observe(node.state), torch.as_tensor(node.legal)[None])
    node.prior = prior[0].float().cpu().numpy().astype(F32)
    v = F32(float(value[0]))
    return v if node.to_play == node.player else -v


def _best_move(node: Node, c_puct: float, fpu: float) -> int:
    best, best_score = -1, -np.inf
    for a in np.flatnonzero(node.legal):
        child = node.children.get(int(a))
        visits = child.visits if child else F32(0.0)
        q = child.q(fpu) if child else F32(fpu)
        u = F32(c_puct) * node.prior[a] * np.sqrt(node.visits) / (F32(1.0) + visits)
        if q + u > best_score:  # strict: ties go to the lowest move, as torch.argmax does
            best, best_score = int(a), q + u
    return best


def reference_search(
    game: BatchedGame,
    evaluator: Evaluator,
    state: Any,
    simulations: int,
    c_puct: float,
    fpu: float = 0.0,
    root_noise: np.ndarray | None = None,
    noise_fraction: float = 0.0,
) -> tuple[np.ndarray, float]:
    """Search one position; return (root children's visit counts [A], root value for the mover)."""
    root = Node(state, player=-1)
    root.player = 1 - int(game.to_play(state)[0])
    root.value_sum = _open(root, game, evaluator)
    root.visits = F32(1.0)
    if root_noise is not None:
        eps = F32(noise_fraction)
        root.prior = (F32(1) - eps) * root.prior + eps * root_noise.astype(F32)
    for _ in range(simulations):
        node, path = root, [root]
        while True:
            a = _best_move(node, c_puct, fpu)
            child = node.children.get(a)
            if child is None:
                child = Node(game.play(node.state, torch.tensor([a]), check=False), node.to_play)
                node.children[a] = child
                value = _open(child, game, evaluator)
                path.append(child)
                break
            path.append(child)
            if child.terminal:
                value = child.terminal_value
                break
            node = child
        leaf_player = path[-1].player
        for n in path:
            n.visits += F32(1.0)
            n.value_sum += value if n.player == leaf_player else -value
    counts = np.zeros(len(root.legal), dtype=F32)
    for a, child in root.children.items():
        counts[a] = child.visits
    return counts, float(-root.value_sum / root.visits)
