"""AlphaZero: batched self-play with search, a replay buffer, and a policy/value net fit to it.

`collect` plays `moves_per_iteration` self-play moves in each of the worker's games (one
batched search per move); `learn` stores the finished games' positions and takes
`train_steps` gradient steps on minibatches from the replay buffer. Search trees are kept
between moves, but rebuilt at the current roots whenever the net has changed since they were
grown, so no search mixes priors and values of two networks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from marl.core.checkpoint import load_optimizer
from marl.core.config import ConfigError, config_to_dict
from marl.core.learner import cpu_state
from marl.core.seeding import INIT, LEARN, child_seed, seeded_init, torch_generator
from marl.core.spec import VecSpec
from marl.games import game_for_env
from marl.search.config import SearchConfig
from marl.search.evaluator import Evaluator, NetEvaluator
from marl.search.game import SelfPlayGame
from marl.search.net import PolicyValueNet, gradient_step
from marl.search.players import AlphaZeroPlayer, SearchPolicy
from marl.search.replay import Batch, ReplayBuffer, augment
from marl.search.selfplay import SelfPlay, SelfPlayTargets


@dataclass(frozen=True)
class AlphaZeroConfig:
    """Settings of AlphaZero self-play and training."""

    num_games: int = 64
    """Self-play games played at once (the batch of every network call in search)."""
    search: SearchConfig = SearchConfig(dirichlet_alpha=0.5, dirichlet_fraction=0.25)
    """The self-play search (`[config.search]` in a run file; `--set search.simulations=N`)."""
    temperature: float = 1.0
    """Move sampling temperature over visit counts during the first `temperature_moves`."""
    temperature_moves: int = 10
    """Moves of each game sampled at `temperature`; later moves take the most visited."""
    moves_per_iteration: int = 8
    """Self-play moves per game in one iteration."""
    train_steps: int = 16
    """Gradient steps per iteration."""
    batch_size: int = 256
    """Positions per gradient step."""
    buffer_size: int = 50_000
    """Replay buffer capacity in positions."""
    min_buffer: int = 512
    """Positions the buffer must hold before training starts."""
    lr: float = 1e-3
    """Adam learning rate."""
    weight_decay: float = 1e-4
    """L2 weight decay (AdamW)."""
    value_loss_weight: float = 1.0
    """Weight of the value loss beside the policy cross-entropy."""
    augment: bool = True
    """Train on random board symmetries of the samples (mirror for connect four)."""
    channels: int = 32
    """Channels of the residual tower."""
    blocks: int = 3
    """Residual blocks in the tower."""
    channels_last: bool = False
    """Keep the net's conv weights and activations channels-last (NHWC). On one CPU thread
    it made connect-four self-play ~10% and training ~23% cheaper per move (README); off by
    default, as it changes float rounding and so the moves of a run with a given seed."""
    global_pooling: bool = False
    """Make the tower's last residual block a global-pooling block (KataGo): a bias for each
    channel from the board-wide mean and max of a quarter of the channels."""
    torch_compile: bool = False
    """Run the net's forward in search under `torch.compile` (dynamic batch size; training
    stays eager). Costs seconds of compiling per process and a C++ compiler; on one CPU
    thread it ran the connect-four net's search batches 1.2x faster, which made self-play
    only 5-10% cheaper (README). Off by default for the same reason as `channels_last`."""
    eval_simulations: int = 64
    """Simulations per move of `policy()` (evaluation play)."""
    targets: SelfPlayTargets = SelfPlayTargets()
    """Playout cap randomization and value-target mixing (`[config.targets]` in a run file)."""
    eval_games: int = 20
    """Games against pyspiel.MCTSBot at each `--eval-every` evaluation (colors alternating)."""
    eval_bot_simulations: int = 200
    """Random-rollout simulations per move of that bot."""

    def validate(self) -> None:
        """Refuse settings that cannot run."""
        for name in ("num_games", "moves_per_iteration", "batch_size", "channels", "eval_games"):
            if getattr(self, name) < 1:
                raise ConfigError(f"AlphaZeroConfig.{name}={getattr(self, name)}: expected >= 1")
        least = 1 if self.global_pooling else 0
        if self.blocks < least:
            raise ConfigError(
                f"AlphaZeroConfig.blocks={self.blocks}: expected >= {least}"
                + (" (global_pooling replaces the tower's last block)" if least else "")
            )
        if self.min_buffer > self.buffer_size:
            raise ConfigError(
                f"AlphaZeroConfig.min_buffer={self.min_buffer} exceeds "
                f"buffer_size={self.buffer_size}"
            )
        self.search.validate()
        self.targets.validate(self.search.simulations)


CONFIG = AlphaZeroConfig
ALGOS: dict[str, dict[str, Any]] = {"alphazero": {}}


OPENSPIEL_PREFIX = "openspiel/"
"""Env ids `openspiel/<game>` are played on OpenSpiel's own rules (`OpenSpielGame`)."""


