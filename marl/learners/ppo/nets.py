"""Network building blocks shared by the learners: MLPs, agent groups, a GRU core, action heads.

Modules here hold weights and compute forward passes; no training logic. `ActorPolicy` is
the inference view of an actor-critic (evaluation, leagues, GIFs). Every module takes
a `torch.Generator` for its initial weights, so the same seed builds the same network without
touching torch's global RNG. Agent-indexed tensors put agents on the second-to-last axis:
`[..., N, F]`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import gymnasium
import numpy as np
import torch
from torch import Tensor, nn

from marl.core.seeding import torch_generator
from marl.learners.ppo.activation import Tanh

ILLEGAL_LOGIT = -1e8  # logit of a masked action: its probability underflows to exactly 0
CriticInput = Literal["local", "state", "state+agent"]


def init_linear(layer: nn.Linear, gain: float, generator: torch.Generator) -> nn.Linear:
    """Orthogonal weights with `gain`, zero bias (the usual PPO/DQN initialization)."""
    nn.init.orthogonal_(layer.weight, gain=gain, generator=generator)
    nn.init.zeros_(layer.bias)
    return layer


def mlp(
    in_dim: int,
    hidden: Sequence[int],
    out_dim: int | None,
    generator: torch.Generator,
    out_gain: float = 1.0,
    activation: type[nn.Module] = Tanh,
) -> nn.Sequential:
    """MLP `in_dim -> hidden... -> out_dim` with `activation` between layers (tanh by default,
    in the form this CPU computes fastest: `activation.Tanh`; no output layer when `out_dim`
    is None)."""
    layers: list[nn.Module] = []
    for size in hidden:
        layers += [init_linear(nn.Linear(in_dim, size), math.sqrt(2), generator), activation()]
        in_dim = size
    if out_dim is not None:
        layers.append(init_linear(nn.Linear(in_dim, out_dim), out_gain, generator))
    return nn.Sequential(*layers)


class GroupedLinear(nn.Module):
    """K linear layers of one shape as one: `weight [K, out, in]`, `bias [K, out]`; input
    `[K, ..., in]`, row block k through layer k, by one batched matmul (`baddbmm`)."""

    def __init__(self, layers: Sequence[nn.Linear]):
        super().__init__()
        self.weight = nn.Parameter(torch.stack([layer.weight.detach() for layer in layers]))
        self.bias = nn.Parameter(torch.stack([layer.bias.detach() for layer in layers]))

    def forward(self, x: Tensor) -> Tensor:
        flat = x.reshape(x.shape[0], -1, x.shape[-1])
        y = torch.baddbmm(self.bias[:, None], flat, self.weight.transpose(1, 2))
        return y.reshape(*x.shape[:-1], y.shape[-1])


class AgentGroups:
    """Agents split into groups that share one network (a team, or a single agent).

    `gather` picks a group's agents out of an `[..., N, F]` tensor, `with_ids` appends each
    agent's one-hot position inside its group, and `scatter` puts per-group results back in
    agent order.
    """

    def __init__(self, groups: Sequence[Sequence[int]], num_agents: int, agent_ids: bool):
        flat = sorted(i for g in groups for i in g)
        if flat != list(range(num_agents)):
            raise ValueError(f"groups {groups} must cover agents 0..{num_agents - 1} once each")
        self.groups = [list(g) for g in groups]
        self.num_agents = num_agents
        self.agent_ids = agent_ids
        self._order = torch.tensor([i for g in self.groups for i in g]).argsort()
        # one group of every agent in order (a shared network): gather and scatter are no-ops
        self._whole = len(self.groups) == 1 and self.groups[0] == list(range(num_agents))
        self._ids: dict[tuple[int, torch.dtype, torch.device], Tensor] = {}

    def id_dim(self, g: int) -> int:
        """Width of the one-hot id appended for group `g` (0 for one-agent groups)."""
        return len(self.groups[g]) if self.agent_ids and len(self.groups[g]) > 1 else 0

    def gather(self, x: Tensor, g: int) -> Tensor:
        """`[..., N, F] -> [..., G, F]`: the agents of group `g`."""
        return x if self._whole else x[..., self.groups[g], :]

    def with_ids(self, x: Tensor, g: int) -> Tensor:
        """Append the one-hot agent id (position in group `g`) to `x` `[..., G, F]`."""
        width = self.id_dim(g)
        if width == 0:
            return x
        key = (g, x.dtype, x.device)
        ids = self._ids.get(key)
        if ids is None:
            ids = self._ids[key] = torch.eye(width, dtype=x.dtype, device=x.device)
        return torch.cat([x, ids.expand(*x.shape[:-1], width)], dim=-1)

    def scatter(self, parts: Sequence[Tensor], dim: int = -1) -> Tensor:
        """Concatenate per-group `[..., G_g, ...]` along agent axis `dim` into agent order."""
        if self._whole:
            return parts[0]
        joined = torch.cat(list(parts), dim=dim)
        return joined.index_select(dim, self._order.to(joined.device))


class GRUCore(nn.Module):
    """A GRU cell unrolled over time, resetting its state where an episode starts."""

    def __init__(self, size: int, generator: torch.Generator):
        super().__init__()
        self.cell = nn.GRUCell(size, size)
        for weight in (self.cell.weight_ih, self.cell.weight_hh):
            nn.init.orthogonal_(weight, generator=generator)
        nn.init.zeros_(self.cell.bias_ih)
        nn.init.zeros_(self.cell.bias_hh)

    def forward(self, x: Tensor, h: Tensor, starts: Tensor) -> tuple[Tensor, Tensor]:
        """x [T, M, H], h [M, H], starts [T, M] bool -> (outputs [T, M, H], last h [M, H])."""
        outputs = []
        for t in range(x.shape[0]):
            h = self.cell(x[t], h * (~starts[t]).to(h.dtype)[:, None])
            outputs.append(h)
        return torch.stack(outputs), h


def mask_logits(logits: Tensor, mask: Tensor) -> Tensor:
    """Set the logits of illegal actions (mask False) to a huge negative number."""
    return torch.where(mask, logits, ILLEGAL_LOGIT)


def sample_categorical(logits: Tensor, generator: torch.Generator) -> Tensor:
    """One action per row of `logits` `[..., A]`, drawn with `generator`: the draw of
    `torch.multinomial(softmax(logits), 1)` to the bit (see `race`)."""
    probs = torch.softmax(logits, dim=-1)
    return race(probs, exponential_like(probs, generator))


def exponential_like(probs: Tensor, generator: torch.Generator) -> Tensor:
    """Exp(1) draws shaped like `probs`, in the order `torch.multinomial` draws them."""
    return torch.empty_like(probs).exponential_(generator=generator)


def race(probs: Tensor, exponentials: Tensor) -> Tensor:
    """argmax(probs / exponentials) over the last axis: a categorical draw (the exponential
    race), and what `torch.multinomial(probs, 1)` computes after its input checks, which
    cost a third of an acting step at 48 rows (their item() calls); a policy whose
    probabilities are NaN is caught once per rollout instead (`check_finite`)."""
    return (probs / exponentials).argmax(-1)


class DivergedError(FloatingPointError):
    """A policy whose outputs are not finite (NaN or inf): its training diverged."""


def check_finite(log_probs: Tensor, what: str = "the policy") -> None:
    """Refuse log-probabilities that are NaN or inf (what `torch.multinomial`'s input
    checks caught, per draw, before `race` replaced it), once per rollout."""
    if not bool(torch.isfinite(log_probs).all()):
        raise DivergedError(
            f"{what} gave NaN or infinite action log-probabilities while acting: training "
            "diverged (try a lower lr, and check the env's observations and rewards for "
            "NaN)"
        )


def categorical_log_prob(logits: Tensor, actions: Tensor) -> Tensor:
    """Log-probability of `actions` `[...]` under softmax(`logits` `[..., A]`)."""
    return torch.log_softmax(logits, dim=-1).gather(-1, actions.long()[..., None]).squeeze(-1)


def categorical_log_prob_entropy(logits: Tensor, actions: Tensor) -> tuple[Tensor, Tensor]:
    """Log-probability of `actions` `[...]` and entropy under softmax(`logits` `[..., A]`)."""
    log_probs = torch.log_softmax(logits, dim=-1)
    chosen = log_probs.gather(-1, actions.long()[..., None]).squeeze(-1)
    entropy = -(log_probs.exp() * log_probs).sum(-1)
    return chosen, entropy


def gaussian_log_prob_entropy(
    mean: Tensor, log_std: Tensor, actions: Tensor, dim_mask: Tensor
) -> tuple[Tensor, Tensor]:
    """Diagonal Gaussian log-prob and entropy summed over the dims `dim_mask` keeps."""
    z = (actions - mean) * torch.exp(-log_std)
    per_dim = -0.5 * z**2 - log_std - 0.5 * math.log(2 * math.pi)
    entropy = (0.5 + 0.5 * math.log(2 * math.pi) + log_std).expand_as(mean)
    return (per_dim * dim_mask).sum(-1), (entropy * dim_mask).sum(-1)


def categorical_kl(logits_p: Tensor, logits_q: Tensor) -> Tensor:
    """KL(p || q) `[...]` of two categoricals given as (masked) logits `[..., A]`."""
    log_p, log_q = torch.log_softmax(logits_p, -1), torch.log_softmax(logits_q, -1)
    return (log_p.exp() * (log_p - log_q)).sum(-1)


def gaussian_kl(
    mean_p: Tensor, log_std_p: Tensor, mean_q: Tensor, log_std_q: Tensor, dim_mask: Tensor
) -> Tensor:
    """KL(p || q) of two diagonal Gaussians, summed over the dims `dim_mask` keeps."""
    var_p, var_q = torch.exp(2 * log_std_p), torch.exp(2 * log_std_q)
    per_dim = log_std_q - log_std_p + (var_p + (mean_p - mean_q) ** 2) / (2 * var_q) - 0.5
    return (per_dim * dim_mask).sum(-1)


class ActorCritic(nn.Module):
    """Actor (MLP, optional GRU, linear head) and critic (MLP) for one group of agents."""

    def __init__(
        self,
        actor_in: int,
        critic_in: int,
        hidden: Sequence[int],
        out_dim: int,
        continuous: bool,
        recurrent: bool,
        generator: torch.Generator,
    ):
        super().__init__()
        self.body = mlp(actor_in, hidden, None, generator)
        self.gru = GRUCore(hidden[-1], generator) if recurrent else None
        self.head = init_linear(nn.Linear(hidden[-1], out_dim), 0.01, generator)
        self.log_std = nn.Parameter(torch.zeros(out_dim)) if continuous else None
        self.critic = mlp(critic_in, hidden, 1, generator, out_gain=1.0)

    def actor(self, x: Tensor, h: Tensor, starts: Tensor) -> tuple[Tensor, Tensor]:
        """x [T, B, G, I], h [B, G, H], starts [T, B] -> (head output [T, B, G, out], h)."""
        features = self.body(x)
        if self.gru is not None:
            t, b, g, size = features.shape
            rows = starts[..., None].expand(t, b, g).reshape(t, b * g)
            features, h = self.gru(features.reshape(t, b * g, size), h.reshape(b * g, -1), rows)
            features, h = features.reshape(t, b, g, size), h.reshape(b, g, size)
        return self.head(features), h


def box_bounds(spaces: Sequence[gymnasium.Space], action_dim: int) -> tuple[Tensor, ...]:
    """(low, high, dim_mask) `[N, D]` of each agent's Box, padded to `action_dim` dims."""
    n = len(spaces)
    low, high, dims = (torch.zeros(n, action_dim) for _ in range(3))
    for i, space in enumerate(spaces if action_dim else []):
        size = int(np.prod(space.shape))
        low[i, :size] = torch.as_tensor(space.low, dtype=torch.float32).flatten()
        high[i, :size] = torch.as_tensor(space.high, dtype=torch.float32).flatten()
        dims[i, :size] = 1.0
    return low, high, dims


