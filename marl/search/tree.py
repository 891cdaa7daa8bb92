"""B search trees stored as arrays: node statistics [B, nodes], edges [B, nodes, A].

Node n of tree b holds the position reached by `action[b, n]` from `parent[b, n]`. Values are
kept from the view of `player[b, n]`, the player who moved INTO the node, so a parent reads its
child's mean value as its own action value (OpenSpiel's MCTS does the same). One extra column
at index `capacity` is a dummy node that stays empty: masked writes and missing children point
there, so no operation needs a Python branch per tree.

A node's `value_sum` accumulates action values from its `player`'s view: the reward of the
move into the node plus `discount` times the return after it (`mcts.backup`). Games' rules
give no rewards and search them at discount 1, so this is the plain mean value below the node;
MuZero's learned model (`marl.search.muzero_model`) predicts a reward for every move.

Positions live in a store indexed like the arrays: a tensor [B, nodes, ...] for games whose
positions are tensors, or a numpy object array [B, nodes] for games whose positions are Python
objects (OpenSpiel states).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch
from torch import Tensor

from marl.search.evaluator import Evaluator
from marl.search.game import BatchedGame

_FILL = {
    "visits": 0.0,
    "value_sum": 0.0,
    "player": 0,
    "to_play": 0,
    "prior": 0.0,
    "legal": False,
    "children": -1,
    "parent": -1,
    "action": -1,
    "terminal": False,
    "terminal_value": 0.0,
    "net_value": 0.0,
    "reward": 0.0,
}


@dataclass
class Tree:
    """Statistics of B trees of up to `capacity` nodes each (plus the dummy column)."""

    states: Any  # [B, C + 1, ...] positions (tensor or numpy object array)
    visits: Tensor  # [B, C + 1] float, simulations that passed through the node
    value_sum: Tensor  # [B, C + 1] float, summed values from `player`'s view
    player: Tensor  # [B, C + 1] long, the player who moved into the node
    to_play: Tensor  # [B, C + 1] long, the player to move at the node
    prior: Tensor  # [B, C + 1, A] float, the evaluator's priors for the node's moves
    legal: Tensor  # [B, C + 1, A] bool, legal moves (none at terminal nodes)
    children: Tensor  # [B, C + 1, A] long, child node index, -1 where not expanded
    parent: Tensor  # [B, C + 1] long, -1 at the root
    action: Tensor  # [B, C + 1] long, move from the parent, -1 at the root
    terminal: Tensor  # [B, C + 1] bool, the game is over at this node
    terminal_value: Tensor  # [B, C + 1] float, final result from `player`'s view
    net_value: Tensor  # [B, C + 1] float, the value the node was first given (the evaluator's,
    # or the result at a terminal node), from `player`'s view
    reward: Tensor  # [B, C + 1] float, reward of the move into the node, from `player`'s view
    # (always 0 for a game's rules; a learned model's dynamics predicts it)
    num_nodes: Tensor  # [B] long, nodes in use (node 0 is the root)

    @property
    def capacity(self) -> int:
        """Nodes per tree (the dummy column excluded)."""
        return self.visits.shape[1] - 1

    @property
    def batch(self) -> int:
        """B, the number of trees."""
        return self.visits.shape[0]

    def node_arrays(self) -> dict[str, Tensor]:
        """The per-node tensors by name (everything but `states` and `num_nodes`)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name in _FILL}


def node_index(tree: Tree, rows: Tensor, node: Tensor) -> Tensor:
    """[B] flat index of (rows, node) into the per-node arrays viewed as [B * (C + 1), ...].

    One `index_select`/`index_copy_` at a flat index costs about half of `array[rows, node]`
    (advanced indexing with two index tensors) on B = 64 trees, and the search does dozens a
    simulation."""
    return rows * tree.visits.shape[1] + node


def row_starts(tree: Tree) -> Tensor:
    """[B] flat index of each tree's node 0 (add a node number to reach that node)."""
    return torch.arange(tree.batch, device=tree.visits.device) * tree.visits.shape[1]


def read(array: Tensor, index: Tensor) -> Tensor:
    """array[rows, node] for `index = node_index(tree, rows, node)`."""
    return array.view(-1, *array.shape[2:]).index_select(0, index)


def write(array: Tensor, index: Tensor, values: Tensor) -> None:
    """array[rows, node] = values for `index = node_index(tree, rows, node)` (unique rows)."""
    array.view(-1, *array.shape[2:]).index_copy_(0, index, values.to(array.dtype))