def rules_for_env(env_id: str, env_kwargs: dict[str, Any] | None = None) -> SelfPlayGame:
    """The rules AlphaZero plays for `env_id`: marl's batched boards for `classic/` ids, or
    OpenSpiel's for `openspiel/<game>` (any two-player zero-sum deterministic turn game;
    env kwargs are the game's parameters, e.g. `board_size=5` for hex)."""
    if env_id.startswith(OPENSPIEL_PREFIX):
        from marl.search.openspiel_game import OpenSpielGame

        try:
            return OpenSpielGame(env_id.removeprefix(OPENSPIEL_PREFIX), params=env_kwargs)
        except ValueError as err:
            raise ConfigError(f"alphazero cannot learn {env_id}: {err}") from None
    if env_kwargs:
        raise ConfigError(
            f"alphazero plays the batched rules of {env_id!r}, which take no env kwargs; "
            f"got {sorted(env_kwargs)} (OpenSpiel games take theirs: openspiel/<game>)"
        )
    return game_for_env(env_id)


def make_net(game: SelfPlayGame, config: AlphaZeroConfig) -> PolicyValueNet:
    """The policy/value net `config` describes, for `game`."""
    return PolicyValueNet(
        game.obs_shape, game.num_actions, config.channels, config.blocks,
        channels_last=config.channels_last, global_pooling=config.global_pooling,
    )  # fmt: skip


def loss(net: torch.nn.Module, batch: Batch, config: AlphaZeroConfig) -> tuple[Tensor, dict]:
    """Policy cross-entropy to the search policy + weighted value MSE to the game result."""
    logits, values = net(batch.obs)
    policy_loss = -(batch.policy * F.log_softmax(logits, dim=1)).sum(1).mean()
    value_loss = F.mse_loss(values, batch.value)
    total = policy_loss + config.value_loss_weight * value_loss
    target_entropy = -(batch.policy * batch.policy.clamp(min=1e-12).log()).sum(1).mean()
    stats = {"policy_loss": policy_loss.item(), "value_loss": value_loss.item()}
    stats |= {"loss": total.item(), "policy_target_entropy": target_entropy.item()}
    return total, stats


def game_stats(returns: Tensor, lengths: Tensor) -> dict[str, float]:
    """Each player's mean result, the draw rate and the mean length of finished games
    (returns [G, 2], lengths [G]); nothing when no game finished."""
    if not len(returns):
        return {}
    return {
        "return/player_0": returns[:, 0].mean().item(),
        "return/player_1": returns[:, 1].mean().item(),
        "draw_rate": (returns[:, 0] == 0).float().mean().item(),
        "game_length": lengths.float().mean().item(),
    }


@dataclass(frozen=True)
class SelfPlayGames:
    """A worker's share of the self-play games: the rules and how many games it keeps going."""

    rules: SelfPlayGame
    num_games: int


class Carry(NamedTuple):
    """A worker's running self-play games and the generator that draws their noise."""

    selfplay: SelfPlay
    rng: np.random.Generator
    version: int  # the net version the trees were grown with


class Experience(NamedTuple):
    """The positions of the games that finished while one worker played."""

    samples: Batch  # every position of the finished games, valued by their results
    returns: Tensor  # [G, 2] results for the first and second player
    lengths: Tensor  # [G] moves each game took
    env_steps: int  # self-play moves made (over all the worker's games)


