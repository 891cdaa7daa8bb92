"""The recurrent state-space model of Dreamer (Hafner et al. 2019-2023), categorical latents.

The latent state is a deterministic GRU state h (`deter` wide) and a stochastic state z of
`groups` one-hot categoricals of `classes` each (DreamerV2/V3). One step:

    h_t = GRU(h_{t-1}, [z_{t-1}, a_{t-1}])
    prior      p(z_t | h_t)           (imagination: no observation)
    posterior  q(z_t | h_t, e_t)      (e_t: the encoded observation)

z is drawn by a straight-through one-hot sample of probabilities mixed with 1% uniform
(DreamerV3's unimix), so a class never has probability 0 and the KL stays finite. The KL
(`kl_loss`) is DreamerV3's: balanced (the dynamics term trains the prior toward a frozen
posterior, the representation term the posterior toward a frozen prior) with free bits
(each term is clipped below at `free_nats`).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

UNIMIX = 0.01


class State(NamedTuple):
    """A batch of latent states: deterministic h, stochastic one-hots z, and z's logits."""

    deter: Tensor  # [..., deter]
    stoch: Tensor  # [..., groups, classes] one-hot (straight-through)
    logits: Tensor  # [..., groups, classes] log-probabilities (unimix applied)

    @property
    def features(self) -> Tensor:
        """[h, flat z]: what the heads, the actor and the critic read."""
        return torch.cat([self.deter, self.stoch.flatten(-2)], dim=-1)


def mixed_logits(raw: Tensor) -> Tensor:
    """Log-probabilities of softmax(raw) mixed with `UNIMIX` of the uniform distribution."""
    probs = torch.softmax(raw, dim=-1)
    probs = (1.0 - UNIMIX) * probs + UNIMIX / raw.shape[-1]
    return torch.log(probs)


def sample_onehot(logits: Tensor, generator: torch.Generator | None) -> Tensor:
    """A one-hot draw per group forward (the mode when `generator` is None), the gradient
    of the probabilities backward (straight-through)."""
    probs = logits.exp()
    if generator is None:
        index = logits.argmax(-1)
    else:
        uniform = torch.rand(logits.shape, generator=generator, device=logits.device)
        index = (logits - torch.log(-torch.log(uniform.clamp(1e-10, 1.0 - 1e-7)))).argmax(-1)
    hard = F.one_hot(index, logits.shape[-1]).to(probs.dtype)
    return hard + probs - probs.detach()


def categorical_kl(lhs: Tensor, rhs: Tensor) -> Tensor:
    """KL(lhs || rhs) of groups of categoricals given as log-probabilities [..., G, C],
    summed over the groups -> [...]."""
    return (lhs.exp() * (lhs - rhs)).sum(dim=(-2, -1))


def kl_loss(
    post: Tensor, prior: Tensor, free_nats: float, dyn_scale: float, rep_scale: float
) -> tuple[Tensor, Tensor]:
    """DreamerV3's balanced KL with free bits, averaged over [...]: (loss, raw KL mean).

    dyn = max(free, KL(sg(post) || prior)) trains the prior; rep = max(free, KL(post ||
    sg(prior))) trains the posterior (the encoder)."""
    dyn = categorical_kl(post.detach(), prior).clamp(min=free_nats)
    rep = categorical_kl(post, prior.detach()).clamp(min=free_nats)
    raw = categorical_kl(post.detach(), prior.detach())
    return (dyn_scale * dyn + rep_scale * rep).mean(), raw.mean()


def _head(in_dim: int, hidden: int, out_dim: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(in_dim, hidden), nn.LayerNorm(hidden), nn.SiLU(), nn.Linear(hidden, out_dim)
    )


class RSSM(nn.Module):
    """The transition (prior) and representation (posterior) models over `State`s."""

    def __init__(
        self, embed_dim: int, action_dim: int, deter: int, groups: int, classes: int,
        hidden: int,
    ):  # fmt: skip
        super().__init__()
        self.deter_dim, self.groups, self.classes = deter, groups, classes
        self.img_in = nn.Sequential(
            nn.Linear(groups * classes + action_dim, hidden), nn.LayerNorm(hidden), nn.SiLU()
        )
        self.gru = nn.GRUCell(hidden, deter)
        self.prior_head = _head(deter, hidden, groups * classes)
        self.post_head = _head(deter + embed_dim, hidden, groups * classes)

    @property
    def feature_dim(self) -> int:
        """Width of `State.features`."""
        return self.deter_dim + self.groups * self.classes

    def initial(self, batch: int, device: torch.device | str = "cpu") -> State:
        """The all-zero state that starts every episode."""
        deter = torch.zeros(batch, self.deter_dim, device=device)
        stoch = torch.zeros(batch, self.groups, self.classes, device=device)
        return State(deter, stoch, torch.zeros_like(stoch))

    def _logits(self, head: nn.Module, x: Tensor) -> Tensor:
        return mixed_logits(head(x).view(*x.shape[:-1], self.groups, self.classes))

    def imagine(self, state: State, action: Tensor, generator: torch.Generator | None) -> State:
        """One prior step: the next state after `action` [B, A], without an observation."""
        x = self.img_in(torch.cat([state.stoch.flatten(-2), action], dim=-1))
        deter = self.gru(x, state.deter)
        logits = self._logits(self.prior_head, deter)
        return State(deter, sample_onehot(logits, generator), logits)

    def observe_step(
        self, state: State, action: Tensor, embed: Tensor, is_first: Tensor,
        generator: torch.Generator | None,
    ) -> tuple[State, State]:  # fmt: skip
        """(posterior, prior) after `action` [B, A] and the encoded observation [B, E];
        rows with `is_first` [B] start from the initial state and a zero action."""
        keep = (~is_first).to(action.dtype)[:, None]
        state = State(state.deter * keep, state.stoch * keep[..., None], state.logits)
        prior = self.imagine(state, action * keep, generator)
        logits = self._logits(self.post_head, torch.cat([prior.deter, embed], dim=-1))
        return State(prior.deter, sample_onehot(logits, generator), logits), prior

    def observe(
        self, embeds: Tensor, actions: Tensor, is_first: Tensor, generator: torch.Generator
    ) -> tuple[State, State]:
        """Posteriors and priors [T, B, ...] of sequences: embeds [T, B, E], previous actions
        [T, B, A], is_first [T, B]."""
        state = self.initial(embeds.shape[1], embeds.device)
        posts, priors = [], []
        for t in range(len(embeds)):
            state, prior = self.observe_step(state, actions[t], embeds[t], is_first[t],
                                             generator)  # fmt: skip
            posts.append(state)
            priors.append(prior)
        return stack_states(posts), stack_states(priors)


def stack_states(states: list[State]) -> State:
    """States [B, ...] per time step -> one State [T, B, ...]."""
    return State(*(torch.stack(parts) for parts in zip(*states)))