def take(store: Any, *index: Tensor) -> Any:
    """store[index...] for a tensor or a numpy object array store."""
    if isinstance(store, np.ndarray):
        return store[tuple(i.cpu().numpy() for i in index)]
    return store[index]


def put(store: Any, index: tuple[Tensor, ...], values: Any) -> None:
    """store[index...] = values for a tensor or a numpy object array store."""
    if isinstance(store, np.ndarray):
        store[tuple(i.cpu().numpy() for i in index)] = values
    else:
        store[index] = values


def _new_store(states: Any, batch: int, slots: int) -> Any:
    if isinstance(states, np.ndarray):
        return np.empty((batch, slots), dtype=object)
    return torch.zeros((batch, slots, *states.shape[1:]), dtype=states.dtype, device=states.device)


def empty_tree(game: BatchedGame, example_states: Any, capacity: int, device: torch.device) -> Tree:
    """B empty trees (B = len(example_states)) with room for `capacity` nodes each."""
    b, slots, a = len(example_states), capacity + 1, game.num_actions
    shapes = {"prior": (b, slots, a), "legal": (b, slots, a), "children": (b, slots, a)}
    dtypes = {"player": torch.long, "to_play": torch.long, "children": torch.long}
    dtypes |= {"parent": torch.long, "action": torch.long, "legal": torch.bool}
    dtypes |= {"terminal": torch.bool}
    arrays = {
        name: torch.full(
            shapes.get(name, (b, slots)), fill, dtype=dtypes.get(name, torch.float32), device=device
        )
        for name, fill in _FILL.items()
    }
    store = _new_store(example_states, b, slots)
    return Tree(states=store, num_nodes=torch.zeros(b, dtype=torch.long, device=device), **arrays)


def add_nodes(
    tree: Tree,
    game: BatchedGame,
    evaluator: Evaluator,
    rows: Tensor,
    states: Any,
    parent: Tensor,
    action: Tensor,
) -> tuple[Tensor, Tensor]:
    """Append one evaluated node to each tree in `rows`; return (node index, value for `player`).

    A root (parent -1) gets `player` = the opponent of its side to move. Non-terminal nodes are
    evaluated in ONE evaluator call; terminal ones take their value from the game's result.
    A game with a `reward(states)` method (a learned model) gives each node the reward of the
    move into it, from the mover's view; a root gets none.
    """
    node = tree.num_nodes[rows]
    put(tree.states, (rows, node), states)
    terminal, returns = game.outcome(states)
    legal = game.legal_mask(states) & ~terminal[:, None]
    to_play = game.to_play(states).to(legal.device)
    is_root = parent < 0
    parent_to_play = read(tree.to_play, node_index(tree, rows, parent.clamp(min=0)))
    player = torch.where(is_root, 1 - to_play, parent_to_play)
    value = returns.to(legal.device).gather(1, player[:, None])[:, 0].float()
    prior = torch.zeros(legal.shape, device=legal.device)
    live = (~terminal).nonzero()[:, 0]
    if live.numel() > 0:
        obs = game.observe(take(states, live) if isinstance(states, np.ndarray) else states[live])
        live_prior, live_value = evaluator(obs, legal[live])
        prior[live] = live_prior.float()
        same = to_play[live] == player[live]
        value[live] = torch.where(same, live_value.float(), -live_value.float())
    writes = {"player": player, "to_play": to_play, "prior": prior, "legal": legal}
    writes |= {"parent": parent, "action": action, "terminal": terminal}
    writes |= {"terminal_value": torch.where(terminal, value, 0.0), "net_value": value}
    if hasattr(game, "reward"):
        writes["reward"] = torch.where(is_root, 0.0, game.reward(states).float())
    index = node_index(tree, rows, node)
    for name, values in writes.items():
        write(getattr(tree, name), index, values)
    tree.num_nodes[rows] += 1
    return node, value


def set_roots(
    tree: Tree, game: BatchedGame, evaluator: Evaluator, rows: Tensor, states: Any
) -> None:
    """Replace trees `rows` by fresh ones whose roots are `states` (evaluated, visited once)."""
    if rows.numel() == 0:
        return
    clear_rows(tree, rows)
    minus = torch.full_like(rows, -1)
    terminal, _ = game.outcome(states)
    if terminal.any():
        raise ValueError("cannot search from a finished game: a root position is terminal")
    node, value = add_nodes(tree, game, evaluator, rows, states, minus, minus)
    tree.visits[rows, node] = 1.0
    tree.value_sum[rows, node] = value


