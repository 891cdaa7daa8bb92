"""Gumbel root selection with sequential halving (Danihelka et al., ICLR 2022).

The root samples m moves without replacement by Gumbel-top-k on the prior logits, then splits
the simulation budget over rounds that each halve the moves still considered, keeping those
with the best g + logits + sigma(q). Below the root the walk stays PUCT. The training target
is the improved policy softmax(logits + sigma(completed q)), which improves on the prior even
with few simulations.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache

import numpy as np
import torch
from torch import Tensor

from marl.search.config import SearchConfig, SearchResult
from marl.search.tree import Tree, child_stats, root_net_value, root_value


@lru_cache(maxsize=256)
def considered_visits(num_considered: int, simulations: int) -> tuple[int, ...]:
    """For each simulation, the visit count a root move must have to be the one visited next.

    Sequential halving: each round gives every remaining move the same number of visits,
    ~simulations / (ceil(log2 m) * remaining), then halves the remaining moves (to at least 2).
    """
    if num_considered <= 1:
        return tuple(range(simulations))
    rounds = max(1, math.ceil(math.log2(num_considered)))
    sequence: list[int] = []
    visits = [0] * num_considered
    remaining = num_considered
    while len(sequence) < simulations:
        extra = max(1, simulations // (rounds * remaining))
        for _ in range(extra):
            sequence.extend(visits[:remaining])
            for i in range(remaining):
                visits[i] += 1
        remaining = max(2, remaining // 2)
    return tuple(sequence[:simulations])


def completed_q(
    prior: Tensor, legal: Tensor, visits: Tensor, value_sums: Tensor, value: Tensor
) -> Tensor:
    """[B, A] Q of visited moves; unvisited ones get the prior-weighted mixed value v_mix."""
    visited = visits > 0
    q = value_sums / visits.clamp(min=1)
    total = visits.sum(1)
    mass = (prior * visited).sum(1)
    weighted_q = (prior * q * visited).sum(1) / mass.clamp(min=1e-12)
    v_mix = torch.where(mass > 0, (value + total * weighted_q) / (1 + total), value)
    return torch.where(visited, q, v_mix[:, None]).masked_fill(~legal, 0.0)


def sigma(q: Tensor, legal: Tensor, visits: Tensor, c_visit: float, c_scale: float) -> Tensor:
    """Monotone transform (c_visit + max N) * c_scale * q, q min-max scaled to [0, 1] per row."""
    low = q.masked_fill(~legal, float("inf")).min(1, keepdim=True).values
    high = q.masked_fill(~legal, float("-inf")).max(1, keepdim=True).values
    scaled = (q - low) / (high - low).clamp(min=1e-8)
    return (c_visit + visits.max(1, keepdim=True).values) * c_scale * scaled


def _scores(tree: Tree, config: SearchConfig, gumbels: Tensor, logits: Tensor) -> tuple:
    rows = torch.arange(tree.batch, device=tree.visits.device)
    visits, sums = child_stats(tree, rows, torch.zeros_like(rows))
    legal, prior = tree.legal[:, 0], tree.prior[:, 0]
    # unvisited moves mix in the network's own root value (Danihelka et al. 2022, v_mix):
    # the search's root mean already averages the visited children, which would count twice
    q = completed_q(prior, legal, visits, sums, root_net_value(tree))
    boost = sigma(q, legal, visits, config.gumbel_c_visit, config.gumbel_c_scale)
    return visits, gumbels + logits + boost, logits + boost


def gumbel_search(
    tree: Tree, config: SearchConfig, rng: np.random.Generator, simulate: Callable[[Tensor], None]
) -> SearchResult:
    """Run the budget with Gumbel/sequential-halving root moves; `simulate(root_actions)`."""
    legal = tree.legal[:, 0]
    logits = torch.log(tree.prior[:, 0].clamp(min=1e-30)).masked_fill(~legal, float("-inf"))
    draws = rng.gumbel(size=tuple(legal.shape))
    gumbels = torch.as_tensor(draws, dtype=torch.float32, device=legal.device)
    m = legal.sum(1).clamp(max=config.gumbel_considered).tolist()
    table = torch.tensor(
        [considered_visits(int(k), config.simulations) for k in m], device=legal.device
    )
    start, _, _ = _scores(tree, config, gumbels, logits)  # visits kept from a reused subtree
    for k in range(config.simulations):
        visits, score, _ = _scores(tree, config, gumbels, logits)
        allowed = legal & (visits - start == table[:, k : k + 1])
        allowed = torch.where(allowed.any(1, keepdim=True), allowed, legal)
        simulate(score.masked_fill(~allowed, float("-inf")).argmax(1))
    visits, score, improved = _scores(tree, config, gumbels, logits)
    fresh = (visits - start).masked_fill(~legal, -1)
    most = fresh == fresh.max(1, keepdim=True).values
    action = score.masked_fill(~(legal & most), float("-inf")).argmax(1)
    policy = torch.softmax(improved, dim=1).nan_to_num(0.0)
    return SearchResult(visits, policy, root_value(tree), action)
