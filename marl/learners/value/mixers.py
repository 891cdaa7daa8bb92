"""Mixers that turn per-agent Q-values into one team value: QMIX, VDN, and none (IQL)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

MIXERS = ("qmix", "vdn", "none")


class VDNMixer(nn.Module):
    """Value decomposition networks (Sunehag et al. 2018): Q_tot is the sum of agent Qs."""

    def forward(self, agent_qs: Tensor, state: Tensor) -> Tensor:
        """agent_qs [..., n], state [..., S] (unused) -> Q_tot [...]."""
        return agent_qs.sum(dim=-1)


def _hypernet(state_dim: int, hidden: int, out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(state_dim, hidden), nn.ReLU(), nn.Linear(hidden, out))


class QMixer(nn.Module):
    """QMIX mixer (Rashid et al. 2018): a monotonic two-layer net whose weights come from
    hypernetworks of the global state.

    Q_tot = |W2(s)|^T elu(|W1(s)|^T q + b1(s)) + V(s); absolute weights make dQ_tot/dq_a >= 0
    for every agent, so the per-agent argmax is the argmax of Q_tot.
    """

    def __init__(self, n_agents: int, state_dim: int, embed_dim: int = 32, hyper_hidden: int = 64):
        super().__init__()
        self.n_agents = n_agents
        self.embed_dim = embed_dim
        self.hyper_w1 = _hypernet(state_dim, hyper_hidden, n_agents * embed_dim)
        self.hyper_w2 = _hypernet(state_dim, hyper_hidden, embed_dim)
        self.hyper_b1 = nn.Linear(state_dim, embed_dim)
        self.hyper_b2 = _hypernet(state_dim, embed_dim, 1)

    def forward(self, agent_qs: Tensor, state: Tensor) -> Tensor:
        """agent_qs [..., n], state [..., S] -> Q_tot [...]."""
        lead = agent_qs.shape[:-1]
        qs = agent_qs.reshape(-1, 1, self.n_agents)
        s = state.reshape(-1, state.shape[-1])
        w1 = self.hyper_w1(s).abs().view(-1, self.n_agents, self.embed_dim)
        b1 = self.hyper_b1(s).view(-1, 1, self.embed_dim)
        hidden = nn.functional.elu(torch.bmm(qs, w1) + b1)
        w2 = self.hyper_w2(s).abs().view(-1, self.embed_dim, 1)
        b2 = self.hyper_b2(s).view(-1, 1, 1)
        return (torch.bmm(hidden, w2) + b2).view(lead)


def make_mixer(
    kind: str, n_agents: int, state_dim: int, embed_dim: int, hyper_hidden: int
) -> nn.Module | None:
    """The mixer named `kind` ("qmix", "vdn"), or None for independent learners ("none")."""
    if kind == "qmix":
        return QMixer(n_agents, state_dim, embed_dim, hyper_hidden)
    if kind == "vdn":
        return VDNMixer()
    if kind == "none":
        return None
    raise ValueError(f"unknown mixer {kind!r}; expected one of {', '.join(MIXERS)}")
