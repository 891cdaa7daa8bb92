"""The arrays every vectorized env hands a learner, and the protocol such an env follows.

Both the PettingZoo-backed vector env (`marl.envs.vector`) and the natively batched MPE
(`marl.envs.mpe`) return `VecStep`s, so a learner never knows which one it steps. Arrays are
numpy arrays or torch tensors; learners call `torch.as_tensor` on them.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol

import gymnasium


class VecStep(NamedTuple):
    """One step of B envs with N agents each (agents ordered as `VecEnv.agents`)."""

    obs: Any  # [B, N, O] float32, each agent's observation zero-padded to the largest O
    state: Any  # [B, S] float32, global state (env.state() or concatenated observations)
    action_mask: Any  # [B, N, A] bool, legal actions (all True where the env has no masks)
    reward: Any  # [B, N] float32, reward each agent received for the last joint action
    alive: Any  # [B, N] bool, agent acts at this step (dead or absent agents are False)
    terminated: Any  # [B] bool, episode ended by the env itself: do not bootstrap
    truncated: Any  # [B] bool, episode cut by a time limit: bootstrap from final_obs
    final_obs: Any  # [B, N, O] last obs of an episode that just ended (== obs elsewhere)
    final_state: Any  # [B, S] last state of an episode that just ended (== state elsewhere)

    @property
    def done(self) -> Any:
        """[B] bool: the episode ended at this step and `obs` is already the next one's."""
        return self.terminated | self.truncated


class VecEnv(Protocol):
    """B copies of one multi-agent env stepped together, with autoreset."""

    num_envs: int
    agents: list[str]  # N agent names, the order of the N axis
    teams: dict[str, list[int]]  # team name -> indices into `agents`
    observation_spaces: list[gymnasium.spaces.Space]  # per agent, unpadded
    action_spaces: list[gymnasium.spaces.Space]  # per agent
    obs_dim: int  # O: the largest flat observation size
    state_dim: int  # S
    num_actions: int  # A: the largest Discrete n (0 for continuous actions)
    action_dim: int  # largest Box action size (0 for discrete actions)

    def reset(self, seed: int | None = None) -> VecStep:
        """Start all B episodes from `seed`: same seed, same arrays.

        PettingZoo-backed envs seed env b with `seed + b`; the natively batched MPE draws
        the whole batch from one generator seeded with `seed`.
        """
        ...

    def step(self, actions: Any) -> VecStep:
        """Apply `actions` ([B, N] ints, or [B, N, action_dim] floats) and autoreset."""
        ...

    def close(self) -> None:
        """Free the envs (worker processes, GPU memory)."""
        ...
