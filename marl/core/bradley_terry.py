"""The Bradley-Terry likelihood, shared by league ratings and RLHF's reward model.

P(A preferred to B) = sigmoid(u), where u is A's log-odds over B (a rating difference in
nats, or the difference of two segments' summed rewards). A comparison that gives A the
score s in [0, 1] (1 win, 0 loss, 0.5 tie) out of n has log-likelihood
s*u - n*log(1 + e^u). It lives here, below both users: `marl.league.ratings` maximizes it
over ratings with Newton's method (numpy), the reward model over network weights (torch).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def log_likelihood(u: Any, score: Any, n: Any = 1.0) -> Any:
    """Bradley-Terry log-likelihood `score*u - n*log(1 + e^u)` of each comparison.

    `u`: A's log-odds over B (numpy array or torch tensor); `score`: A's summed score of the
    `n` comparisons (a win 1, a tie 0.5). A tensor `u` gives a tensor (differentiable)."""
    if isinstance(u, np.ndarray | float | int):
        return score * u - n * np.logaddexp(0.0, u)
    import torch

    return score * u - n * torch.logaddexp(torch.zeros_like(u), u)


def win_probability(u: Any) -> Any:
    """P(A preferred to B) = 1 / (1 + e^-u) for A's log-odds `u` (numpy or torch)."""
    if isinstance(u, np.ndarray | float | int):
        return 1.0 / (1.0 + np.exp(-np.asarray(u, dtype=np.float64)))
    import torch

    return torch.sigmoid(u)
