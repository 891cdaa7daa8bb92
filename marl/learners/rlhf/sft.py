"""Supervised fine-tuning: behaviour cloning of a reference policy from demonstrations.

The cloned network is the PPO family's actor-critic for the env's spec (only its actor is
trained, by cross-entropy on the demonstrated actions), so RLHF's PPO starts from it and
keeps a frozen copy as the reference of its KL penalty. An SFT file is a marl checkpoint
(algo `rlhf_sft`) holding the net and the hidden sizes it was built with.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from marl.core.checkpoint import load_checkpoint, load_state, save_checkpoint
from marl.learners.ppo.nets import MultiAgentActorCritic
from marl.learners.rlhf.fitting import fit_minibatches
from marl.learners.rlhf.trajectories import Episode

KIND = "rlhf_sft"
"""The `algo` an SFT file records."""


def clone(
    net: MultiAgentActorCritic,
    episodes: Sequence[Episode],
    *,
    epochs: int = 20,
    lr: float = 1e-3,
    batch: int = 256,
    seed: int = 0,
) -> dict[str, float]:
    """Fit `net`'s actor to the demonstrated actions (one agent); final loss and accuracy."""
    obs = torch.as_tensor(np.concatenate([e.obs for e in episodes]), dtype=torch.float32)
    actions = torch.as_tensor(np.concatenate([e.actions for e in episodes]), dtype=torch.long)

    def logits(x: torch.Tensor) -> torch.Tensor:  # [M, O] -> [M, A], as one env step of M envs
        starts = torch.zeros(1, len(x), dtype=torch.bool)
        out, _ = net.actor(x[None, :, None], net.initial_hidden(len(x)), starts)
        return out[0, :, 0]

    def batch_loss(idx: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.cross_entropy(logits(obs[idx]), actions[idx])

    fit_minibatches(net.actor_parameters(), len(actions), batch_loss, epochs=epochs, lr=lr,
                    batch=batch, seed=seed)  # fmt: skip
    with torch.no_grad():
        out = logits(obs)
        loss = float(torch.nn.functional.cross_entropy(out, actions))
        accuracy = float((out.argmax(-1) == actions).float().mean())
    return {"loss": loss, "accuracy": accuracy, "steps": float(len(actions))}


def save(
    path: str | Path,
    net: MultiAgentActorCritic,
    env_id: str,
    hidden: Sequence[int],
    stats: dict[str, float],
) -> Path:
    """Write the cloned network as a marl checkpoint (algo `rlhf_sft`)."""
    return save_checkpoint(
        path,
        algo=KIND,
        env_id=env_id,
        config={"hidden": list(hidden)},
        net=net.state_dict(),
        stats=dict(stats),
    )


def load_into(
    net: MultiAgentActorCritic, path: str | Path, env_id: str | None, built_for: str
) -> dict[str, Any]:
    """Load an SFT file's weights into `net` (built for `built_for`); the file's record."""
    record = load_checkpoint(path, env_id=env_id, algo=KIND, needs=("net",))
    load_state(net.load_state_dict, record["net"], path, built_for)
    return record
