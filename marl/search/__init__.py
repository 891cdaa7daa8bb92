"""Batched tree search (PUCT, Gumbel), evaluators, and AlphaZero self-play and training.

Modules: `mcts` (the batched search), `tree` (trees as arrays), `gumbel` (root selection by
sequential halving), `reference` (a plain one-tree twin for tests), `evaluator`, `game` (what
search asks of a game), `openspiel_game` (any two-player zero-sum OpenSpiel game), `net`,
`replay`, `selfplay`, `alphazero` (the learner), `players`, `play` (terminal play) and
`strength` (matches against OpenSpiel's rollout MCTS bot).
"""
