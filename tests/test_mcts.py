"""Batched PUCT search: exact numerics, a hand-worked tree, forced wins, the reference twin."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from marl.games import CONNECT_FOUR, TIC_TAC_TOE
from marl.search import gumbel
from marl.search.config import SearchConfig
from marl.search.evaluator import UniformEvaluator
from marl.search.gumbel import considered_visits
from marl.search.mcts import (
    MCTS,
    dirichlet_noise,
    forced_visits,
    prune_forced,
    puct_scores,
    select_action,
)
from marl.search.openspiel_game import OpenSpielGame
from marl.search.reference import reference_search
from marl.search.tree import child_stats, root_net_value, root_value, root_visit_counts


def board(game, text: str) -> torch.Tensor:
    """One board from rows of X (first player), O (second player) and '.'."""
    values = {"X": 1, "O": -1, ".": 0}
    return torch.tensor([[values[ch] for ch in text.split()]], dtype=torch.int8)


class ScriptedEvaluator:
    """Priors and values from exact integer hashes of each board (batch-independent)."""

    def __init__(self, game, seed: int = 0):
        gen = np.random.default_rng(seed)
        cells = game.rows * game.cols
        self.w_prior = torch.as_tensor(gen.integers(-3, 4, size=(2 * cells, game.num_actions)))
        self.w_value = torch.as_tensor(gen.integers(-3, 4, size=(2 * cells,)))
        self.calls = 0

    def __call__(self, obs, legal):
        self.calls += 1
        x = obs.flatten(1).round().long()
        weights = ((x @ self.w_prior) % 5 + 1).float() * legal
        priors = weights / weights.sum(1, keepdim=True)
        values = ((x @ self.w_value) % 7 - 3).float() / 4
        return priors, values


def test_puct_scores_by_hand():
    prior = torch.tensor([[0.5, 0.3, 0.2]])
    legal = torch.tensor([[True, True, False]])
    visits = torch.tensor([[3.0, 0.0, 0.0]])
    values = torch.tensor([[1.5, 0.0, 0.0]])
    scores = puct_scores(prior, legal, visits, values, torch.tensor([4.0]), c_puct=2.0, fpu=-0.1)
    assert scores[0, 0].item() == pytest.approx(0.5 + 2 * 0.5 * 2 / 4)
    assert scores[0, 1].item() == pytest.approx(-0.1 + 2 * 0.3 * 2 / 1)
    assert scores[0, 2].item() == float("-inf")


def test_policy_target_pruning_by_hand():
    """c_puct 1, k 2, root visits 100, priors .5/.3/.2, visits 80/15/4, Q .5/.2/0. The best
    move's score is .5 + .5 * 10 / 81. Move 1 may give back sqrt(60) = 7.75 forced visits
    (down to 8) and needs 1 + n > .3 * 10 / (best - .2), n >= 8: it keeps 8. Move 2 may give
    back all 4 but needs n >= 3 (2.56 -> 3) to stay below the best: 3."""
    prior = torch.tensor([[0.5, 0.3, 0.2]])
    legal = torch.ones(1, 3, dtype=torch.bool)
    visits = torch.tensor([[80.0, 15.0, 4.0]])
    values = torch.tensor([[40.0, 3.0, 0.0]])
    parent = torch.tensor([100.0])
    assert forced_visits(prior, parent, 2.0)[0, 1].item() == pytest.approx(math.sqrt(60))
    pruned = prune_forced(prior, legal, visits, values, parent, c_puct=1.0, k=2.0)
    assert pruned.tolist() == [[80.0, 8.0, 3.0]]
    # a move whose Q beats the best move's score gives nothing back; move 2 at Q -0.9 needs
    # only n >= 1 (2 / 1.46 - 1 = 0.37), and a move left with one visit drops to 0
    values = torch.tensor([[40.0, 15.0 * 0.9, 4 * -0.9]])
    pruned = prune_forced(prior, legal, visits, values, parent, c_puct=1.0, k=2.0)
    assert pruned.tolist() == [[80.0, 15.0, 0.0]]


def test_forced_playouts_visit_every_root_move_enough_and_only_in_self_play():
    """Each legal root move of prior P ends with about sqrt(k P N) visits or more, where plain
    PUCT leaves some unvisited; the policy target is pruned; a greedy search has none of it."""
    position = random_positions(CONNECT_FOUR, 4, seed=3)
    evaluator = ScriptedEvaluator(CONNECT_FOUR)
    plain_config = SearchConfig(simulations=200, c_puct=0.5, reuse_tree=False)
    plain = MCTS(CONNECT_FOUR, evaluator, plain_config)
    plain.reset(position)
    plain_counts = plain.search(np.random.default_rng(0)).visit_counts
    config = dataclasses.replace(plain_config, forced_playouts=2.0)
    mcts = MCTS(CONNECT_FOUR, evaluator, config)
    mcts.reset(position)
    result = mcts.search(np.random.default_rng(0))
    prior = evaluator(CONNECT_FOUR.observe(position), CONNECT_FOUR.legal_mask(position))[0]
    floor = forced_visits(prior, torch.full((4,), 201.0), 2.0).floor() - 1
    assert (result.visit_counts >= floor).all() and not (plain_counts >= floor).all()
    assert not torch.allclose(result.policy, result.visit_counts / 200)  # pruned
    assert result.policy.argmax(1).tolist() == result.visit_counts.argmax(1).tolist()
    assert config.greedy().forced_playouts == 0.0
    with pytest.raises(ValueError, match="forced_playouts works with PUCT"):
        SearchConfig(forced_playouts=2.0, gumbel=True).validate()


def test_dirichlet_noise_is_seeded_and_masked():
    legal = torch.tensor([[True, False, True, True], [False, True, True, False]])
    a = dirichlet_noise(np.random.default_rng(3), legal, 0.3)
    b = dirichlet_noise(np.random.default_rng(3), legal, 0.3)
    assert torch.equal(a, b)
    assert torch.allclose(a.sum(1), torch.ones(2))
    assert (a[~legal] == 0).all() and (a[legal] > 0).all()


def test_select_action_temperature():
    counts = torch.tensor([[1.0, 5.0, 2.0], [0.0, 0.0, 4.0]])
    assert select_action(counts, 0.0, np.random.default_rng(0)).tolist() == [1, 2]
    rng = np.random.default_rng(0)
    draws = torch.stack([select_action(counts, 1.0, rng) for _ in range(4000)])
    share = (draws[:, 0] == 1).float().mean().item()
    assert share == pytest.approx(5 / 8, abs=0.03)
    assert (draws[:, 1] == 2).all()
    again = torch.stack([select_action(counts, 1.0, np.random.default_rng(0)) for _ in range(2)])
    assert torch.equal(again[0], again[1])
    # a low temperature overflows counts ** (1 / T) in float64: still the most visited move
    many = torch.tensor([[0.0, 1300.0, 5000.0, 0.0]])
    picks = [int(select_action(many, 0.01, np.random.default_rng(s))[0]) for s in range(50)]
    assert picks == [2] * 50


def test_search_settings_out_of_range_are_refused():
    for bad, says in [({"dirichlet_alpha": 0.0, "dirichlet_fraction": 0.25}, "dirichlet_alpha=0"),
                      ({"c_puct": -1.0}, "c_puct=-1"), ({"gumbel_considered": 0}, "considered=0"),
                      ({"gumbel_c_visit": 0.0}, "gumbel_c_visit=0"),
                      ({"gumbel_c_scale": -1.0}, "gumbel_c_scale=-1")]:  # fmt: skip
        with pytest.raises(ValueError, match=says):
            SearchConfig(**bad).validate()
    SearchConfig(dirichlet_alpha=0.0).validate()  # no noise: its alpha is unused


HAND_WORKED = "X X O  O X X  . O ."  # O to move; O@6 lets X win at 8, O@8 draws


def test_visit_counts_match_a_hand_worked_tree():
    """Five simulations, uniform priors, value 0, c_puct 1 (worked out in the comments)."""
    # sim1: both moves score 0.5 -> 6. sim2: 6 scores .354, 8 scores .707 -> 8.
    # sim3: tie -> 6, then X's only move 8 wins: +1 for X, -1 for O at node 6.
    # sim4: 6 scores -.5 + .333, 8 scores .5 -> 8 -> drawn terminal. sim5: 8 again (0 + .373).
    mcts = MCTS(TIC_TAC_TOE, UniformEvaluator(), SearchConfig(simulations=5, c_puct=1.0))
    mcts.reset(board(TIC_TAC_TOE, HAND_WORKED))
    result = mcts.search(np.random.default_rng(0))
    expected = [0, 0, 0, 0, 0, 0, 2, 0, 3]
    assert result.visit_counts[0].tolist() == expected
    assert result.root_value[0].item() == pytest.approx(-1 / 6)


def test_one_evaluator_call_per_simulation_for_all_trees():
    evaluator = UniformEvaluator()
    mcts = MCTS(CONNECT_FOUR, evaluator, SearchConfig(simulations=12))
    mcts.reset(CONNECT_FOUR.initial(5))
    mcts.search(np.random.default_rng(0))
    assert evaluator.calls == 1 + 12
    assert evaluator.positions == 5 * (1 + 12)


@pytest.mark.parametrize("use_gumbel", [False, True])
def test_forced_win_in_one_found_with_few_simulations(use_gumbel):
    ttt = board(TIC_TAC_TOE, "X X .  O O .  . . .")  # X wins at 2
    c4 = board(CONNECT_FOUR, ". . . . . . .  " * 5 + "X X X . O O O")  # X wins at 3
    for game, position, win, sims in ((TIC_TAC_TOE, ttt, 2, 12), (CONNECT_FOUR, c4, 3, 12)):
        config = SearchConfig(simulations=sims, gumbel=use_gumbel, gumbel_considered=16)
        mcts = MCTS(game, UniformEvaluator(), config)
        mcts.reset(position.repeat(3, 1))
        result = mcts.search(np.random.default_rng(1))
        chosen = result.action if use_gumbel else result.visit_counts.argmax(1)
        assert chosen.tolist() == [win] * 3


def random_positions(game, count: int, seed: int) -> torch.Tensor:
    """`count` unfinished positions reached by seeded random play."""
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < count:
        b = game.initial(1)
        for _ in range(rng.integers(0, 4 if game is TIC_TAC_TOE else 12)):
            moves = game.legal_mask(b)[0].nonzero()[:, 0]
            nxt = game.play(b, moves[rng.integers(len(moves))][None])
            if game.outcome(nxt)[0][0]:
                break
            b = nxt
        out.append(b)
    return torch.cat(out)


@pytest.mark.parametrize("game", [TIC_TAC_TOE, CONNECT_FOUR], ids=lambda g: g.name)
def test_batched_search_agrees_with_the_reference(game):
    positions = random_positions(game, 4, seed=5)
    evaluator = ScriptedEvaluator(game)
    config = SearchConfig(simulations=40, c_puct=1.3, dirichlet_fraction=0.25, fpu=-0.2)
    mcts = MCTS(game, evaluator, config)
    mcts.reset(positions)
    result = mcts.search(np.random.default_rng(7))
    noise = dirichlet_noise(np.random.default_rng(7), game.legal_mask(positions), 0.3)
    for b in range(len(positions)):
        counts, value = reference_search(
            game, evaluator, positions[b : b + 1], 40, 1.3, -0.2, noise[b].numpy(), 0.25
        )
        assert result.visit_counts[b].tolist() == counts.tolist()
        assert result.root_value[b].item() == pytest.approx(value, abs=1e-5)


def test_subtree_reuse_keeps_the_child_statistics():
    game = CONNECT_FOUR
    mcts = MCTS(game, ScriptedEvaluator(game), SearchConfig(simulations=60))
    mcts.reset(game.initial(3))
    first = mcts.search(np.random.default_rng(0))
    actions = first.visit_counts.argmax(1)
    tree = mcts.tree
    rows = torch.arange(3)
    child = tree.children[rows, 0, actions]
    grandchild_visits = [
        [tree.visits[b, c].item() if c >= 0 else 0.0 for c in tree.children[b, child[b]].tolist()]
        for b in range(3)
    ]
    child_visits = tree.visits[rows, child].tolist()
    mcts.advance(actions)
    assert mcts.tree.visits[:, 0].tolist() == child_visits
    assert mcts.tree.num_nodes.tolist() == child_visits  # no terminal revisits this early
    assert root_visit_counts(mcts.tree).tolist() == grandchild_visits
    second = mcts.search(np.random.default_rng(0))
    assert (second.visit_counts.sum(1) == torch.tensor(child_visits) - 1 + 60).all()


def test_reuse_never_overflows_the_tree_over_a_whole_game():
    game = TIC_TAC_TOE
    mcts = MCTS(game, UniformEvaluator(), SearchConfig(simulations=30))
    mcts.reset(game.initial(2))
    rng = np.random.default_rng(0)
    for _ in range(5):
        result = mcts.search(rng)
        assert (mcts.tree.num_nodes <= mcts.capacity).all()
        mcts.advance(select_action(result.visit_counts, 1.0, rng))


def test_sequential_halving_schedule_by_hand():
    assert considered_visits(4, 8) == (0, 0, 0, 0, 1, 1, 2, 2)
    assert considered_visits(1, 3) == (0, 1, 2)
    seq = considered_visits(16, 64)
    assert seq[:16] == tuple([0] * 16) and len(seq) == 64
    assert max(seq) < 64 // 2 and math.ceil(math.log2(16)) == 4


def test_gumbel_policy_prefers_the_winning_move():
    position = board(TIC_TAC_TOE, "X X .  O O .  . . .")
    config = SearchConfig(simulations=16, gumbel=True, gumbel_considered=8)
    mcts = MCTS(TIC_TAC_TOE, UniformEvaluator(), config)
    mcts.reset(position)
    result = mcts.search(np.random.default_rng(0))
    assert result.policy[0].argmax().item() == 2
    assert result.policy[0].sum().item() == pytest.approx(1.0)
    assert result.policy[0, ~TIC_TAC_TOE.legal_mask(position)[0]].sum() == 0


def test_openspiel_adapter_matches_the_native_game():
    native = board(TIC_TAC_TOE, "X . .  . O .  . . .")
    spiel = OpenSpielGame("tic_tac_toe")
    state = spiel.initial(1)
    state = spiel.play(state, torch.tensor([0]))
    state = spiel.play(state, torch.tensor([4]))
    counts = []
    for game, position in ((TIC_TAC_TOE, native), (spiel, state)):
        evaluator = UniformEvaluator()
        mcts = MCTS(game, evaluator, SearchConfig(simulations=50))
        mcts.reset(np.concatenate([position] * 3) if game is spiel else position.repeat(3, 1))
        counts.append(mcts.search(np.random.default_rng(0)).visit_counts)
        assert evaluator.calls == 1 + 50  # one batched call per simulation step for all trees
    assert torch.equal(counts[0], counts[1])
    with pytest.raises(ValueError, match="action 4 on state 0 is illegal"):
        spiel.play(state, torch.tensor([4]))
    with pytest.raises(ValueError, match="need DETERMINISTIC"):
        OpenSpielGame("backgammon")


def test_gumbel_with_a_reused_subtree_still_plays_legal_moves():
    game = CONNECT_FOUR
    mcts = MCTS(game, ScriptedEvaluator(game), SearchConfig(simulations=16, gumbel=True))
    mcts.reset(game.initial(4))
    rng = np.random.default_rng(0)
    for _ in range(4):
        result = mcts.search(rng)
        legal = game.legal_mask(mcts.root_states())
        assert legal.gather(1, result.action[:, None]).all()
        assert (result.visit_counts.sum(1) >= 16).all()
        mcts.advance(result.action)


class RootValueEvaluator:
    """Uniform priors; value 0.5 for the empty board (the root), 0.1 for every other position
    (both from the view of the side to move there)."""

    def __call__(self, obs, legal):
        priors = legal.float() / legal.sum(1, keepdim=True)
        empty = obs.flatten(1).sum(1) == 0
        return priors, torch.where(empty, 0.5, 0.1)


def test_gumbel_completes_unvisited_q_with_the_networks_root_value(monkeypatch):
    """Two simulations from the empty board: each visits one new child once. The root mover
    sees Q = -0.1 there (the child's 0.1 is the opponent's). The search's root mean is
    (0.5 - 0.1 - 0.1) / 3 = 0.1, but v_mix must mix in the net's raw root value 0.5:
    v_mix = (0.5 + 2 * (-0.1)) / (1 + 2) = 0.1 (with the root mean it would be -1/30)."""
    calls = []
    completed_q = gumbel.completed_q

    def recording(prior, legal, visits, value_sums, value):
        out = completed_q(prior, legal, visits, value_sums, value)
        calls.append((visits.clone(), value.clone(), out.clone()))
        return out

    monkeypatch.setattr(gumbel, "completed_q", recording)
    config = SearchConfig(simulations=2, gumbel=True, gumbel_considered=16)
    mcts = MCTS(TIC_TAC_TOE, RootValueEvaluator(), config)
    mcts.reset(TIC_TAC_TOE.initial(1))
    result = mcts.search(np.random.default_rng(0))
    tree = mcts.tree
    assert root_net_value(tree).tolist() == [0.5]  # the raw value, from the mover's view
    assert root_value(tree)[0].item() == pytest.approx(0.1)  # the search's mean differs
    assert result.root_value[0].item() == pytest.approx(0.1)
    assert calls and all(value.tolist() == [0.5] for _, value, _ in calls)
    visits, value, q = calls[-1]
    rows = torch.zeros(1, dtype=torch.long)
    assert torch.equal(visits, child_stats(tree, rows, rows)[0])
    assert visits.sum().item() == 2 and visits.max().item() == 1
    visited = visits[0] > 0
    assert q[0, visited].tolist() == pytest.approx([-0.1, -0.1])
    assert q[0, ~visited].tolist() == pytest.approx([0.1] * 7)  # v_mix from the raw 0.5
    by_mean = completed_q(tree.prior[:, 0], tree.legal[:, 0], *child_stats(tree, rows, rows),
                          root_value(tree))  # fmt: skip
    assert by_mean[0, ~visited].tolist() == pytest.approx([-1 / 30] * 7)