def clear_rows(tree: Tree, rows: Tensor) -> None:
    """Empty trees `rows` (all nodes back to their fill values)."""
    for name, array in tree.node_arrays().items():
        array[rows] = _FILL[name]
    tree.num_nodes[rows] = 0


def subtree_mask(parent: Tensor, top: Tensor) -> Tensor:
    """[B, C + 1] bool: node is `top[b]` or a descendant of it (False where top is -1)."""
    dummy = parent.shape[1] - 1
    nodes = torch.arange(parent.shape[1], device=parent.device)
    keep = (nodes[None] == top[:, None]) & (top[:, None] >= 0)
    ancestor = torch.where(parent >= 0, parent, dummy)
    ancestor[:, dummy] = dummy
    while True:  # pointer jumping: log2(depth) rounds
        keep = keep | keep.gather(1, ancestor)
        if (ancestor == dummy).all():
            return keep
        ancestor = ancestor.gather(1, ancestor)


def reroot(tree: Tree, actions: Tensor, max_nodes: int | None = None) -> Tensor:
    """Make each root's child along `actions` [B] the new root, keeping its subtree.

    Trees whose child was never expanded, or whose kept subtree exceeds `max_nodes`, become
    empty; their rows are returned so the caller can `set_roots` them.
    """
    rows = torch.arange(tree.batch, device=actions.device)
    top = tree.children[rows, 0, actions]
    keep = subtree_mask(tree.parent, top)
    kept = keep.sum(1)
    if max_nodes is not None:
        keep &= (kept <= max_nodes)[:, None]
    order = torch.sort((~keep).to(torch.int8), dim=1, stable=True).indices
    new_index = torch.where(keep, keep.long().cumsum(1) - 1, -1)
    dummy = tree.capacity
    new_index[:, dummy] = -1
    tree.states = take(tree.states, rows[:, None], order)
    for array in tree.node_arrays().values():
        idx = order.view(*order.shape, *([1] * (array.dim() - 2))).expand_as(array)
        array.copy_(array.gather(1, idx))
    moved = keep.gather(1, order)
    for name in ("children", "parent"):
        old = getattr(tree, name)
        remapped = new_index.gather(1, old.clamp(min=0).flatten(1)).view_as(old)
        old.copy_(torch.where(old >= 0, remapped, -1))
    for name, array in tree.node_arrays().items():
        mask = ~moved.view(*moved.shape, *([1] * (array.dim() - 2))).expand_as(array)
        array.masked_fill_(mask, _FILL[name])
    tree.parent[:, 0] = -1
    tree.action[:, 0] = -1
    tree.num_nodes.copy_(keep.sum(1))
    return (tree.num_nodes == 0).nonzero()[:, 0]


def child_stats(tree: Tree, rows: Tensor, node: Tensor) -> tuple[Tensor, Tensor]:
    """(visits [B, A], value sums [B, A]) of the children of `node` (zeros where unexpanded)."""
    return children_stats(tree, read(tree.children, node_index(tree, rows, node)))


def children_stats(tree: Tree, children: Tensor) -> tuple[Tensor, Tensor]:
    """(visits [B, A], value sums [B, A]) of the nodes `children` [B, A] (-1: unexpanded)."""
    idx = children.masked_fill(children < 0, tree.capacity)
    return tree.visits.gather(1, idx), tree.value_sum.gather(1, idx)


def root_child_stats(tree: Tree) -> tuple[Tensor, Tensor]:
    """(visits [B, A], value sums [B, A]) of the roots' children."""
    rows = torch.arange(tree.batch, device=tree.visits.device)
    return child_stats(tree, rows, torch.zeros_like(rows))


def root_visit_counts(tree: Tree) -> Tensor:
    """[B, A] visit counts of the roots' children."""
    return root_child_stats(tree)[0]


def root_value(tree: Tree) -> Tensor:
    """[B] mean root value from the view of the side to move at the root."""
    return -tree.value_sum[:, 0] / tree.visits[:, 0].clamp(min=1)


def root_net_value(tree: Tree) -> Tensor:
    """[B] the evaluator's own value of each root, from the view of the side to move there."""
    return -tree.net_value[:, 0]
