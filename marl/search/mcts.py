"""Batched PUCT search: B trees advance together, one evaluator call per simulation step.

Each simulation (1) walks every tree from its root by PUCT until it leaves the tree or hits a
finished game, (2) plays the chosen moves to make the new leaves, (3) evaluates all new
non-terminal leaves in ONE call, and (4) backs the values up all paths with one scatter-add.
Only the walk loops in Python, over depth; nothing loops over the B trees.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from marl.search import gumbel
from marl.search.config import SearchConfig, SearchResult
from marl.search.evaluator import Evaluator
from marl.search.game import BatchedGame
from marl.search.tree import (
    Tree,
    add_nodes,
    children_stats,
    clear_rows,
    empty_tree,
    put,
    read,
    reroot,
    root_child_stats,
    root_value,
    row_starts,
    set_roots,
    take,
)


def puct_scores(
    prior: Tensor, legal: Tensor, child_visits: Tensor, child_values: Tensor, parent_visits: Tensor,
    c_puct: float, fpu: float = 0.0, bounds: tuple[Tensor, Tensor] | None = None,
) -> Tensor:  # fmt: skip
    """[B, A] PUCT scores, -inf on illegal moves; `child_values` are value sums (mover's view).

    With `bounds` ([B] lowest and highest Q in each tree), visited moves' Q is min-max scaled
    to [0, 1] (left as is while a tree has seen only one value), as MuZero does."""
    q = child_values / child_visits.clamp(min=1)
    if bounds is not None:
        low, high = bounds[0][:, None], bounds[1][:, None]
        q = torch.where(high > low, (q - low) / (high - low).clamp(min=1e-12), q)
    q = torch.where(child_visits > 0, q, fpu)
    u = c_puct * prior * parent_visits.sqrt()[:, None] / (1.0 + child_visits)
    return torch.where(legal, q + u, float("-inf"))


def forced_visits(prior: Tensor, parent_visits: Tensor, k: float) -> Tensor:
    """[B, A] sqrt(k * P * N): the visits forced playouts give each root move."""
    return (k * prior * parent_visits[:, None]).sqrt()


def prune_forced(
    prior: Tensor, legal: Tensor, child_visits: Tensor, child_values: Tensor,
    parent_visits: Tensor, c_puct: float, k: float, fpu: float = 0.0,
) -> Tensor:  # fmt: skip
    """[B, A] root visit counts for the policy target after policy target pruning (Wu 2019).

    The most visited move keeps its visits. Every other move gives back up to its forced
    visits, but only as many as keep its PUCT score below the best move's; a move left with
    one visit or fewer drops to 0."""
    scores = puct_scores(prior, legal, child_visits, child_values, parent_visits, c_puct, fpu)
    best = child_visits.argmax(dim=1, keepdim=True)
    gap = scores.gather(1, best) - child_values / child_visits.clamp(min=1)
    exploration = c_puct * prior * parent_visits.sqrt()[:, None]
    # the fewest visits n with q + exploration / (1 + n) < the best move's score
    needed = torch.where(gap > 0, (exploration / gap.clamp(min=1e-12) - 1).floor() + 1, 1e9)
    floor = (child_visits - forced_visits(prior, parent_visits, k)).ceil().clamp(min=0)
    pruned = torch.minimum(torch.maximum(floor, needed), child_visits)
    pruned = torch.where(pruned <= 1, 0.0, pruned)
    return pruned.scatter(1, best, child_visits.gather(1, best))


def dirichlet_noise(rng: np.random.Generator, legal: Tensor, alpha: float) -> Tensor:
    """[B, A] Dirichlet(alpha) samples over each row's legal moves (0 elsewhere)."""
    gamma = torch.as_tensor(rng.gamma(alpha, size=tuple(legal.shape)), dtype=torch.float32)
    gamma = gamma.to(legal.device) * legal
    return gamma / gamma.sum(-1, keepdim=True).clamp(min=1e-12)


def select_action(visit_counts: Tensor, temperature: float, rng: np.random.Generator) -> Tensor:
    """[B] moves: argmax of visits at temperature 0, else sampled with p ~ N^(1/T)."""
    if temperature <= 0.0:
        return visit_counts.argmax(dim=1)
    counts = visit_counts.double().cpu().numpy()
    with np.errstate(over="ignore"):
        weights = counts ** (1.0 / temperature)
    huge = ~np.isfinite(weights).all(axis=1)
    if huge.any():  # a low temperature overflowed: the same ratios, each row over its largest
        scaled = counts[huge] / counts[huge].max(axis=1, keepdims=True)
        weights[huge] = scaled ** (1.0 / temperature)
    probs = weights / weights.sum(axis=1, keepdims=True)
    uniforms = rng.random(len(probs))[:, None]
    choice = (probs.cumsum(axis=1) < uniforms).sum(axis=1)
    choice = np.minimum(choice, probs.shape[1] - 1)
    return torch.as_tensor(choice, device=visit_counts.device)


class Walk(NamedTuple):
    """Where each tree's selection walk ended."""

    path: Tensor  # [B, D] nodes visited from the root (dummy index past the walk's end)
    parent: Tensor  # [B] last node inside the tree
    action: Tensor  # [B] move chosen there
    child: Tensor  # [B] existing terminal child, or -1 where a new node is to be made


def q_bounds(tree: Tree) -> tuple[Tensor, Tensor]:
    """([B] lowest, [B] highest) mean action value over each tree's visited non-root nodes.

    Only meaningful where all those values are from one player's view (single-agent search),
    which is where MuZero normalises."""
    seen = (tree.visits > 0) & (tree.parent >= 0)
    q = tree.value_sum / tree.visits.clamp(min=1)
    low = q.masked_fill(~seen, float("inf")).min(1).values
    high = q.masked_fill(~seen, float("-inf")).max(1).values
    return low, high


def select(tree: Tree, config: SearchConfig, root_actions: Tensor | None = None) -> Walk:
    """Walk all trees down by PUCT (the root move may be forced) to a new or terminal node."""
    rows = torch.arange(tree.batch, device=tree.visits.device)
    bounds = q_bounds(tree) if config.normalize_q else None
    node = torch.zeros_like(rows)
    active = torch.ones_like(rows, dtype=torch.bool)
    path, parent, action, child = [node], node, torch.zeros_like(node), torch.full_like(node, -1)
    first = row_starts(tree)
    while True:
        at = first + node
        children = read(tree.children, at)
        visits, values = children_stats(tree, children)
        prior, legal = read(tree.prior, at), read(tree.legal, at)
        parent_visits = read(tree.visits, at)
        scores = puct_scores(prior, legal, visits, values, parent_visits, config.c_puct,
                             config.fpu, bounds)  # fmt: skip
        if config.forced_playouts > 0 and len(path) == 1:  # the root: forced moves first
            forced = visits < forced_visits(prior, parent_visits, config.forced_playouts)
            scores = torch.where(forced & legal, scores + 1e6, scores)
        move = scores.argmax(dim=1)
        if root_actions is not None and len(path) == 1:
            move = root_actions
        nxt = children.gather(1, move[:, None])[:, 0]
        stop = active & ((nxt < 0) | read(tree.terminal, first + nxt.clamp(min=0)))
        parent = torch.where(stop, node, parent)
        action = torch.where(stop, move, action)
        child = torch.where(stop, nxt, child)
        active = active & ~stop
        node = torch.where(active, nxt, node)
        path.append(torch.where(active, nxt, tree.capacity))
        if not active.any():
            return Walk(torch.stack(path, dim=1), parent, action, child)


def path_returns(
    tree: Tree, path: Tensor, value: Tensor, value_player: Tensor, discount: float = 1.0
) -> Tensor:
    """[B, D] the action value of each node on `path`, from `value_player`'s view.

    The last node's is its reward plus `discount` times the leaf `value`; each node above
    adds its own reward to `discount` times the one below (rewards count for the player who
    earned them: negated where that is `value_player`'s opponent). Dummy entries of `path`
    (index `capacity`) are skipped and carry the return below them unchanged.
    """
    sign = torch.where(tree.player.gather(1, path) == value_player[:, None], 1.0, -1.0)
    reward = tree.reward.gather(1, path) * sign
    valid = path != tree.capacity
    returns = torch.empty_like(reward)
    below = value
    for depth in range(path.shape[1] - 1, -1, -1):
        below = torch.where(valid[:, depth], reward[:, depth] + discount * below, below)
        returns[:, depth] = below
    return returns


def backup(
    tree: Tree, path: Tensor, value: Tensor, value_player: Tensor, discount: float = 1.0
) -> None:
    """Add each node's action value on `path` to its value sum, from the node's player's view.

    `value` is the leaf's value from `value_player`'s view. Without rewards and at discount
    1 every node gets `value` itself (negated for the other player): AlphaZero's backup."""
    sign = torch.where(tree.player.gather(1, path) == value_player[:, None], 1.0, -1.0)
    valid = (path != tree.capacity).float()
    if discount == 1.0 and not bool(tree.reward.gather(1, path).any()):  # rules: no rewards
        returns = value[:, None]
    else:
        returns = path_returns(tree, path, value, value_player, discount)
    tree.value_sum.scatter_add_(1, path, sign * returns * valid)
    tree.visits.scatter_add_(1, path, valid)


def simulate(
    tree: Tree, game: BatchedGame, evaluator: Evaluator, config: SearchConfig,
    root_actions: Tensor | None = None,
) -> None:  # fmt: skip
    """One simulation in every tree: select, expand (one evaluator call), back up."""
    walk = select(tree, config, root_actions)
    first = row_starts(tree)
    new = (walk.child < 0).nonzero()[:, 0]
    leaf = walk.child.clone()
    value = read(tree.terminal_value, first + walk.child.clamp(min=0))
    if new.numel() > 0:
        parents = take(tree.states, new, walk.parent[new])
        states = game.play(parents, walk.action[new], check=False)
        node, new_value = add_nodes(
            tree, game, evaluator, new, states, walk.parent[new], walk.action[new]
        )
        leaf[new] = node
        value[new] = new_value
        tree.children[new, walk.parent[new], walk.action[new]] = node
    path = torch.cat([walk.path, leaf[:, None]], dim=1)
    backup(tree, path, value, read(tree.player, first + leaf), config.discount)


def run_search(
    tree: Tree, game: BatchedGame, evaluator: Evaluator, config: SearchConfig,
    rng: np.random.Generator,
) -> SearchResult:  # fmt: skip
    """Run `config.simulations` simulations in all trees (roots must already be set)."""
    if config.gumbel:
        step = functools.partial(simulate, tree, game, evaluator, config)
        return gumbel.gumbel_search(tree, config, rng, lambda actions: step(root_actions=actions))
    raw_prior = tree.prior[:, 0].clone()
    if config.dirichlet_fraction > 0:
        noise = dirichlet_noise(rng, tree.legal[:, 0], config.dirichlet_alpha)
        eps = config.dirichlet_fraction
        tree.prior[:, 0] = (1 - eps) * raw_prior + eps * noise
    for _ in range(config.simulations):
        simulate(tree, game, evaluator, config)
    counts, values = root_child_stats(tree)
    targets = counts
    if config.forced_playouts > 0:
        targets = prune_forced(tree.prior[:, 0], tree.legal[:, 0], counts, values,
                               tree.visits[:, 0], config.c_puct, config.forced_playouts,
                               config.fpu)  # fmt: skip
    tree.prior[:, 0] = raw_prior
    policy = targets / targets.sum(1, keepdim=True).clamp(min=1)
    return SearchResult(counts, policy, root_value(tree), None)


class MCTS:
    """B search trees over one game, with subtree reuse between moves."""

    def __init__(
        self, game: BatchedGame, evaluator: Evaluator, config: SearchConfig,
        device: torch.device | str = "cpu",
    ) -> None:  # fmt: skip
        config.validate()
        self.game, self.evaluator, self.config = game, evaluator, config
        self.device = torch.device(device)
        self.capacity = 2 * config.simulations + 2
        self.tree: Tree | None = None

    def reset(self, states: Any) -> None:
        """Start fresh trees at `states` (B positions)."""
        self.tree = empty_tree(self.game, states, self.capacity, self.device)
        rows = torch.arange(len(states), device=self.device)
        set_roots(self.tree, self.game, self.evaluator, rows, states)

    def search(self, rng: np.random.Generator) -> SearchResult:
        """Search all trees from their current roots."""
        if self.tree is None or not bool((self.tree.num_nodes > 0).all()):
            raise RuntimeError("call MCTS.reset(states) before search (some trees have no root)")
        return run_search(self.tree, self.game, self.evaluator, self.config, rng)

    def root_states(self) -> Any:
        """The B root positions."""
        rows = torch.arange(self.tree.batch, device=self.device)
        return take(self.tree.states, rows, torch.zeros_like(rows))

    def advance(
        self, actions: Tensor, new_games: Callable[[int], Any] | None = None
    ) -> tuple[Any, Tensor, Tensor]:
        """Play `actions` [B] at the roots; return (next positions, terminal [B], returns [B, 2]).

        Trees keep the subtree below the move (when `reuse_tree`). Trees whose game just ended
        restart at `new_games(k)` (k fresh positions); without it they are left empty and must
        be `reset` before the next search.
        """
        tree, game = self.tree, self.game
        actions = actions.to(self.device)
        next_states = game.play(self.root_states(), actions)
        terminal, returns = game.outcome(next_states)
        limit = self.capacity - self.config.simulations - 1 if self.config.reuse_tree else 0
        empty = reroot(tree, actions, max_nodes=limit)
        finished = terminal.nonzero()[:, 0]
        clear_rows(tree, finished)
        roots = next_states
        if new_games is not None and finished.numel() > 0:
            roots = (
                next_states.copy() if isinstance(next_states, np.ndarray) else next_states.clone()
            )
            put(roots, (finished,), new_games(finished.numel()))
        restart = (torch.zeros_like(terminal).index_fill(0, empty, True)) & ~terminal
        if new_games is not None:
            restart |= terminal
        rows = restart.nonzero()[:, 0]
        set_roots(tree, game, self.evaluator, rows, take(roots, rows))
        return next_states, terminal, returns