class MultiAgentActorCritic(nn.Module):
    """One `ActorCritic` per agent group; inputs composed per group, outputs in agent order.

    Discrete actors output masked-categorical logits `[..., N, A]`; continuous actors output
    Gaussian means `[..., N, D]` with a state-independent log-std per group. Continuous
    actions are clipped to each agent's Box only when handed to the env.
    """

    def __init__(
        self,
        groups: AgentGroups,
        obs_dim: int,
        state_dim: int,
        action_spaces: Sequence[gymnasium.Space],
        hidden: Sequence[int],
        critic: CriticInput,
        recurrent: bool,
        generator: torch.Generator,
    ):
        super().__init__()
        kinds = {type(space).__name__ for space in action_spaces}
        if not kinds <= {"Discrete", "Box"} or len(kinds) != 1:
            raise ValueError(
                f"action spaces {sorted(kinds)}: expected all Discrete or all Box per env"
            )
        self.continuous = kinds == {"Box"}
        if self.continuous:
            out_dim = max(int(np.prod(s.shape)) for s in action_spaces)
        else:
            out_dim = max(int(s.n) for s in action_spaces)
        low, high, dims = box_bounds(action_spaces, out_dim if self.continuous else 0)
        self.register_buffer("action_low", low)
        self.register_buffer("action_high", high)
        self.register_buffer("dim_mask", dims)
        self.groups, self.critic_input = groups, critic
        self.hidden_size = hidden[-1] if recurrent else 0
        nets = []
        for g in range(len(groups.groups)):
            ids = groups.id_dim(g)
            critic_in = {"local": obs_dim + ids, "state": state_dim}.get(
                critic, state_dim + obs_dim + ids
            )
            nets.append(
                ActorCritic(
                    obs_dim + ids, critic_in, hidden, out_dim, self.continuous, recurrent, generator
                )
            )
        self.nets = nn.ModuleList(nets)

    def initial_hidden(self, num_envs: int) -> Tensor:
        """Zero GRU state `[B, N, H]` (H = 0 for a feedforward actor)."""
        return torch.zeros(num_envs, self.groups.num_agents, self.hidden_size)

    def actor(self, obs: Tensor, hidden: Tensor, starts: Tensor) -> tuple[Tensor, Tensor]:
        """obs [T, B, N, O], hidden [B, N, H], starts [T, B] -> (out [T, B, N, *], hidden)."""
        outs, hiddens = [], []
        for g, net in enumerate(self.nets):
            out, h = net.actor(self.actor_inputs(obs, g), self.groups.gather(hidden, g), starts)
            outs.append(out)
            hiddens.append(h)
        return self.groups.scatter(outs, dim=-2), self.groups.scatter(hiddens, dim=-2)

    def log_std(self) -> Tensor:
        """Per-agent log standard deviations `[N, D]` of a continuous actor."""
        return self.groups.scatter(
            [net.log_std.expand(len(g), -1) for net, g in zip(self.nets, self.groups.groups)],
            dim=-2,
        )

    def log_prob_entropy(self, out: Tensor, mask: Tensor, actions: Tensor) -> tuple[Tensor, Tensor]:
        """Log-probabilities and entropies `[..., N]` of `actions` under actor output `out`."""
        if self.continuous:
            return gaussian_log_prob_entropy(out, self.log_std(), actions, self.dim_mask)
        return categorical_log_prob_entropy(mask_logits(out, mask), actions)

    def act(
        self,
        obs: Tensor,  # [B, N, O]
        mask: Tensor,  # [B, N, A] bool
        hidden: Tensor,  # [B, N, H]
        starts: Tensor,  # [B] bool
        generator: torch.Generator,
        greedy: bool,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(actions, env actions clipped to the Box, log-probs [B, N], next hidden)."""
        out, hidden = self.actor(obs[None], hidden, starts[None])
        out = out[0]
        if self.continuous:
            actions = out
            if not greedy:
                noise = torch.randn(out.shape, generator=generator, device=out.device)
                actions = out + self.log_std().exp() * noise
            env_actions = torch.clamp(actions, self.action_low, self.action_high)
            log_probs, _ = self.log_prob_entropy(out, mask, actions)
        else:  # the masked logits serve the draw and the log-prob; no entropy is needed here
            logits = mask_logits(out, mask)
            actions = logits.argmax(-1) if greedy else sample_categorical(logits, generator)
            env_actions = actions
            log_probs = categorical_log_prob(logits, actions)
        return actions, env_actions, log_probs, hidden

    def kl(self, old: tuple[Tensor, Tensor], out: Tensor, mask: Tensor) -> Tensor:
        """KL(old policy || policy with actor output `out`) `[..., N]`; `old` is the
        `(actor output, log_std())` pair of the old policy, detached."""
        old_out, old_log_std = old
        if self.continuous:
            return gaussian_kl(old_out, old_log_std, out, self.log_std(), self.dim_mask)
        return categorical_kl(mask_logits(old_out, mask), mask_logits(out, mask))

    def actor_parameters(self) -> list[nn.Parameter]:
        """The policy's parameters (body, GRU, head, log-std): what TRPO steps."""
        return [p for name, p in self.named_parameters() if ".critic." not in name]

    def critic_parameters(self) -> list[nn.Parameter]:
        """The value function's parameters."""
        return [p for name, p in self.named_parameters() if ".critic." in name]

    def values(self, obs: Tensor, state: Tensor) -> Tensor:
        """obs [..., N, O], state [..., S] -> values [..., N]."""
        values = [
            net.critic(self.critic_inputs(obs, state, g)).squeeze(-1)
            for g, net in enumerate(self.nets)
        ]
        return self.groups.scatter(values, dim=-1)

    def actor_inputs(self, obs: Tensor, g: int) -> Tensor:
        """Group `g`'s actor input `[..., G, I]`: its agents' obs and one-hot ids."""
        return self.groups.with_ids(self.groups.gather(obs, g), g)

    def critic_inputs(self, obs: Tensor, state: Tensor, g: int) -> Tensor:
        """Group `g`'s critic input `[..., G, C]` as `critic_input` says: own obs and id
        (local), the global state (state), or both (state+agent)."""
        local = self.actor_inputs(obs, g)
        shared = state[..., None, :].expand(*local.shape[:-1], state.shape[-1])
        if self.critic_input == "local":
            return local
        return shared if self.critic_input == "state" else torch.cat([shared, local], dim=-1)


class ActorPolicy:
    """A `MultiAgentActorCritic`'s actor as a policy: greedy = argmax / Gaussian mean."""

    def __init__(self, net: MultiAgentActorCritic, seed: int = 0):
        self.net = net
        self.device = net.action_low.device
        self.generator = torch_generator(seed, self.device)
        self.hidden: Tensor | None = None

    def reset(self, done: Any) -> None:
        """Start new episodes (zero GRU state) in the envs where `done` ([B] bool) is true."""
        if self.hidden is not None:
            keep = ~torch.as_tensor(done, dtype=torch.bool, device=self.device)
            self.hidden = self.hidden * keep[:, None, None].to(self.hidden.dtype)

    def act(self, obs: Any, action_mask: Any, *, greedy: bool = True) -> np.ndarray:
        """obs [B, N, O], action_mask [B, N, A] -> env actions [B, N] (or [B, N, D]).

        A recurrent policy keeps its GRU state between calls; `reset(done)` after each env
        step starts it afresh where an episode ended.
        """
        obs = torch.as_tensor(obs, dtype=torch.float32, device=self.device)
        mask = torch.as_tensor(action_mask, dtype=torch.bool, device=self.device)
        batch = obs.shape[0]
        if self.hidden is None or self.hidden.shape[0] != batch:
            self.hidden = self.net.initial_hidden(batch).to(self.device)
        no_starts = torch.zeros(batch, dtype=torch.bool, device=self.device)
        with torch.no_grad():
            _, env_actions, _, self.hidden = self.net.act(
                obs, mask, self.hidden, no_starts, self.generator, greedy
            )
        return env_actions.cpu().numpy()
