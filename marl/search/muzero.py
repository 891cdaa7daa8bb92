"""MuZero: batched self-play searching a learned model, a trajectory replay, K-step unrolls.

Two settings on one learner:
- two-player zero-sum board games (`classic/...`, `openspiel/<game>`), played on the same
  batched rules AlphaZero uses (`rules_for_env`); the model's side to move alternates, the
  reward is the result of the final move (from the mover's view), discount 1;
- single-agent envs with discrete actions (e.g. `gym/CartPole-v1`) on a marl vector env,
  with their own rewards and `discount`; the search min-max normalises Q there.

Every move searches a fresh tree rooted at the representation of the real observation (with
the real legal moves), over the dynamics (`marl.search.muzero_model.ModelGame`) and the
prediction net. `learn` stores finished episodes and takes `train_steps` gradient steps on
K-step unrolls (value, reward and policy cross-entropies against categorical supports of h;
unrolled steps' losses scaled by 1/K and the hidden state's gradient halved between steps,
as in the paper). Options: Gumbel MuZero (`search.gumbel`), bootstrap values from a target
net ("fresh") instead of the search, and reanalyse (re-search old episodes with the current
net for new policy and value targets).
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from marl.core.checkpoint import load_optimizer
from marl.core.config import ConfigError, build_config, config_to_dict
from marl.core.learner import cpu_state, mean_returns
from marl.core.seeding import INIT, LEARN, child_seed, seeded_init, torch_generator
from marl.core.spec import VecSpec
from marl.search.alphazero import OPENSPIEL_PREFIX, SelfPlayGames, game_stats, rules_for_env
from marl.search.config import SearchConfig, SearchResult
from marl.search.game import SelfPlayGame
from marl.search.mcts import MCTS, select_action
from marl.search.muzero_model import ModelGame, MuZeroEvaluator, MuZeroModel, make_net
from marl.search.muzero_replay import Episode, TrajectoryReplay, Unroll
from marl.search.muzero_targets import to_support
from marl.search.net import gradient_step
from marl.search.players import SearchPolicy
from marl.search.tree import put


@dataclass(frozen=True)
class MuZeroConfig:
    """Settings of MuZero self-play and training."""

    num_envs: int = 32
    """Games (episodes) played at once: the batch of every network call in search."""
    search: SearchConfig = SearchConfig(
        simulations=32, dirichlet_alpha=0.3, dirichlet_fraction=0.25, reuse_tree=False
    )
    """The self-play search (`--set search.simulations=N`, `search.gumbel=true`)."""
    temperature: float = 1.0
    """Move sampling temperature over visit counts for the first `temperature_moves` moves."""
    temperature_moves: int = 10
    """Moves of each episode sampled at `temperature`; later ones take the most visited."""
    moves_per_iteration: int = 8
    """Moves per env in one iteration."""
    train_steps: int = 16
    """Gradient steps per iteration."""
    batch_size: int = 128
    """Unrolls per gradient step."""
    unroll_steps: int = 5
    """K: moves the dynamics is unrolled in training."""
    td_steps: int = 10
    """n of the n-step value targets."""
    discount: float = 0.997
    """Discount of single-agent envs (two-player games use 1)."""
    buffer_size: int = 20_000
    """Replay capacity in positions (whole episodes are dropped, oldest first)."""
    min_buffer: int = 256
    """Positions the replay must hold before training starts."""
    lr: float = 1e-3
    """Adam learning rate."""
    weight_decay: float = 1e-4
    """L2 weight decay (AdamW)."""
    value_loss_weight: float = 0.25
    """Weight of the value loss (the paper's 0.25 for reanalysed targets)."""
    net: str = "mlp"
    """"mlp": MLPs over flattened observations; "conv": residual conv towers whose hidden
    state is planes of the board (board games' [C, H, W] observations only)."""
    hidden: int = 64
    """Size of the hidden state (net="mlp")."""
    width: int = 128
    """Width of the networks' hidden layers (net="mlp")."""
    channels: int = 32
    """Channels of the conv towers and of the hidden state's planes (net="conv")."""
    blocks: int = 2
    """Residual blocks of the representation and of the dynamics tower (net="conv")."""
    support: int = 20
    """Value and reward supports are the integers -support..support of h(x)."""
    value_target: str = "search"
    """Bootstrap values of n-step targets: "search" (root values) or "fresh" (target net)."""
    target_update: int = 10
    """Learn calls between refreshes of the target net (value_target="fresh")."""
    consistency_weight: float = 0.0
    """Weight of EfficientZero's consistency loss (Ye et al. 2021): after each unrolled move,
    1 - cosine similarity between the dynamics' hidden state and the representation of the real
    position there (no gradient into that target). 0 turns it off."""
    reanalyse: float = 0.0
    """Fraction of stored episodes re-searched with the current net before each learn."""
    eval_simulations: int = 32
    """Simulations per move of `policy()` and `player()`."""

    def validate(self) -> None:
        """Refuse settings that cannot run."""
        for name in ("num_envs", "moves_per_iteration", "batch_size", "unroll_steps",
                     "td_steps", "hidden", "width", "channels", "support",
                     "target_update"):  # fmt: skip
            if getattr(self, name) < 1:
                raise ConfigError(f"MuZeroConfig.{name}={getattr(self, name)}: expected >= 1")
        if self.net not in ("mlp", "conv"):
            raise ConfigError(f"MuZeroConfig.net={self.net!r}: expected 'mlp' or 'conv'")
        if self.value_target not in ("search", "fresh"):
            raise ConfigError(
                f"MuZeroConfig.value_target={self.value_target!r}: expected 'search' or 'fresh'"
            )
        if self.consistency_weight < 0:
            raise ConfigError(
                f"MuZeroConfig.consistency_weight={self.consistency_weight}: expected >= 0"
            )
        if not 0.0 <= self.reanalyse <= 1.0:
            raise ConfigError(f"MuZeroConfig.reanalyse={self.reanalyse}: expected 0..1")
        if not 0.0 < self.discount <= 1.0:
            raise ConfigError(f"MuZeroConfig.discount={self.discount}: expected 0 < d <= 1")
        if self.min_buffer > self.buffer_size:
            raise ConfigError(
                f"MuZeroConfig.min_buffer={self.min_buffer} exceeds buffer_size={self.buffer_size}"
            )
        self.search.validate()


CONFIG = MuZeroConfig
ALGOS: dict[str, dict[str, Any]] = {"muzero": {}}


def board_rules(spec: VecSpec) -> SelfPlayGame | None:
    """The batched two-player rules of a board-game spec, None for a single-agent env."""
    if spec.env_id.startswith(("classic/", OPENSPIEL_PREFIX)):
        return rules_for_env(spec.env_id, spec.env_kwargs)
    if len(spec.agents) != 1 or spec.action_dim or spec.num_actions < 1:
        raise ConfigError(
            f"muzero learns two-player board games (classic/..., openspiel/<game>) or "
            f"single-agent envs with discrete actions; {spec.env_id!r} has "
            f"{len(spec.agents)} agents and {'continuous' if spec.action_dim else 'no'} actions"
        )
    return None


def search_model(
    net: MuZeroModel, two_player: bool, config: SearchConfig, obs: Tensor, legal: Tensor,
    to_play: Tensor, rng: np.random.Generator,
) -> SearchResult:  # fmt: skip
    """One batched search over the learned model from B real observations (moved to the
    net's device)."""
    device = next(net.parameters()).device
    model = ModelGame(net, two_player)
    mcts = MCTS(model, MuZeroEvaluator(net), config, device)
    mcts.reset(model.root_states(obs.to(device), legal.to(device), to_play.to(device)))
    return mcts.search(rng)


def choose(result: SearchResult, temperature: float, explore: Tensor, rng) -> Tensor:
    """Gumbel's own moves, else visit counts sampled at `temperature` where `explore`."""
    if result.action is not None:
        return result.action
    sampled = select_action(result.visit_counts, temperature, rng)
    return torch.where(explore, sampled, result.visit_counts.argmax(1))


class BoardEpisodes:
    """B games of a two-player board game in self-play, restarted as they end."""

    def __init__(self, rules: SelfPlayGame, num_games: int):
        self.rules, self.states = rules, rules.initial(num_games)

    def observe(self) -> tuple[Tensor, Tensor, Tensor]:
        """(obs planes, legal [B, A], side to move [B])."""
        rules = self.rules
        return rules.observe(self.states), rules.legal_mask(self.states), rules.to_play(self.states)

    def step(self, actions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(mover's reward [B], done [B], per-player results [B, 2]) of `actions`."""
        mover = self.rules.to_play(self.states)
        self.states = self.rules.play(self.states, actions)
        done, returns = self.rules.outcome(self.states)
        reward = returns.gather(1, mover[:, None])[:, 0].float()
        finished = done.nonzero()[:, 0]
        if finished.numel():
            put(self.states, (finished,), self.rules.initial(finished.numel()))
        return reward, done, returns.float()

    def cut(self) -> tuple[Tensor, Tensor | None]:
        """Games never hit a time limit: (all False [B], no final observations)."""
        return torch.zeros(len(self.states), dtype=torch.bool), None


class EnvEpisodes:
    """B single-agent episodes on a marl vector env (it restarts them itself)."""

    def __init__(self, vec: Any, seed: int):
        self.vec, self.last = vec, vec.reset(seed=seed)

    def observe(self) -> tuple[Tensor, Tensor, Tensor]:
        """(obs [B, O], legal [B, A], side to move: all 0)."""
        obs = torch.as_tensor(np.asarray(self.last.obs)[:, 0], dtype=torch.float32)
        legal = torch.as_tensor(np.asarray(self.last.action_mask)[:, 0]).bool()
        return obs, legal, torch.zeros(len(obs), dtype=torch.long)

    def step(self, actions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(reward [B], done [B], rewards again as [B, 1])."""
        self.last = self.vec.step(actions.cpu().numpy()[:, None])
        reward = torch.as_tensor(np.asarray(self.last.reward)[:, 0], dtype=torch.float32)
        done = torch.as_tensor(np.asarray(self.last.terminated | self.last.truncated))
        return reward, done, reward[:, None]

    def cut(self) -> tuple[Tensor, Tensor | None]:
        """(episodes a time limit cut at the last step [B], the final observations [B, O],
        None when no episode was cut)."""
        last = self.last
        cut = torch.as_tensor(np.asarray(last.truncated) & ~np.asarray(last.terminated))
        if not bool(cut.any()):  # the usual step: no copy of the final observations
            return cut, None
        return cut, torch.as_tensor(np.asarray(last.final_obs)[:, 0], dtype=torch.float32)


class Carry(NamedTuple):
    """A worker's running episodes, their moves so far, and its acting generator."""

    episodes: BoardEpisodes | EnvEpisodes
    rng: np.random.Generator
    running: list[list[tuple[Tensor, ...]]]  # per env: (obs, legal, to_play, action, reward,
    # policy, value) of each move so far
    totals: Tensor  # [B, players] returns so far


class Experience(NamedTuple):
    """Episodes that finished while one worker played."""

    episodes: list[Episode]
    returns: Tensor  # [G, 2] board results, or [G, 1] single-agent returns
    lengths: Tensor  # [G] moves each took
    env_steps: int


def unroll_loss(net: MuZeroModel, batch: Unroll, config: MuZeroConfig) -> tuple[Tensor, dict]:
    """Value, reward and policy cross-entropies over a K-step unroll of the model (and the
    consistency loss when `config.consistency_weight` > 0)."""
    k_steps = batch.actions.shape[1]
    hidden = net.initial(batch.obs)
    targets = _consistency_targets(net, batch) if config.consistency_weight > 0 else None
    value_loss = reward_loss = policy_loss = consistency = hidden.new_zeros(())
    for k in range(k_steps + 1):
        scale = 1.0 if k == 0 else 1.0 / k_steps
        logits, value_logits = net.predict(hidden)
        value_target = to_support(batch.values[:, k], net.support)
        value_ce = _cross_entropy(value_logits, value_target) * batch.value_mask[:, k]
        value_loss = value_loss + scale * value_ce.mean()
        per_sample = _cross_entropy(logits, batch.policies[:, k]) * batch.policy_mask[:, k]
        policy_loss = policy_loss + scale * per_sample.mean()
        if k < k_steps:
            hidden, reward_logits = net.recurrent(hidden, batch.actions[:, k])
            reward_target = to_support(batch.rewards[:, k], net.support)
            reward_loss = (
                reward_loss + _cross_entropy(reward_logits, reward_target).mean() / k_steps
            )
            if targets is not None:
                similarity = F.cosine_similarity(hidden, targets[:, k], dim=1)
                consistency = (
                    consistency + ((1 - similarity) * batch.policy_mask[:, k + 1]).mean() / k_steps
                )
            hidden = 0.5 * hidden + 0.5 * hidden.detach()  # halve the gradient into dynamics
    total = config.value_loss_weight * value_loss + reward_loss + policy_loss
    total = total + config.consistency_weight * consistency
    stats = {"value_loss": value_loss.item(), "reward_loss": reward_loss.item(),
             "policy_loss": policy_loss.item(), "loss": total.item()}  # fmt: skip
    if targets is not None:
        stats["consistency_loss"] = consistency.item()
    return total, stats


@torch.no_grad()
def _consistency_targets(net: MuZeroModel, batch: Unroll) -> Tensor:
    """[M, K, hidden] representations of the real positions after each unrolled move."""
    assert batch.later_obs is not None, "sample the replay with later_obs=True"
    m, k = batch.later_obs.shape[:2]
    return net.initial(batch.later_obs.flatten(0, 1)).view(m, k, -1)


def _cross_entropy(logits: Tensor, target: Tensor) -> Tensor:
    return -(target * F.log_softmax(logits, dim=-1)).sum(-1)


class MuZeroLearner:
    """Self-play on a learned model + K-step unrolled training (`marl.core.learner.Learner`)."""

    def __init__(self, spec: VecSpec, config: MuZeroConfig, seed: int, device: Any = "cpu"):
        config.validate()
        self.spec, self.config, self.device = spec, config, torch.device(device)
        self.game = board_rules(spec)
        self.two_player = self.game is not None
        obs_shape = self.game.obs_shape if self.game is not None else (spec.obs_dim,)
        actions = self.game.num_actions if self.game is not None else spec.num_actions
        with seeded_init(child_seed(seed, INIT)):
            self.net = make_net(obs_shape, actions, config.net, hidden=config.hidden,
                                width=config.width, channels=config.channels,
                                blocks=config.blocks, support=config.support)  # fmt: skip
        self.net.to(self.device)
        self.target = copy.deepcopy(self.net)
        self.optimizer = torch.optim.AdamW(
            self.net.parameters(), lr=config.lr, weight_decay=config.weight_decay, foreach=True
        )
        self.gen = torch_generator(child_seed(seed, LEARN))
        discount = 1.0 if self.two_player else config.discount
        self.search = dataclasses.replace(
            config.search, discount=discount, normalize_q=not self.two_player
        )
        self.replay = TrajectoryReplay(config.buffer_size, config.td_steps, discount,
                                       self.two_player)  # fmt: skip
        self.env_steps = self.games_played = self.updates = 0

    # -- acting ---------------------------------------------------------------------------
    def start(self, env: Any, seed: int) -> Carry:
        """Fresh episodes: self-play games on the board rules, or the worker's vector env."""
        if isinstance(env, SelfPlayGames):
            episodes: BoardEpisodes | EnvEpisodes = BoardEpisodes(env.rules, env.num_games)
            width = 2
        else:
            episodes, width = EnvEpisodes(env, seed), 1
        num = len(episodes.observe()[0])
        return Carry(episodes, np.random.default_rng(seed), [[] for _ in range(num)],
                     torch.zeros(num, width))  # fmt: skip

    def collect(self, env: Any, carry: Carry) -> tuple[Experience, Carry]:
        """`moves_per_iteration` searched moves in every episode; the ones that finished."""
        cfg, finished, returns = self.config, [], []
        self.net.eval()
        for _ in range(cfg.moves_per_iteration):
            obs, legal, to_play = carry.episodes.observe()
            result = search_model(
                self.net, self.two_player, self.search, obs, legal, to_play, carry.rng
            )
            explore = torch.tensor([len(r) < cfg.temperature_moves for r in carry.running])
            actions = choose(result, cfg.temperature, explore, carry.rng).cpu()
            reward, done, step_returns = carry.episodes.step(actions)
            carry.totals.add_(step_returns if not self.two_player else 0.0)
            policy, value = result.policy.cpu(), result.root_value.cpu()
            ends = self._time_limit_ends(*carry.episodes.cut())
            for b, moves in enumerate(carry.running):
                moves.append((obs[b], legal[b], to_play[b], actions[b], reward[b], policy[b],
                               value[b]))  # fmt: skip
                if bool(done[b]):
                    fields = [torch.stack(x) for x in zip(*moves)]
                    finished.append(Episode(*fields, *ends.get(b, ())))
                    returns.append(step_returns[b] if self.two_player else carry.totals[b].clone())
                    carry.totals[b] = 0.0
                    moves.clear()
        steps = cfg.moves_per_iteration * len(carry.running)
        width = 2 if self.two_player else 1
        stacked = torch.stack(returns) if returns else torch.zeros(0, width)
        lengths = torch.tensor([len(e.actions) for e in finished], dtype=torch.long)
        return Experience(finished, stacked, lengths, steps), carry

    def _time_limit_ends(
        self, cut: Tensor, final_obs: Tensor | None
    ) -> dict[int, tuple[Tensor, Tensor]]:
        """For each episode a time limit cut at this step: (its final observation [1, O], the
        net's value of it [1]), what its value targets bootstrap from."""
        rows = cut.nonzero()[:, 0].tolist()
        if not rows or final_obs is None:
            return {}
        last = final_obs[rows]  # a copy: the episode keeps only its own rows
        values = self._values(self.net, last)
        return {b: (last[i : i + 1], values[i : i + 1]) for i, b in enumerate(rows)}

    def weights(self) -> dict[str, Tensor]:
        """The networks' weights, on the CPU."""
        return cpu_state(self.net)

    def load_weights(self, weights: dict[str, Tensor]) -> None:
        """Search with the learner's `weights()` from now on."""
        self.net.load_state_dict(weights)

    # -- learning -------------------------------------------------------------------------
    def learn(self, experience: Sequence[Experience]) -> dict[str, float]:
        """Store finished episodes; once the replay is full enough, reanalyse and train."""
        stats = self._record(experience)
        if self.replay.size >= self.config.min_buffer:
            self._reanalyse()
            steps = [self.update() for _ in range(self.config.train_steps)]
            stats |= {k: float(np.mean([s[k] for s in steps])) for k in steps[0]}
            self.updates += 1
            if (
                self.config.value_target == "fresh"
                and self.updates % self.config.target_update == 0
            ):
                self._refresh_target()
        return stats

    def _record(self, experience: Sequence[Experience]) -> dict[str, float]:
        fresh = self.config.value_target == "fresh"
        for part in experience:
            for episode in part.episodes:
                if fresh:
                    episode = episode._replace(**self._bootstrap(episode, self.target))
                self.replay.add(episode)
            self.env_steps += part.env_steps
        returns = torch.cat([e.returns for e in experience]).cpu()
        lengths = torch.cat([e.lengths for e in experience]).float()
        self.games_played += len(returns)
        stats = {"episodes": float(self.games_played), "buffer_size": float(self.replay.size)}
        if self.two_player:
            return stats | game_stats(returns, lengths)
        if len(returns):
            stats |= mean_returns(returns.numpy(), self.spec.teams)
            stats["episode_length"] = lengths.mean().item()
        return stats

    @torch.no_grad()
    def _values(self, net: MuZeroModel, obs: Tensor) -> Tensor:
        """[B] the net's values of observations, on the CPU."""
        return net.value(obs.to(self.device)).cpu()

    def _bootstrap(self, episode: Episode, net: MuZeroModel) -> dict[str, Tensor]:
        """New values of every position, and of a cut episode's final observation, by `net`."""
        fields = {"values": self._values(net, episode.obs)}
        if episode.cut:
            fields["final_value"] = self._values(net, episode.final_obs)
        return fields

    def _refresh_target(self) -> None:
        """Copy the net into the target net and re-bootstrap every stored episode from it."""
        self.target.load_state_dict(self.net.state_dict())
        for i, episode in enumerate(self.replay.episodes):
            self.replay.replace(i, **self._bootstrap(episode, self.target))

    def _reanalyse(self) -> None:
        """Re-search a `reanalyse` share of the stored episodes with the current net (one
        batched search over all their positions) for new policy (and value) targets."""
        count = math.ceil(self.config.reanalyse * len(self.replay.episodes))
        if count == 0:
            return
        picks = torch.randperm(len(self.replay.episodes), generator=self.gen)[:count].tolist()
        chosen = [self.replay.episodes[i] for i in picks]
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=self.gen))
        search = dataclasses.replace(self.search, dirichlet_fraction=0.0)
        self.net.eval()
        result = search_model(
            self.net, self.two_player, search,
            *(torch.cat([getattr(e, f) for e in chosen]) for f in ("obs", "legal", "to_play")),
            np.random.default_rng(seed),
        )  # fmt: skip
        sizes = [len(e.actions) for e in chosen]
        policies = result.policy.cpu().split(sizes)
        values = result.root_value.cpu().split(sizes)
        for i, policy, value in zip(picks, policies, values):
            fields = {"policies": policy}
            if self.config.value_target == "search":
                fields["values"] = value
                episode = self.replay.episodes[i]
                if episode.cut:  # no search after the last move: the net's own value there
                    fields["final_value"] = self._values(self.net, episode.final_obs)
            self.replay.replace(i, **fields)

    def update(self) -> dict[str, float]:
        """One gradient step on a minibatch of K-step unrolls."""
        batch = self.replay.sample(
            self.config.batch_size,
            self.config.unroll_steps,
            self.gen,
            later_obs=self.config.consistency_weight > 0,
        )
        batch = Unroll(*(None if t is None else t.to(self.device) for t in batch))
        objective = lambda: unroll_loss(self.net, batch, self.config)  # noqa: E731
        return gradient_step(self.net, self.optimizer, objective)

    # -- state ----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Nets, optimizer, replay, generator and counters (tensors and plain values)."""
        return {
            "net": self.net.state_dict(),
            "target": self.target.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "replay": self.replay.state_dict(),
            "gen": self.gen.get_state(),
            "counters": [self.env_steps, self.games_played, self.updates],
            "config": config_to_dict(self.config),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` returned."""
        self.net.load_state_dict(state["net"])
        self.target.load_state_dict(state["target"])
        load_optimizer(self.optimizer, state["optimizer"])
        self.replay.load_state_dict(state["replay"])
        self.gen.set_state(state["gen"])
        self.env_steps, self.games_played, self.updates = (int(x) for x in state["counters"])

    def player(self, simulations: int | None = None) -> MuZeroPlayer:
        """A greedy search player on the current net (board games: leagues and tests)."""
        sims = simulations or self.config.eval_simulations
        search = self.search.greedy(sims)  # the most visited move of a plain PUCT search
        return MuZeroPlayer(self.net, self.game, search, self.two_player, device=self.device)

    def policy(self) -> SearchPolicy | MuZeroPolicy:
        """Evaluation policy over VecEnv arrays: search from each acting agent's observation."""
        if self.two_player:
            return SearchPolicy(self.player(), np.random.default_rng(0))
        return MuZeroPolicy(self.player(), np.random.default_rng(0))

    def close(self) -> None:
        """Nothing to free."""


class MuZeroPlayer:
    """Chooses moves by a fresh batched search over a MuZero net's learned model."""

    def __init__(
        self, net: MuZeroModel, game: SelfPlayGame | None, search: SearchConfig, two_player: bool,
        temperature: float = 0.0, device: torch.device | str = "cpu",
    ) -> None:  # fmt: skip
        self.net, self.game, self.search, self.two_player = net, game, search, two_player
        self.temperature, self.device = temperature, torch.device(device)

    def act_obs(self, obs: Tensor, legal: Tensor, to_play: Tensor, rng=None) -> Tensor:
        """[B] moves from real observations, legal masks and sides to move."""
        if rng is None:
            if self.temperature > 0 or self.search.gumbel or self.search.dirichlet_fraction > 0:
                raise ValueError("this player draws random numbers: pass rng=np.random.Generator")
            rng = np.random.default_rng(0)  # never drawn from when the search is deterministic
        self.net.eval()
        result = search_model(self.net, self.two_player, self.search, obs, legal, to_play, rng)
        explore = torch.ones(len(obs), dtype=torch.bool, device=result.visit_counts.device)
        return choose(result, self.temperature, explore, rng).cpu()

    def act_batch(self, boards: Any, rng: np.random.Generator | None = None) -> Tensor:
        """[B] moves for unfinished board positions (the real rules give obs and masks)."""
        game = self.game
        if game is None:
            raise ValueError("act_batch needs board positions; a single-agent player uses act_obs")
        return self.act_obs(game.observe(boards), game.legal_mask(boards), game.to_play(boards),
                            rng)  # fmt: skip


class MuZeroPolicy:
    """`marl.core.learner.Policy` for a single-agent vector env: search every step."""

    def __init__(self, player: MuZeroPlayer, rng: np.random.Generator):
        self.player, self.rng = player, rng

    def act(self, obs: Any, action_mask: Any, *, greedy: bool = True) -> np.ndarray:
        """obs [B, 1, O], action_mask [B, 1, A] -> actions [B, 1]."""
        obs_t = torch.as_tensor(np.asarray(obs)[:, 0], dtype=torch.float32)
        legal = torch.as_tensor(np.asarray(action_mask)[:, 0]).bool()
        temperature = self.player.temperature
        self.player.temperature = 0.0 if greedy else max(temperature, 1.0)
        try:
            moves = self.player.act_obs(obs_t, legal, torch.zeros(len(obs_t), dtype=torch.long),
                                        self.rng)  # fmt: skip
        finally:
            self.player.temperature = temperature
        return moves.numpy()[:, None]

    def reset(self, done: Any) -> None:
        """No recurrent state to reset."""


def player_from_record(
    record: dict[str, Any], simulations: int | None = None, env_kwargs: dict | None = None
) -> MuZeroPlayer:
    """The greedy board-game player of a loaded muzero checkpoint: a `marl train` run or a
    league snapshot (`marl play`, leagues, the strength harness against `pyspiel.MCTSBot`).
    `env_kwargs` default to those the run was trained with."""
    from marl.envs.vector import vec_spec

    if env_kwargs is None:
        env_kwargs = record.get("run", {}).get("env_kwargs") or {}
    spec = vec_spec(record["env_id"], **env_kwargs)
    learner = MuZeroLearner(spec, build_config(MuZeroConfig, record["config"]), seed=0)
    if not learner.two_player:
        raise ConfigError(f"{record['env_id']}: a muzero player of a single-agent env has no "
                          "board to play on; use `marl eval` for its returns")  # fmt: skip
    weights = record["learner"]
    learner.net.load_state_dict(weights.get("weights", weights.get("net")))
    return learner.player(simulations)


def make_learner(spec: VecSpec, config: MuZeroConfig, seed: int, device: Any = "cpu"):
    """The MuZero learner for a two-player board game or a single-agent discrete env."""
    return MuZeroLearner(spec, config, seed, device)


def make_env(spec: VecSpec, config: MuZeroConfig, num_envs: int, seed: int) -> Any:
    """What a worker plays: `num_envs` self-play games on board rules, or a vector env."""
    rules = board_rules(spec)
    if rules is not None:
        return SelfPlayGames(rules, num_envs)
    from marl.envs.vector import learner_env

    return learner_env(spec, config, num_envs, seed)
