"""MuZero's learned model: the three networks, and the model as a game the batched search plays.

`MuZeroNet` holds the representation (observation -> hidden state), dynamics ((hidden,
action) -> next hidden, reward) and prediction (hidden -> policy logits, value) networks.
Values and rewards are categorical over the support -S..S of h(x) (`muzero_targets`).

`ModelGame` lets `marl.search.mcts` search the learned model exactly as it searches a game's
rules: a "position" is one row of [hidden | reward | to_play | legal mask], `play` runs the
dynamics, `reward` reads the predicted reward of the move into a node, and `MuZeroEvaluator`
runs the prediction net on the hidden part (what `observe` returns). The root carries the
real legal mask; every node below it allows all moves (the model never ends a game).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from marl.core.config import ConfigError
from marl.search.evaluator import masked_softmax
from marl.search.muzero_targets import from_support
from marl.search.net import ResidualBlock, conv_bn_relu, plane_head


def _mlp(inputs: int, width: int, outputs: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(inputs, width), nn.LayerNorm(width), nn.ReLU(), nn.Linear(width, outputs)
    )


def scale_hidden(hidden: Tensor) -> Tensor:
    """Min-max scale each hidden state to [0, 1] (MuZero's appendix G), so dynamics and
    prediction always see inputs of one range however long the unroll."""
    low = hidden.min(1, keepdim=True).values
    high = hidden.max(1, keepdim=True).values
    return (hidden - low) / (high - low).clamp(min=1e-5)


class _ObservationValue:
    """`value(obs)` for a MuZero net: its representation, then its prediction's value."""

    def value(self, obs: Tensor) -> Tensor:
        """[B] scalar values of observations (representation then prediction)."""
        logits = self.predict(self.initial(obs))[1]  # type: ignore[attr-defined]
        return from_support(torch.softmax(logits, dim=1))


class MuZeroNet(_ObservationValue, nn.Module):
    """Representation, dynamics and prediction MLPs over flattened observations.

    Board planes [C, H, W] and gym vectors alike are flattened; the nets are small MLPs
    (CPU-sized). Heads: policy logits [A], value and reward logits [2 * support + 1].
    """

    def __init__(
        self, obs_shape: tuple[int, ...], num_actions: int, hidden: int = 64, width: int = 128,
        support: int = 20,
    ) -> None:  # fmt: skip
        super().__init__()
        self.num_actions, self.hidden_size, self.support = num_actions, hidden, support
        bins = 2 * support + 1
        self.representation = _mlp(math.prod(obs_shape), width, hidden)
        self.dynamics = _mlp(hidden + num_actions, width, hidden)
        self.reward_head = _mlp(hidden + num_actions, width, bins)
        self.prediction = nn.Sequential(nn.Linear(hidden, width), nn.LayerNorm(width), nn.ReLU())
        self.policy_head = nn.Linear(width, num_actions)
        self.value_head = nn.Linear(width, bins)

    def initial(self, obs: Tensor) -> Tensor:
        """obs [B, *obs_shape] -> hidden states [B, hidden]."""
        return scale_hidden(self.representation(obs.flatten(1).float()))

    def recurrent(self, hidden: Tensor, actions: Tensor) -> tuple[Tensor, Tensor]:
        """(hidden [B, hidden], actions [B]) -> (next hidden [B, hidden], reward logits).

        The dynamics adds a change to the hidden state (a residual step, as MuZero's residual
        dynamics tower), so what a move leaves alone stays put."""
        x = torch.cat([hidden, F.one_hot(actions.long(), self.num_actions).float()], dim=1)
        return scale_hidden(hidden + self.dynamics(x)), self.reward_head(x)

    def predict(self, hidden: Tensor) -> tuple[Tensor, Tensor]:
        """hidden [B, hidden] -> (policy logits [B, A], value logits [B, bins])."""
        x = self.prediction(hidden)
        return self.policy_head(x), self.value_head(x)


def _conv_stem(in_channels: int, channels: int, blocks: int) -> nn.Sequential:
    """conv-BN-ReLU then `blocks` residual blocks (AlphaZero's tower)."""
    return nn.Sequential(
        *conv_bn_relu(in_channels, channels), *[ResidualBlock(channels) for _ in range(blocks)]
    )


class ConvMuZeroNet(_ObservationValue, nn.Module):
    """Representation, dynamics and prediction as residual conv towers over board planes.

    The hidden state is `channels` planes of the board's size (MuZero's own shape for board
    games), flattened to one row for the search. A move enters the dynamics as one learned
    plane per action, stacked on the hidden planes. The same interface as `MuZeroNet`.
    """

    def __init__(
        self, obs_shape: tuple[int, int, int], num_actions: int, channels: int = 32,
        blocks: int = 2, support: int = 20,
    ) -> None:  # fmt: skip
        super().__init__()
        in_channels, rows, cols = obs_shape
        cells, bins = rows * cols, 2 * support + 1
        self.planes = (channels, rows, cols)
        self.num_actions, self.hidden_size, self.support = num_actions, channels * cells, support
        self.representation = _conv_stem(in_channels, channels, blocks)
        self.action_planes = nn.Embedding(num_actions, cells)
        self.dynamics = _conv_stem(channels + 1, channels, blocks)
        self.reward_head = plane_head(channels, 1, cells, bins, width=64)
        self.prediction = nn.Sequential(ResidualBlock(channels))
        self.policy_head = plane_head(channels, 2, cells, num_actions)
        self.value_head = plane_head(channels, 1, cells, bins, width=64)

    def _board(self, hidden: Tensor) -> Tensor:
        return hidden.view(len(hidden), *self.planes)

    def initial(self, obs: Tensor) -> Tensor:
        """obs [B, C, H, W] -> hidden states [B, channels * H * W]."""
        return scale_hidden(self.representation(obs.float()).flatten(1))

    def recurrent(self, hidden: Tensor, actions: Tensor) -> tuple[Tensor, Tensor]:
        """(hidden [B, hidden], actions [B]) -> (next hidden [B, hidden], reward logits)."""
        _, rows, cols = self.planes
        move = self.action_planes(actions.long()).view(-1, 1, rows, cols)
        nxt = self.dynamics(torch.cat([self._board(hidden), move], dim=1))
        return scale_hidden(nxt.flatten(1)), self.reward_head(nxt)

    def predict(self, hidden: Tensor) -> tuple[Tensor, Tensor]:
        """hidden [B, hidden] -> (policy logits [B, A], value logits [B, bins])."""
        x = self.prediction(self._board(hidden))
        return self.policy_head(x), self.value_head(x)


MuZeroModel = MuZeroNet | ConvMuZeroNet
"""Either kind of MuZero net (one interface)."""


def make_net(
    obs_shape: tuple[int, ...], num_actions: int, kind: str, *, hidden: int, width: int,
    channels: int, blocks: int, support: int,
) -> MuZeroModel:  # fmt: skip
    """The MLP nets ("mlp") or the conv towers ("conv", board planes [C, H, W] only)."""
    if kind == "conv":
        if len(obs_shape) != 3:
            raise ConfigError(
                f"MuZero net='conv' needs board planes [C, H, W]; this env's observations "
                f"have shape {tuple(obs_shape)}: use net='mlp'"
            )
        return ConvMuZeroNet(obs_shape, num_actions, channels, blocks, support)  # type: ignore[arg-type]
    return MuZeroNet(obs_shape, num_actions, hidden, width, support)


class ModelGame:
    """The learned model as a `BatchedGame`: positions are [hidden | reward | to_play | legal].

    `two_player`: the side to move alternates with every move (board games); else it stays 0.
    """

    def __init__(self, net: MuZeroModel, two_player: bool) -> None:
        self.net, self.two_player = net, two_player
        self.num_actions = net.num_actions
        self.obs_shape = (net.hidden_size,)

    def _split(self, states: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        h = self.net.hidden_size
        return states[:, :h], states[:, h], states[:, h + 1], states[:, h + 2 :]

    @torch.inference_mode()
    def root_states(self, obs: Tensor, legal: Tensor, to_play: Tensor) -> Tensor:
        """B roots: the representation of `obs`, with the real legal moves and side to move."""
        hidden = self.net.initial(obs)
        zero = torch.zeros(len(hidden), 1, device=hidden.device)
        return torch.cat([hidden, zero, to_play.float()[:, None], legal.float()], dim=1)

    def to_play(self, states: Tensor) -> Tensor:
        """[B] the side to move at each node."""
        return self._split(states)[2].long()

    def legal_mask(self, states: Tensor) -> Tensor:
        """[B, A] the real mask at a root, all moves below it."""
        return self._split(states)[3] > 0.5

    def reward(self, states: Tensor) -> Tensor:
        """[B] the predicted reward of the move into each node, from the mover's view."""
        return self._split(states)[1]

    @torch.inference_mode()
    def play(self, states: Tensor, actions: Tensor, check: bool = True) -> Tensor:
        """One dynamics step for every position (no move is illegal below the root)."""
        hidden, _, to_play, _ = self._split(states)
        nxt, reward_logits = self.net.recurrent(hidden, actions)
        reward = from_support(torch.softmax(reward_logits, dim=1))
        mover = to_play.long()
        to_play = (1 - mover) if self.two_player else mover
        legal = torch.ones(len(nxt), self.num_actions, device=nxt.device)
        return torch.cat([nxt, reward[:, None], to_play.float()[:, None], legal], dim=1)

    def outcome(self, states: Tensor) -> tuple[Tensor, Tensor]:
        """The model never ends a game: (all False, zeros)."""
        b = len(states)
        return torch.zeros(b, dtype=torch.bool), torch.zeros(b, 2)

    def observe(self, states: Tensor) -> Tensor:
        """The hidden states (what the prediction net reads)."""
        return self._split(states)[0]


class MuZeroEvaluator:
    """The prediction net as a search `Evaluator` over hidden states."""

    def __init__(self, net: MuZeroModel) -> None:
        self.net = net

    @torch.inference_mode()
    def __call__(self, hidden: Tensor, legal: Tensor) -> tuple[Tensor, Tensor]:
        """(priors over legal moves, scalar values) for hidden states [B, hidden]."""
        logits, value_logits = self.net.predict(hidden)
        return masked_softmax(logits, legal), from_support(torch.softmax(value_logits, dim=1))
