"""A probabilistic ensemble of dynamics models (Chua et al. 2018, PETS; used by MBPO).

Each of E members is an MLP (SiLU) from (observation, coded action) to a diagonal Gaussian
over (observation change, reward). The log-variance is kept inside learned bounds with soft
clamps, log_var = max - softplus(max - raw), then min + softplus(log_var - min), and the
bounds are pulled together by a small penalty, so a member cannot claim a variance wider or
narrower than it has seen. Members differ by their initial weights and by bootstrap resamples
of the data; the `elites` with the smallest held-out error make the predictions.

All members run as one batched matmul: weights [E, in, out], inputs [E, B, in].
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

LOGVAR_BOUND_PENALTY = 0.01
"""Weight of (sum max_logvar - sum min_logvar) in the training loss (MBPO's value)."""


def gaussian_nll(mean: Tensor, log_var: Tensor, target: Tensor) -> Tensor:
    """Per-member Gaussian negative log-likelihood [E]: 0.5 ((t - m)^2 / var + log var +
    log 2 pi), averaged over samples and output dims; mean, log_var, target [E, B, D]."""
    per_entry = (target - mean) ** 2 * torch.exp(-log_var) + log_var + math.log(2 * math.pi)
    return 0.5 * per_entry.mean(dim=(1, 2))


def choose_elites(holdout_mse: Sequence[float] | np.ndarray, count: int) -> np.ndarray:
    """Indices of the `count` members with the smallest held-out error (ties: lower index)."""
    order = np.argsort(np.asarray(holdout_mse, dtype=np.float64), kind="stable")
    return np.sort(order[:count])


class EnsembleLinear(nn.Module):
    """E independent linear layers applied together: x [E, B, in] -> [E, B, out]."""

    def __init__(self, members: int, in_dim: int, out_dim: int, generator: torch.Generator):
        super().__init__()
        std = 1.0 / (2.0 * math.sqrt(in_dim))  # MBPO's truncated-normal scale
        weight = torch.randn(members, in_dim, out_dim, generator=generator) * std
        self.weight = nn.Parameter(weight.clamp(-2 * std, 2 * std))
        self.bias = nn.Parameter(torch.zeros(members, 1, out_dim))

    def forward(self, x: Tensor) -> Tensor:
        """x [E, B, in] -> [E, B, out]."""
        return torch.baddbmm(self.bias, x, self.weight)


class Prediction(NamedTuple):
    """Sampled model steps."""

    next_obs: Tensor  # [B, O]
    rewards: Tensor  # [B]


class GaussianEnsemble(nn.Module):
    """E Gaussian dynamics models: (obs [.., O], action [.., D]) -> N(delta obs, reward)."""

    def __init__(
        self, obs_dim: int, action_dim: int, members: int, elites: int,
        hidden: Sequence[int], generator: torch.Generator,
    ):  # fmt: skip
        super().__init__()
        if not 1 <= elites <= members:
            raise ValueError(f"elites={elites}: expected between 1 and members={members}")
        self.obs_dim, self.members, self.num_elites = obs_dim, members, elites
        in_dim, out_dim = obs_dim + action_dim, obs_dim + 1
        sizes = [in_dim, *hidden]
        self.layers = nn.ModuleList(
            EnsembleLinear(members, a, b, generator) for a, b in zip(sizes, sizes[1:])
        )
        self.head = EnsembleLinear(members, sizes[-1], 2 * out_dim, generator)
        self.max_log_var = nn.Parameter(torch.full((out_dim,), 0.5))
        self.min_log_var = nn.Parameter(torch.full((out_dim,), -10.0))
        self.register_buffer("in_mean", torch.zeros(in_dim))
        self.register_buffer("in_std", torch.ones(in_dim))
        self.register_buffer("elites", torch.arange(elites))

    def fit_normalizer(self, inputs: Tensor) -> None:
        """Standardise inputs with the mean and std of `inputs` [B, in] from now on."""
        self.in_mean.copy_(inputs.mean(0))
        self.in_std.copy_(inputs.std(0).clamp(min=1e-6) if len(inputs) > 1 else 1.0)

    def forward(self, inputs: Tensor) -> tuple[Tensor, Tensor]:
        """inputs [E, B, in] (or [B, in], shared) -> mean, bounded log_var [E, B, O + 1]."""
        if inputs.dim() == 2:
            inputs = inputs.expand(self.members, *inputs.shape)
        x = (inputs - self.in_mean) / self.in_std
        for layer in self.layers:
            x = F.silu(layer(x))
        mean, raw = self.head(x).chunk(2, dim=-1)
        log_var = self.max_log_var - F.softplus(self.max_log_var - raw)
        return mean, self.min_log_var + F.softplus(log_var - self.min_log_var)

    def loss(self, inputs: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        """Training loss (summed member NLLs + the bound penalty) and each member's NLL [E]:
        inputs [E, B, in], targets [E, B, O + 1]."""
        mean, log_var = self(inputs)
        nll = gaussian_nll(mean, log_var, targets)
        bounds = self.max_log_var.sum() - self.min_log_var.sum()
        return nll.sum() + LOGVAR_BOUND_PENALTY * bounds, nll.detach()

    @torch.no_grad()
    def mse(self, inputs: Tensor, targets: Tensor) -> Tensor:
        """Each member's mean squared error of its mean [E] on shared inputs [B, in]."""
        mean, _ = self(inputs)
        return ((mean - targets) ** 2).mean(dim=(1, 2))

    @torch.no_grad()
    def sample(self, obs: Tensor, actions: Tensor, generator: torch.Generator) -> Prediction:
        """One model step for obs [B, O], coded actions [B, D]: each row draws from a random
        elite's Gaussian."""
        mean, log_var = self(torch.cat([obs, actions], dim=-1))
        pick = torch.randint(self.num_elites, (len(obs),), generator=generator, device=obs.device)
        rows = torch.arange(len(obs), device=obs.device)
        member = self.elites[pick]
        mean, std = mean[member, rows], (0.5 * log_var[member, rows]).exp()
        draw = mean + std * torch.randn(mean.shape, generator=generator, device=obs.device)
        return Prediction(obs + draw[:, : self.obs_dim], draw[:, self.obs_dim])


def fit_ensemble(
    model: GaussianEnsemble, optimizer: torch.optim.Optimizer, inputs: Tensor, targets: Tensor,
    steps: int, batch_size: int, holdout: float, rng: np.random.Generator,
) -> dict[str, float]:  # fmt: skip
    """Train every member for `steps` minibatch steps on its own bootstrap resample of
    (inputs [B, in], targets [B, O + 1]) less a held-out share, then keep as elites the
    members with the smallest held-out error. Returns the model metrics."""
    count = len(inputs)
    order = rng.permutation(count)
    n_hold = min(max(int(count * holdout), 1), count - 1)
    hold, train = order[:n_hold], order[n_hold:]
    model.fit_normalizer(inputs[train])
    boot = train[rng.integers(0, len(train), size=(model.members, len(train)))]  # [E, T]
    nll = torch.zeros(model.members)
    for _ in range(steps):
        cols = rng.integers(0, boot.shape[1], size=min(batch_size, boot.shape[1]))
        index = torch.as_tensor(boot[:, cols])
        loss, nll = model.loss(inputs[index], targets[index])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    holdout_mse = model.mse(inputs[hold], targets[hold])
    elites = choose_elites(holdout_mse.cpu().numpy(), model.num_elites)
    model.elites.copy_(torch.as_tensor(elites))
    return {
        "model/nll": float(nll.mean()),
        "model/holdout_mse": float(holdout_mse.mean()),
        "model/elite_holdout_mse": float(holdout_mse[elites].mean()),
        "model/max_log_var": float(model.max_log_var.detach().mean()),
        "model/min_log_var": float(model.min_log_var.detach().mean()),
    }
