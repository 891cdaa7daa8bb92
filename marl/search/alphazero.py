"""AlphaZero: batched self-play with search, a replay buffer, and a policy/value net fit to it.

One `iterate` = `moves_per_iteration` self-play moves in each of `num_games` games (one batched
search per move), then `train_steps` gradient steps on minibatches from the replay buffer. The
next search already uses the new weights: self-play and training share the net.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from marl.games import game_for_env
from marl.games.lines import LineGame
from marl.run.config import config_to_dict
from marl.run.learner import rng_state, set_rng_state
from marl.search.evaluator import NetEvaluator
from marl.search.mcts import SearchConfig
from marl.search.net import PolicyValueNet
from marl.search.players import AlphaZeroPlayer, SearchPolicy
from marl.search.replay import Batch, ReplayBuffer, augment
from marl.search.selfplay import SelfPlay
from marl.search.strength import StrengthResult, evaluate_checkpoint


@dataclass(frozen=True)
class AlphaZeroConfig:
    """Settings of AlphaZero self-play and training."""

    num_games: int = 64
    """Self-play games played at once (the batch of every network call in search)."""
    simulations: int = 64
    """Search simulations per self-play move."""
    c_puct: float = 1.5
    """PUCT exploration weight."""
    dirichlet_alpha: float = 0.5
    """Concentration of the root Dirichlet noise in self-play."""
    dirichlet_fraction: float = 0.25
    """Weight of the root noise in the root priors (0 turns it off)."""
    gumbel: bool = False
    """Gumbel root selection with sequential halving instead of PUCT + noise at the root."""
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
    eval_simulations: int = 64
    """Simulations per move of `policy()` (evaluation play)."""

    def validate(self) -> None:
        """Refuse settings that cannot run."""
        for name in ("num_games", "simulations", "moves_per_iteration", "batch_size", "channels"):
            if getattr(self, name) < 1:
                raise ValueError(f"AlphaZeroConfig.{name}={getattr(self, name)}: expected >= 1")
        if self.min_buffer > self.buffer_size:
            raise ValueError(f"min_buffer={self.min_buffer} exceeds buffer_size={self.buffer_size}")

    def search(self) -> SearchConfig:
        """The self-play search settings."""
        return SearchConfig(
            simulations=self.simulations,
            c_puct=self.c_puct,
            dirichlet_alpha=self.dirichlet_alpha,
            dirichlet_fraction=self.dirichlet_fraction,
            gumbel=self.gumbel,
        )


CONFIG = AlphaZeroConfig
ALGOS: dict[str, dict[str, Any]] = {"alphazero": {}}


def make_net(game: LineGame, config: AlphaZeroConfig) -> PolicyValueNet:
    """The policy/value net `config` describes, for `game`."""
    return PolicyValueNet(game.obs_shape, game.num_actions, config.channels, config.blocks)


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


class AlphaZeroLearner:
    """Self-play + training on one two-player board game (follows marl.run.learner.Learner)."""

    def __init__(self, env_id: str, config: AlphaZeroConfig, seed: int, device: torch.device):
        config.validate()
        self.env_id, self.config, self.device = env_id, config, device
        self.game = game_for_env(env_id)
        torch.manual_seed(seed)  # weight init only; every later draw uses the generators below
        self.net = make_net(self.game, config).to(device)
        self.optimizer = torch.optim.AdamW(
            self.net.parameters(), lr=config.lr, weight_decay=config.weight_decay
        )
        self.rng = np.random.default_rng(seed)
        self.gen = torch.Generator().manual_seed(seed)
        self.buffer = ReplayBuffer(config.buffer_size, self.game.obs_shape, self.game.num_actions)
        self.selfplay = SelfPlay(
            self.game, NetEvaluator(self.net), config.search(), config.num_games,
            config.temperature, config.temperature_moves, device,
        )  # fmt: skip
        self.env_steps = 0
        self.games_played = 0

    def iterate(self) -> dict[str, float]:
        """Self-play `moves_per_iteration` moves in every game, then `train_steps` updates."""
        finished = [self.selfplay.step(self.rng) for _ in range(self.config.moves_per_iteration)]
        self.env_steps += self.config.moves_per_iteration * self.config.num_games
        stats = self._record(finished)
        if self.buffer.size >= self.config.min_buffer:
            steps = [self.update() for _ in range(self.config.train_steps)]
            stats |= {k: float(np.mean([s[k] for s in steps])) for k in steps[0]}
        return stats

    def _record(self, finished: list) -> dict[str, float]:
        for f in finished:
            self.buffer.add(*f.samples)
        returns = torch.cat([f.returns for f in finished])
        lengths = torch.cat([f.lengths for f in finished]).float()
        self.games_played += len(returns)
        stats = {"games": float(self.games_played), "buffer_size": float(self.buffer.size)}
        if len(returns):
            stats["return/player_0"] = returns[:, 0].mean().item()
            stats["return/player_1"] = returns[:, 1].mean().item()
            stats["draw_rate"] = (returns[:, 0] == 0).float().mean().item()
            stats["game_length"] = lengths.mean().item()
        return stats

    def update(self) -> dict[str, float]:
        """One gradient step on a (symmetry-augmented) minibatch from the replay buffer."""
        batch = self.buffer.sample(self.config.batch_size, self.gen)
        if self.config.augment:
            batch = augment(self.game, batch, self.gen)
        batch = Batch(*(t.to(self.device) for t in batch))
        self.net.train()
        total, stats = loss(self.net, batch, self.config)
        self.optimizer.zero_grad()
        total.backward()
        self.optimizer.step()
        return stats

    def state_dict(self) -> dict[str, Any]:
        """Weights, optimizer, buffer, RNGs and counters (tensors and plain values only)."""
        return {
            "net": self.net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "buffer": self.buffer.state_dict(),
            "rng": rng_state(self.rng),
            "gen": self.gen.get_state(),
            "env_steps": self.env_steps,
            "games_played": self.games_played,
            "config": config_to_dict(self.config),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` returned (self-play restarts from fresh games)."""
        self.net.load_state_dict(state["net"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.buffer.load_state_dict(state["buffer"])
        set_rng_state(self.rng, state["rng"])
        self.gen.set_state(state["gen"])
        self.env_steps, self.games_played = int(state["env_steps"]), int(state["games_played"])
        self.selfplay.mcts.reset(self.game.initial(self.config.num_games, self.device))
        self.selfplay.length.zero_()

    def player(self, simulations: int | None = None) -> AlphaZeroPlayer:
        """A greedy search player on the current net (for leagues and tests)."""
        sims = simulations or self.config.eval_simulations
        search = dataclasses.replace(self.config.search(), dirichlet_fraction=0.0, gumbel=False)
        return AlphaZeroPlayer(self.net, sims, self.game, search, device=self.device)

    def policy(self) -> SearchPolicy:
        """Evaluation policy over VecEnv arrays: search from each acting agent's observation."""
        return SearchPolicy(self.player(), np.random.default_rng(0))


def make_learner(
    env_id: str,
    config: AlphaZeroConfig,
    seed: int,
    device: torch.device,
    env_kwargs: dict[str, Any] | None = None,
) -> AlphaZeroLearner:
    """The AlphaZero learner for `env_id` (classic/connect_four-v0 or classic/tic_tac_toe-v0)."""
    if env_kwargs:
        raise ValueError(
            f"alphazero plays the batched rules of {env_id!r}, which take no env kwargs; "
            f"got {sorted(env_kwargs)}"
        )
    return AlphaZeroLearner(env_id, config, seed, device)


def evaluate(source: str | Path, *, episodes: int = 100, seed: int = 0) -> StrengthResult:
    """`marl eval` for alphazero: games vs pyspiel.MCTSBot(1,000 rollouts), colors alternating."""
    return evaluate_checkpoint(source, games=episodes, seed=seed)
