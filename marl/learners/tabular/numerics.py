"""Pure numerics of tabular Q-learning and Dyna-Q (Sutton & Barto, sections 6.5 and 8.2).

Q-tables are numpy arrays [S, A] updated in place; every random draw comes from the numpy
Generator passed in. A `legal` table [S, A] (True where the action is allowed in that
state) limits the bootstrap max to legal actions; None means every action is legal.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def bootstrap_value(q: np.ndarray, state: int, legal: np.ndarray | None = None) -> float:
    """max_a Q[state, a] over the legal actions (0 where none is legal)."""
    row = q[state] if legal is None else q[state][legal[state]]
    return float(row.max()) if row.size else 0.0


def q_learning_update(
    q: np.ndarray,
    state: int,
    action: int,
    reward: float,
    next_state: int,
    terminated: bool,
    alpha: float,
    gamma: float,
    legal: np.ndarray | None = None,
) -> float:
    """Q[s, a] += alpha * (r + gamma * max_a' Q[s', a'] - Q[s, a]), in place; the TD error.

    A terminated step (the env ended the episode) does not bootstrap: the target is r. A
    truncated step (a time limit) is not terminated: pass the state of its final
    observation as `next_state` and it bootstraps like any other.
    """
    target = reward if terminated else reward + gamma * bootstrap_value(q, next_state, legal)
    error = target - float(q[state, action])
    q[state, action] += alpha * error
    return error


def epsilon_greedy(
    q_rows: np.ndarray, action_mask: np.ndarray, epsilon: float, rng: np.random.Generator
) -> np.ndarray:
    """q_rows, action_mask [..., A] -> actions [...]: with probability epsilon a uniformly
    random legal action, else a greedy legal one with ties broken uniformly at random.

    Three arrays are drawn on every call (tie noise, random-action noise, explore coins),
    also at epsilon 0, so a stream stays aligned whatever epsilon is.
    """
    legal_q = np.where(action_mask, q_rows, -np.inf)
    ties = action_mask & (legal_q == legal_q.max(axis=-1, keepdims=True))
    greedy = np.where(ties, rng.random(ties.shape), -1.0).argmax(axis=-1)
    random_legal = np.where(action_mask, rng.random(action_mask.shape), -1.0).argmax(axis=-1)
    explore = rng.random(greedy.shape) < epsilon
    return np.where(explore, random_legal, greedy)


@dataclass
class TabularModel:
    """Dyna-Q's deterministic model: the last next state and reward seen after each (s, a)."""

    next_state: np.ndarray  # [S, A] int64, -1 where (s, a) was never tried
    reward: np.ndarray  # [S, A] float64
    terminated: np.ndarray  # [S, A] bool
    seen: list[int] = field(default_factory=list)  # s * A + a, in the order first tried

    @classmethod
    def empty(cls, num_states: int, num_actions: int) -> TabularModel:
        """A model that has seen nothing."""
        shape = (num_states, num_actions)
        return cls(np.full(shape, -1, np.int64), np.zeros(shape), np.zeros(shape, bool))

    def record(self, state: int, action: int, reward: float, next_state: int, terminated: bool):
        """Remember the outcome of one real transition (overwriting the previous one)."""
        if self.next_state[state, action] < 0:
            self.seen.append(state * self.next_state.shape[1] + action)
        self.next_state[state, action] = next_state
        self.reward[state, action] = reward
        self.terminated[state, action] = terminated


def plan(
    q: np.ndarray,
    model: TabularModel,
    steps: int,
    alpha: float,
    gamma: float,
    rng: np.random.Generator,
    legal: np.ndarray | None = None,
) -> float:
    """Dyna-Q planning as Sutton & Barto's (section 8.2): each of `steps` Q-updates takes a
    random previously observed state, then a random action previously taken in it (so a
    state is planned as often as any other seen state, however many of its actions were
    tried); the draws are made first, the updates applied in draw order.

    Returns the mean absolute TD error of the planned updates (0 when nothing was planned).
    """
    if steps <= 0 or not model.seen:
        return 0.0
    num_actions = model.next_state.shape[1]
    pairs = np.sort(np.asarray(model.seen))  # state-major: a state's pairs are adjacent
    _, first, count = np.unique(pairs // num_actions, return_index=True, return_counts=True)
    states = rng.integers(len(first), size=steps)
    picks = pairs[first[states] + rng.integers(count[states])]
    total = 0.0
    for pick in picks:
        state, action = divmod(int(pick), num_actions)
        total += abs(
            q_learning_update(
                q,
                state,
                action,
                float(model.reward[state, action]),
                int(model.next_state[state, action]),
                bool(model.terminated[state, action]),
                alpha,
                gamma,
                legal,
            )
        )
    return total / steps