class AlphaZeroLearner:
    """Self-play + training on one two-player board game (follows `marl.core.learner.Learner`)."""

    def __init__(self, spec: VecSpec, config: AlphaZeroConfig, seed: int, device: Any = "cpu"):
        config.validate()
        self.spec, self.config, self.device = spec, config, torch.device(device)
        self.game = rules_for_env(spec.env_id, spec.env_kwargs)
        with seeded_init(child_seed(seed, INIT)):
            self.net = make_net(self.game, config).to(self.device).eval()
        self.optimizer = torch.optim.AdamW(
            self.net.parameters(), lr=config.lr, weight_decay=config.weight_decay, foreach=True
        )
        self.gen = torch_generator(child_seed(seed, LEARN))
        self._buffer: ReplayBuffer | None = None  # made on first use: acting copies need none
        self.evaluator: Evaluator = NetEvaluator(self.net, config.torch_compile)
        self.version = 0  # bumped whenever the weights change
        self.env_steps = 0
        self.games_played = 0

    @property
    def buffer(self) -> ReplayBuffer:
        """The replay buffer of self-play positions (allocated when first needed)."""
        if self._buffer is None:
            game = self.game
            self._buffer = ReplayBuffer(self.config.buffer_size, game.obs_shape, game.num_actions)
        return self._buffer

    # -- acting ---------------------------------------------------------------------------
    def start(self, env: SelfPlayGames, seed: int) -> Carry:
        """Fresh self-play games (the worker's share of `num_games`) on the batched rules."""
        cfg = self.config
        selfplay = SelfPlay(env.rules, self.evaluator, cfg.search, env.num_games,
                            cfg.temperature, cfg.temperature_moves, self.device,
                            cfg.targets)  # fmt: skip
        return Carry(selfplay, np.random.default_rng(seed), self.version)

    def collect(self, env: SelfPlayGames, carry: Carry) -> tuple[Experience, Carry]:
        """`moves_per_iteration` moves in every game; the games that finished meanwhile."""
        if carry.version != self.version:  # trees grown by an older net: regrow them
            carry.selfplay.mcts.reset(carry.selfplay.mcts.root_states())
            carry = carry._replace(version=self.version)
        finished = [carry.selfplay.step(carry.rng) for _ in range(self.config.moves_per_iteration)]
        samples = Batch(*(torch.cat(xs) for xs in zip(*(f.samples for f in finished))))
        returns = torch.cat([f.returns for f in finished])
        lengths = torch.cat([f.lengths for f in finished])
        moves = self.config.moves_per_iteration * len(carry.selfplay.length)
        return Experience(samples, returns, lengths, moves), carry

    def weights(self) -> dict[str, Tensor]:
        """The network's weights, on the CPU."""
        return cpu_state(self.net)

    def load_weights(self, weights: dict[str, Tensor]) -> None:
        """Search with the learner's `weights()` from now on."""
        self.net.load_state_dict(weights)
        self.version += 1

    # -- learning -------------------------------------------------------------------------
    def learn(self, experience: Sequence[Experience]) -> dict[str, float]:
        """Store the finished games, then `train_steps` updates once the buffer is full enough."""
        stats = self._record(experience)
        if self.buffer.size >= self.config.min_buffer:
            steps = [self.update() for _ in range(self.config.train_steps)]
            stats |= {k: float(np.mean([s[k] for s in steps])) for k in steps[0]}
            self.version += 1
        return stats

    def _record(self, experience: Sequence[Experience]) -> dict[str, float]:
        for part in experience:
            self.buffer.add(*(t.cpu() for t in part.samples))
            self.env_steps += part.env_steps
        returns = torch.cat([e.returns for e in experience]).cpu()
        lengths = torch.cat([e.lengths for e in experience]).float().cpu()
        self.games_played += len(returns)
        stats = {"games": float(self.games_played), "buffer_size": float(self.buffer.size)}
        return stats | game_stats(returns, lengths)

    def update(self) -> dict[str, float]:
        """One gradient step on a (symmetry-augmented) minibatch from the replay buffer."""
        batch = self.buffer.sample(self.config.batch_size, self.gen)
        if self.config.augment:
            batch = augment(self.game, batch, self.gen)
        batch = Batch(*(t.to(self.device) for t in batch))
        return gradient_step(self.net, self.optimizer, lambda: loss(self.net, batch, self.config))

    # -- state ----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Weights, optimizer, buffer, RNG and counters (tensors and plain values only)."""
        return {
            "net": self.net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "buffer": self.buffer.state_dict(),
            "gen": self.gen.get_state(),
            "env_steps": self.env_steps,
            "games_played": self.games_played,
            "config": config_to_dict(self.config),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` returned."""
        self.net.load_state_dict(state["net"])
        load_optimizer(self.optimizer, state["optimizer"])
        self.buffer.load_state_dict(state["buffer"])
        self.gen.set_state(state["gen"])
        self.env_steps, self.games_played = int(state["env_steps"]), int(state["games_played"])
        self.version += 1

    def player(self, simulations: int | None = None) -> AlphaZeroPlayer:
        """A greedy search player on the current net (for leagues and tests)."""
        cfg = self.config
        return AlphaZeroPlayer(self.net, simulations or cfg.eval_simulations, self.game,
                               cfg.search.greedy(), device=self.device,
                               torch_compile=cfg.torch_compile)  # fmt: skip

    def policy(self) -> SearchPolicy:
        """Evaluation policy over VecEnv arrays: search from each acting agent's observation."""
        return SearchPolicy(self.player(), np.random.default_rng(0))

    def close(self) -> None:
        """Nothing to free."""


def make_learner(
    spec: VecSpec, config: AlphaZeroConfig, seed: int, device: Any = "cpu"
) -> AlphaZeroLearner:
    """The AlphaZero learner for a two-player board game: connect four and tic-tac-toe on
    marl's batched rules, or any OpenSpiel two-player zero-sum game (`openspiel/<game>`)."""
    return AlphaZeroLearner(spec, config, seed, device)


def make_env(spec: VecSpec, config: AlphaZeroConfig, num_envs: int, seed: int) -> SelfPlayGames:
    """What a self-play worker plays: `num_envs` games on the spec's rules."""
    return SelfPlayGames(rules_for_env(spec.env_id, spec.env_kwargs), num_envs)
