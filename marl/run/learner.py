"""What the shared training loop asks of every learner (PPO family, value family, AlphaZero).

The loop in `marl.run.loop` owns progress output, metrics, checkpoints and resume; a learner
owns only its algorithm. A learner is built by a factory registered under its algorithm name:
`make_learner(env_id, config, seed, device) -> Learner`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
import torch


class Policy(Protocol):
    """Acts for all N agents of a batch of envs (used by evaluation, leagues and GIFs)."""

    def act(self, obs: Any, action_mask: Any, *, greedy: bool = True) -> np.ndarray:
        """obs [B, N, O], action_mask [B, N, A] -> actions [B, N] (or [B, N, action_dim])."""
        ...


def reset_finished(policy: Policy, done: Any) -> None:
    """Tell a recurrent policy which envs started a new episode (`reset(done)`, if it has one)."""
    reset = getattr(policy, "reset", None)
    if reset is not None:
        reset(done)


class Learner(Protocol):
    """One algorithm on one env; the loop calls `iterate` until `env_steps` reaches the budget."""

    env_steps: int  # environment steps consumed so far (the budget's unit)

    def iterate(self) -> dict[str, float]:
        """Collect experience and update once; return scalar stats for logging.

        Stats named `return/<team>` are episode returns (per agent, sampled policy) of the
        episodes that finished during this iteration; the progress bar shows their mean.
        """
        ...

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume (weights, optimizer, RNG, env-step count), as tensors
        and plain Python values only, so `torch.load(weights_only=True)` can read it."""
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` returned."""
        ...

    def policy(self) -> Policy:
        """The current policy for evaluation."""
        ...


LearnerFactory = Callable[..., Learner]


def rng_state(gen: np.random.Generator) -> dict[str, Any]:
    """A numpy generator's state as plain values (checkpoint-safe)."""
    return gen.bit_generator.state


def set_rng_state(gen: np.random.Generator, state: dict[str, Any]) -> None:
    """Restore a numpy generator from `rng_state`."""
    gen.bit_generator.state = state


def torch_rng_state(gen: torch.Generator) -> torch.Tensor:
    """A torch generator's state (a uint8 tensor, checkpoint-safe)."""
    return gen.get_state()
