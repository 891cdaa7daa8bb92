"""Turn the vector env's step stream into stored episode segments and n-step transitions."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from marl.envs.types import VecStep
from marl.learners.value.replay import episode_fields
from marl.learners.value.targets import nstep_returns


def as_numpy(x: Any) -> np.ndarray:
    """A VecStep array (numpy, or a torch tensor on any device) as a numpy array."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


class SequenceBuilder:
    """Records the B envs' steps and hands back each finished segment, padded to `horizon`.

    A segment ends when its episode ends (its last obs is then `final_obs`, with every
    action marked legal since the env gives no mask for it) or when it reaches `horizon`
    steps (the episode goes on in a new segment whose first `prev_action` is the last
    action taken, but whose recurrent state starts from zero).
    """

    def __init__(
        self,
        num_envs: int,
        horizon: int,
        n_agents: int,
        obs_dim: int,
        state_dim: int,
        num_actions: int,
    ):
        fields = episode_fields(horizon, n_agents, obs_dim, state_dim, num_actions)
        self.rows = {
            k: torch.zeros((num_envs, *s), dtype=dt).numpy() for k, (s, dt) in fields.items()
        }
        self.horizon = horizon
        self.length = np.zeros(num_envs, dtype=np.int64)

    def begin(self, step: VecStep) -> None:
        """Start a fresh segment in every env from the first step of its episode."""
        self.length[:] = 0
        for row in self.rows.values():
            row.fill(0)
        envs = np.arange(len(self.length))
        self._write_first(envs, step, np.full(as_numpy(step.alive).shape, -1))

    def _write_first(self, envs: np.ndarray, step: VecStep, prev_action: np.ndarray) -> None:
        self.rows["obs"][envs, 0] = as_numpy(step.obs)[envs]
        self.rows["state"][envs, 0] = as_numpy(step.state)[envs]
        self.rows["action_mask"][envs, 0] = as_numpy(step.action_mask)[envs]
        self.rows["alive"][envs, 0] = as_numpy(step.alive)[envs]
        self.rows["prev_action"][envs, 0] = prev_action[envs]

    def record(self, actions: np.ndarray, step: VecStep) -> list[dict[str, np.ndarray]]:
        """Add the joint `actions` [B, N] and the `step` they led to; return finished segments."""
        envs, t = np.arange(len(self.length)), self.length
        done = as_numpy(step.done)
        rows, d1, d2 = self.rows, done[:, None], done[:, None, None]
        rows["actions"][envs, t] = actions
        rows["rewards"][envs, t] = as_numpy(step.reward)
        rows["terminated"][envs, t] = as_numpy(step.terminated)
        rows["filled"][envs, t] = True
        rows["obs"][envs, t + 1] = np.where(d2, as_numpy(step.final_obs), as_numpy(step.obs))
        rows["state"][envs, t + 1] = np.where(d1, as_numpy(step.final_state), as_numpy(step.state))
        rows["action_mask"][envs, t + 1] = np.where(d2, True, as_numpy(step.action_mask))
        rows["alive"][envs, t + 1] = np.where(d1, rows["alive"][envs, t], as_numpy(step.alive))
        rows["prev_action"][envs, t + 1] = actions
        self.length += 1
        ended = np.flatnonzero(done | (self.length == self.horizon))
        segments = [{k: v[i].copy() for k, v in rows.items()} for i in ended]
        for row in rows.values():
            row[ended] = 0
        self.length[ended] = 0
        self._write_first(ended, step, np.where(d1, -1, actions))
        return segments


def segment_to_transitions(segment: dict[str, np.ndarray], gamma: float, n: int) -> dict[str, Any]:
    """One stored segment -> its filled steps as n-step transitions (`transition_fields`)."""
    seq = {k: torch.as_tensor(v).unsqueeze(0) for k, v in segment.items()}
    returns, boot, discount = nstep_returns(
        seq["rewards"], seq["terminated"], seq["filled"], gamma, n
    )
    length = int(seq["filled"].sum())
    boot = boot[0, :length]
    return {
        "obs": seq["obs"][0, :length],
        "state": seq["state"][0, :length],
        "alive": seq["alive"][0, :length],
        "actions": seq["actions"][0, :length],
        "returns": returns[0, :length],
        "discount": discount[0, :length],
        "next_obs": seq["obs"][0, boot],
        "next_state": seq["state"][0, boot],
        "next_action_mask": seq["action_mask"][0, boot],
        "next_alive": seq["alive"][0, boot],
    }
