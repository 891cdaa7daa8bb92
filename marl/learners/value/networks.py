"""The agent Q-network a team shares: feed-forward or GRU, plain or dueling head, expected
Q-values or C51 return distributions, plain or noisy linear layers."""

from __future__ import annotations

from functools import partial

import torch
from torch import Tensor, nn

from marl.learners.value.noisy import NoisyLinear


def agent_inputs(
    obs: Tensor, last_action: Tensor | None, num_actions: int, agent_id: bool
) -> Tensor:
    """obs [B, T, n, O] -> [B, T, n, O (+ n) (+ A)] with agent-id and last-action one-hots.

    last_action: [B, T, n] long, -1 where there was none (episode start); None leaves it out.
    """
    parts = [obs]
    batch, horizon, n_agents, _ = obs.shape
    if agent_id:
        eye = torch.eye(n_agents, device=obs.device, dtype=obs.dtype)
        parts.append(eye.expand(batch, horizon, n_agents, n_agents))
    if last_action is not None:
        onehot = nn.functional.one_hot(last_action.clamp(min=0), num_actions).to(obs.dtype)
        parts.append(onehot * (last_action >= 0).unsqueeze(-1).to(obs.dtype))
    return torch.cat(parts, dim=-1)


class AgentQNet(nn.Module):
    """Per-agent Q(o, a): an MLP, then a GRU when recurrent, then a plain or dueling head.

    Dueling (Wang et al. 2016): Q = V + A - mean_a A. With `atoms` (C51) every action has
    `atoms` logits instead of one value, and dueling combines the streams per atom (the
    Rainbow paper's form), before the softmax over atoms. `noisy_sigma0` makes every linear
    layer a factorized `NoisyLinear` (the GRU stays plain). Agents of a team share these
    weights; the agent-id one-hot in the input lets them still act differently.
    """

    def __init__(
        self,
        input_dim: int,
        num_actions: int,
        hidden: tuple[int, ...],
        recurrent: bool,
        dueling: bool,
        atoms: int | None = None,
        noisy_sigma0: float | None = None,
    ):
        super().__init__()
        linear = nn.Linear if noisy_sigma0 is None else partial(NoisyLinear, sigma_0=noisy_sigma0)
        layers: list[nn.Module] = []
        width = input_dim
        for size in hidden:
            layers += [linear(width, size), nn.ReLU()]
            width = size
        self.body = nn.Sequential(*layers)
        self.hidden_dim = width
        self.rnn = nn.GRU(width, width, batch_first=True) if recurrent else None
        self.num_actions, self.atoms = num_actions, atoms
        per_action = 1 if atoms is None else atoms
        self.head = linear(width, num_actions * per_action)
        self.value_head = linear(width, per_action) if dueling else None

    def forward(self, inputs: Tensor, hidden: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """inputs [B, T, n, I], hidden [B, n, H] or None (zeros) -> (out, hidden): out is
        Q [B, T, n, A], or C51 logits [B, T, n, A, atoms] when the net has atoms."""
        batch, horizon, n_agents, _ = inputs.shape
        features = self.body(inputs)
        if self.rnn is not None:
            seq = features.transpose(1, 2).reshape(batch * n_agents, horizon, self.hidden_dim)
            h0 = None if hidden is None else hidden.reshape(1, batch * n_agents, self.hidden_dim)
            seq, h_last = self.rnn(seq, h0)
            features = seq.reshape(batch, n_agents, horizon, self.hidden_dim).transpose(1, 2)
            hidden = h_last.reshape(batch, n_agents, self.hidden_dim)
        lead = features.shape[:-1]
        advantages = self.head(features).reshape(*lead, self.num_actions, -1)
        if self.value_head is not None:
            values = self.value_head(features).unsqueeze(-2)  # [..., 1, atoms or 1]
            advantages = values + advantages - advantages.mean(dim=-2, keepdim=True)
        return (advantages.squeeze(-1) if self.atoms is None else advantages), hidden
