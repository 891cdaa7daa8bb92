"""The batched search over a learned model: rewards and discount in the backup, the sign flip
between players, MuZero's min-max Q normalisation, and the model as a searchable game."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from marl.core.seeding import seeded_init, torch_generator
from marl.search.config import SearchConfig
from marl.search.mcts import MCTS, backup, puct_scores, q_bounds
from marl.search.muzero_model import ModelGame, MuZeroEvaluator, MuZeroNet
from marl.search.tree import empty_tree, root_value


class _Shape:
    num_actions = 2


def _chain(players: list[int], rewards: list[float]):
    """A tree holding one path root -> 1 -> 2 with the given movers and rewards."""
    tree = empty_tree(_Shape(), torch.zeros(1, 3), capacity=4, device=torch.device("cpu"))
    for node, (player, reward) in enumerate(zip(players, rewards)):
        tree.player[0, node], tree.reward[0, node] = player, reward
        tree.parent[0, node] = node - 1
    tree.num_nodes[0] = len(players)
    return tree


def test_backup_adds_rewards_and_discounts_by_hand():
    """Single agent (root player 1, then the agent 0 moves twice): rewards 1 and 2 on the way,
    leaf value 10, discount 0.5. Node 2: 2 + 0.5 * 10 = 7; node 1: 1 + 0.5 * 7 = 4.5; the
    root: 0.5 * 4.5 = 2.25 from the agent's view (stored negated for player 1)."""
    tree = _chain([1, 0, 0], [0.0, 1.0, 2.0])
    path = torch.tensor([[0, 1, 2]])
    backup(tree, path, torch.tensor([10.0]), torch.tensor([0]), discount=0.5)
    assert tree.value_sum[0, :3].tolist() == [-2.25, 4.5, 7.0]
    assert tree.visits[0, :3].tolist() == [1.0, 1.0, 1.0]
    assert root_value(tree).item() == 2.25


def test_backup_flips_the_sign_of_values_and_rewards_between_players():
    """Two players at discount 1: player 0 moves into node 1 and earns 0.5, player 1 moves
    into node 2 and wins (+1), leaf value 0. From player 1's view the returns are 1 at node 2,
    1 - 0.5 = 0.5 at node 1 and the root; each node stores its own mover's view. A dummy
    entry (index `capacity`) inside the path is skipped."""
    tree = _chain([1, 0, 1], [0.0, 0.5, 1.0])
    path = torch.tensor([[0, 1, tree.capacity, 2]])
    backup(tree, path, torch.tensor([0.0]), torch.tensor([1]))
    assert tree.value_sum[0, :3].tolist() == [0.5, -0.5, 1.0]
    assert tree.value_sum[0, tree.capacity].item() == 0.0
    assert root_value(tree).item() == -0.5  # player 0, to move at the root, nets -0.5


def test_backup_without_rewards_is_alphazeros():
    """No rewards, discount 1: every node gets the leaf value, negated for the other player."""
    tree = _chain([1, 0, 1], [0.0, 0.0, 0.0])
    backup(tree, torch.tensor([[0, 1, 2]]), torch.tensor([0.75]), torch.tensor([1]))
    assert tree.value_sum[0, :3].tolist() == [0.75, -0.75, 0.75]


def test_min_max_normalised_puct_by_hand():
    """Q 5 and 15 in a tree whose values span 5..25 scale to 0 and 0.5; an unvisited move
    keeps fpu 0; the exploration term is unchanged: 1 * 0.5 * sqrt(4) / (1 + N)."""
    prior = torch.tensor([[0.5, 0.25, 0.25]])
    scores = puct_scores(
        prior, torch.ones(1, 3, dtype=torch.bool), torch.tensor([[1.0, 2.0, 0.0]]),
        torch.tensor([[5.0, 30.0, 0.0]]), torch.tensor([4.0]), 1.0, 0.0,
        (torch.tensor([5.0]), torch.tensor([25.0])),
    )  # fmt: skip
    assert scores[0].tolist() == pytest.approx([0.0 + 0.5, 0.5 + 0.5 / 3, 0.0 + 0.5])


def test_q_bounds_skip_the_root_and_unvisited_nodes():
    tree = _chain([1, 0, 0], [0.0, 0.0, 0.0])
    tree.visits[0, :3] = torch.tensor([3.0, 2.0, 1.0])
    tree.value_sum[0, :3] = torch.tensor([-99.0, 8.0, -1.0])
    low, high = q_bounds(tree)
    assert (low.item(), high.item()) == (-1.0, 4.0)


def _model(two_player: bool, actions: int = 3) -> tuple[ModelGame, MuZeroEvaluator]:
    with seeded_init(0):
        net = MuZeroNet((4,), actions, hidden=8, width=16, support=5)
    return ModelGame(net, two_player), MuZeroEvaluator(net)


@pytest.mark.parametrize("use_gumbel", [False, True])
def test_search_over_the_model_keeps_the_root_mask_and_allows_all_moves_below(use_gumbel):
    game, evaluator = _model(two_player=False)
    config = SearchConfig(simulations=24, discount=0.9, normalize_q=True, gumbel=use_gumbel)
    legal = torch.tensor([[True, False, True], [True, True, True]])
    mcts = MCTS(game, evaluator, config)
    obs = torch.randn(2, 4, generator=torch_generator(1))
    mcts.reset(game.root_states(obs, legal, torch.zeros(2, dtype=torch.long)))
    result = mcts.search(np.random.default_rng(0))
    assert result.visit_counts[0, 1] == 0 and result.visit_counts.sum(1).tolist() == [24, 24]
    tree = mcts.tree
    below = tree.legal[:, 1 : int(tree.num_nodes.min())]
    assert bool(below.all()), "nodes below the root allow every move"
    rewards = tree.reward[:, 1 : int(tree.num_nodes.min())]
    assert bool((rewards != 0).any()), "the dynamics' rewards reach the tree"
    assert bool((tree.to_play[:, : int(tree.num_nodes.min())] == 0).all())


def test_two_player_model_alternates_the_side_to_move():
    game, evaluator = _model(two_player=True)
    obs = torch.randn(1, 4, generator=torch_generator(1))
    roots = game.root_states(obs, torch.ones(1, 3, dtype=torch.bool), torch.tensor([1]))
    child = game.play(roots, torch.tensor([2]))
    grandchild = game.play(child, torch.tensor([0]))
    assert [game.to_play(s).item() for s in (roots, child, grandchild)] == [1, 0, 1]
