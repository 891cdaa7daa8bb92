"""A reward model of an agent's observation/action space, fitted by Bradley-Terry to
preferences between segments.

r(o, a) is an MLP of the observation and the one-hot action; a segment's return is the sum
of r over its alive steps plus a learned constant per absorbing step (after its episode
ended), so that segments that end early compare fairly with those that do not. The
preference loss is minus the Bradley-Terry log-likelihood (`marl.core.bradley_terry`, the
one the league's ratings maximize) of each label given the two returns' difference.

The policy is trained on r(o, a) - r_absorb: the model is identified only up to a shift,
and this one makes the absorbing state worth 0, as a terminated episode's future is in PPO.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from marl.core.bradley_terry import log_likelihood
from marl.core.checkpoint import load_checkpoint, save_checkpoint
from marl.core.seeding import seeded_init, torch_generator
from marl.learners.ppo.nets import mlp
from marl.learners.rlhf.fitting import fit_minibatches
from marl.learners.rlhf.preferences import Preference, PreferenceError, SegmentSet

KIND = "rlhf_reward"
"""The `algo` a reward-model file records."""


def preference_loss(returns_a: Tensor, returns_b: Tensor, labels: Tensor) -> Tensor:
    """Mean of -log P(labels | returns) under Bradley-Terry: u = R_a - R_b, a's score = label."""
    return -log_likelihood(returns_a - returns_b, labels).mean()


class StepRewardModel(nn.Module):
    """r(o, a): an MLP of the observation and one-hot action; a learned absorbing reward."""

    def __init__(self, obs_dim: int, num_actions: int, hidden: Sequence[int], seed: int):
        super().__init__()
        self.obs_dim, self.num_actions, self.hidden = obs_dim, num_actions, tuple(hidden)
        with seeded_init(seed):
            self.net = mlp(
                obs_dim + num_actions,
                hidden,
                1,
                torch_generator(seed),
                out_gain=0.1,
                activation=nn.ReLU,
            )
        self.absorb = nn.Parameter(torch.zeros(()))

    def forward(self, obs: Tensor, actions: Tensor) -> Tensor:
        """obs [..., O], actions [...] (long) -> r [...]."""
        onehot = nn.functional.one_hot(actions.long(), self.num_actions).to(obs.dtype)
        return self.net(torch.cat([obs, onehot], dim=-1)).squeeze(-1)

    def segment_returns(self, obs: Tensor, actions: Tensor, alive: Tensor) -> Tensor:
        """obs [S, L, O], actions [S, L], alive [S, L] -> summed rewards [S]."""
        r = torch.where(alive, self(obs, actions), self.absorb.expand(alive.shape))
        return r.sum(-1)

    def shaped(self, obs: Tensor, actions: Tensor) -> Tensor:
        """r(o, a) - r_absorb: the reward a policy is trained on (absorbing state worth 0)."""
        return self(obs, actions) - self.absorb


def _tensors(segments: SegmentSet, prefs: Sequence[Preference]) -> tuple[Tensor, ...]:
    a, b = segments.index([p.a for p in prefs]), segments.index([p.b for p in prefs])
    labels = torch.tensor([p.label for p in prefs], dtype=torch.float32)
    return torch.as_tensor(a), torch.as_tensor(b), labels


def fit(
    model: StepRewardModel,
    segments: SegmentSet,
    prefs: Sequence[Preference],
    *,
    epochs: int = 200,
    lr: float = 3e-3,
    batch: int = 256,
    seed: int = 0,
) -> dict[str, float]:
    """Fit `model` to the labels by Adam on `preference_loss`; the last epoch's loss and the
    agreement with the training labels."""
    if not prefs:
        raise PreferenceError("no preferences to fit the reward model to")
    obs, actions = torch.as_tensor(segments.obs), torch.as_tensor(segments.actions)
    alive = torch.as_tensor(segments.alive)
    a, b, labels = _tensors(segments, prefs)

    def batch_loss(idx: Tensor) -> Tensor:
        rows = torch.cat([a[idx], b[idx]])
        returns = model.segment_returns(obs[rows], actions[rows], alive[rows])
        return preference_loss(returns[: len(idx)], returns[len(idx) :], labels[idx])

    total, _ = fit_minibatches(model.parameters(), len(labels), batch_loss, epochs=epochs,
                               lr=lr, batch=batch, seed=seed)  # fmt: skip
    return {"loss": total / len(labels), "agreement": agreement(model, segments, prefs)}


def agreement(model: StepRewardModel, segments: SegmentSet, prefs: Sequence[Preference]) -> float:
    """Fraction of the non-tied labels whose preferred segment the model gives more return."""
    kept = [p for p in prefs if p.label != 0.5]
    if not kept:
        raise PreferenceError("every label is a tie: agreement is undefined")
    a, b, labels = _tensors(segments, kept)
    with torch.no_grad():
        returns = model.segment_returns(
            torch.as_tensor(segments.obs),
            torch.as_tensor(segments.actions),
            torch.as_tensor(segments.alive),
        )
    said = (returns[a] > returns[b]).float()
    return float((said == labels).float().mean())


def save(path: str | Path, model: StepRewardModel, env_id: str, stats: dict[str, float]) -> Path:
    """Write the reward model as a marl checkpoint (algo `rlhf_reward`)."""
    shape = {"obs_dim": model.obs_dim, "num_actions": model.num_actions, "hidden": model.hidden}
    return save_checkpoint(
        path,
        algo=KIND,
        env_id=env_id,
        config=dict(shape),
        model=model.state_dict(),
        stats=dict(stats),
    )


def load(path: str | Path, env_id: str | None = None) -> StepRewardModel:
    """Read a reward model written by `save` (for `env_id`, when given)."""
    record = load_checkpoint(path, env_id=env_id, algo=KIND, needs=("model",))
    cfg: dict[str, Any] = record["config"]
    model = StepRewardModel(cfg["obs_dim"], cfg["num_actions"], cfg["hidden"], seed=0)
    model.load_state_dict(record["model"])
    return model.requires_grad_(False)
