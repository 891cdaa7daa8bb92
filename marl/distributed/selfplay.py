"""AlphaZero self-play past one process: K self-play actors, one batched inference actor.

Each `SelfPlayWorker` keeps num_games / K games going with `marl.search.selfplay.SelfPlay`,
but its search asks an `InferenceServer` for priors and values instead of a local net. The
server merges the requests that arrive together (up to one per worker, or whatever came
within `wait_ms`) into ONE forward pass, so the net still sees large batches. The learner
(this process) gathers finished games into its replay buffer (the shared replay), trains
as `AlphaZeroLearner` does, and sends the server new weights once per iteration.

The server pays one round trip per simulation step; for small nets on CPUs that costs more
than the forward pass, so `RayConfig(inference="local")` gives each actor its own copy of
the net instead (weights broadcast once per iteration, as for PPO rollouts).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from marl.distributed.ray_backend import RayConfig, incarnation, init_ray, remote_actor
from marl.distributed.rollout import worker_seed
from marl.games import game_for_env
from marl.run.config import ConfigError
from marl.run.device import set_threads
from marl.search.alphazero import AlphaZeroConfig, AlphaZeroLearner, make_net
from marl.search.evaluator import NetEvaluator
from marl.search.replay import Batch
from marl.search.selfplay import SelfPlay


class InferenceServer:
    """Answers evaluation requests from many self-play workers in merged batches."""

    def __init__(self, env_id: str, config: AlphaZeroConfig, clients: int, wait_ms: float = 2.0,
                 device: str = "cpu"):  # fmt: skip
        set_threads(1)
        self.device = torch.device(device)
        self.net = make_net(game_for_env(env_id), config).to(self.device)
        self.evaluator = NetEvaluator(self.net)
        self.clients, self.wait_s = clients, wait_ms / 1e3
        self.queue: list[tuple[Tensor, Tensor, asyncio.Future]] = []
        self.version, self.calls, self.positions, self.requests = -1, 0, 0, 0

    def set_weights(self, weights: dict[str, Tensor], version: int) -> int:
        """Load the learner's weights; returns the version now served."""
        self.net.load_state_dict(weights)
        self.version = version
        return version

    def stats(self) -> dict[str, float]:
        """Forward passes, positions and requests answered so far, and the weights version."""
        counts = {"calls": self.calls, "positions": self.positions, "requests": self.requests}
        return {**counts, "version": self.version}

    async def evaluate(self, obs: Tensor, legal: Tensor) -> tuple[Tensor, Tensor]:
        """Priors and values for one worker's batch, computed together with the others'."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self.queue.append((obs, legal, future))
        if len(self.queue) >= self.clients:
            self._flush()
        elif len(self.queue) == 1:
            loop.call_later(self.wait_s, self._flush)
        return await future

    def _flush(self) -> None:
        """One forward pass over every queued request; hand each its rows."""
        queue, self.queue = self.queue, []
        if not queue:
            return
        obs = torch.cat([q[0] for q in queue]).to(self.device)
        legal = torch.cat([q[1] for q in queue]).to(self.device)
        priors, values = self.evaluator(obs, legal)
        self.calls, self.positions = self.calls + 1, self.positions + len(obs)
        self.requests += len(queue)
        start = 0
        for q_obs, _, future in queue:
            end = start + len(q_obs)
            future.set_result((priors[start:end].cpu(), values[start:end].cpu()))
            start = end


class RemoteEvaluator:
    """An `Evaluator` that asks an inference server actor (blocking until it answers)."""

    def __init__(self, server: Any):
        self.server = server

    def __call__(self, obs: Tensor, legal: Tensor) -> tuple[Tensor, Tensor]:
        """The server's priors and values for this batch."""
        import ray

        return ray.get(self.server.evaluate.remote(obs.cpu(), legal.cpu()))


class SelfPlayPart(NamedTuple):
    """What one worker's `play` returns."""

    samples: Batch  # positions of the games that finished, valued by their results
    returns: Tensor  # [G, 2] results of the finished games
    lengths: Tensor  # [G] their lengths in moves
    worker: str  # the worker process; changes when Ray restarts it
    seconds: float  # time spent playing


class SwitchEvaluator:
    """An `Evaluator` that forwards to whichever evaluator it was last pointed at."""

    def __init__(self) -> None:
        self.target: Any = None

    def __call__(self, obs: Tensor, legal: Tensor) -> tuple[Tensor, Tensor]:
        """The target's priors and values."""
        return self.target(obs, legal)


class SelfPlayWorker:
    """Keeps `num_games` self-play games going; searches ask a server or a local net copy."""

    def __init__(self, env_id: str, config: AlphaZeroConfig, seed: int, index: int,
                 num_games: int):  # fmt: skip
        set_threads(1)
        self.game, self.config, self.num_games = game_for_env(env_id), config, num_games
        self.evaluator = SwitchEvaluator()
        self.net, self.version = make_net(self.game, config), -1
        self.selfplay: SelfPlay | None = None  # built on the first call: it evaluates roots
        self.rng = np.random.default_rng(worker_seed(seed, index))

    def _point(self, server: Any, weights: dict[str, Tensor] | None, version: int) -> None:
        if server is not None:
            self.evaluator.target = RemoteEvaluator(server)
            return
        if version != self.version:
            self.net.load_state_dict(weights)
            self.version = version
        self.evaluator.target = NetEvaluator(self.net)

    def play(self, moves: int, server: Any = None, weights: dict[str, Tensor] | None = None,
             version: int = -1) -> SelfPlayPart:  # fmt: skip
        """`moves` moves in every game; the games that finished meanwhile.

        Searches ask `server` (an `InferenceServer` actor) or, without one, this actor's net
        loaded with `weights`. Both come with each call, not with the constructor: Ray can
        restart an actor only while its constructor's arguments live.
        """
        start = time.perf_counter()
        self._point(server, weights, version)
        if self.selfplay is None:
            cfg = self.config
            self.selfplay = SelfPlay(self.game, self.evaluator, cfg.search(), self.num_games,
                                     cfg.temperature, cfg.temperature_moves)  # fmt: skip
        finished = [self.selfplay.step(self.rng) for _ in range(moves)]
        samples = Batch(*(torch.cat(xs) for xs in zip(*(f.samples for f in finished))))
        returns = torch.cat([f.returns for f in finished])
        lengths = torch.cat([f.lengths for f in finished])
        return SelfPlayPart(samples, returns, lengths, incarnation(), time.perf_counter() - start)


class DistributedAlphaZeroLearner:
    """AlphaZero whose self-play runs in Ray actors (`Learner`), searching through one
    batched inference actor (`server`) or, with `server=None`, each with its own net copy.

    Its `state_dict` is an `AlphaZeroLearner`'s (weights, optimizer, replay, RNGs).
    """

    def __init__(self, core: AlphaZeroLearner, server: Any, workers: list[Any]):
        self.core, self.config, self.server, self.workers = core, core.config, server, workers
        self.version, self.restarts, self.weights = 0, 0, None
        self._worker_ids: list[str] | None = None
        self._last_stats = {"calls": 0, "positions": 0, "requests": 0}
        self.broadcast()  # the first waits for the server to start: not a broadcast's cost
        self.broadcast_ms = float("nan")

    @property
    def env_steps(self) -> int:
        """Self-play moves made so far, over all games."""
        return self.core.env_steps

    def broadcast(self) -> float:
        """Put the current weights in the object store (and load them into the inference
        actor); returns the milliseconds it took."""
        import ray

        start = time.perf_counter()
        weights = {k: v.detach().cpu() for k, v in self.core.net.state_dict().items()}
        self.weights = ray.put(weights)
        if self.server is not None:
            ray.get(self.server.set_weights.remote(self.weights, self.version))
        return (time.perf_counter() - start) * 1e3

    def _play(self) -> tuple[list[SelfPlayPart], dict[str, float]]:
        import ray

        start = time.perf_counter()
        moves = self.config.moves_per_iteration
        weights = None if self.server is not None else self.weights
        calls = [w.play.remote(moves, self.server, weights, self.version) for w in self.workers]
        parts = ray.get(calls)
        ids = [p.worker for p in parts]
        if self._worker_ids is not None:
            self.restarts += sum(a != b for a, b in zip(ids, self._worker_ids))
        self._worker_ids = ids
        stats = {"ray/actor_restarts": float(self.restarts), "policy_lag": 0.0}
        positions = sum(len(p.samples.value) for p in parts)
        stats["selfplay/samples_per_s"] = positions / (time.perf_counter() - start)
        if self.server is not None:
            stats |= self._server_stats()
        return parts, stats

    def _server_stats(self) -> dict[str, float]:
        """Mean batch the inference actor evaluated since the last call, and requests merged."""
        import ray

        served = ray.get(self.server.stats.remote())
        if served.pop("version") != self.version:  # a restarted server starts unweighted
            self.broadcast_ms = self.broadcast()
            self._last_stats = {k: 0 for k in served}
        delta = {k: served[k] - self._last_stats[k] for k in served}
        self._last_stats = served
        calls = max(delta["calls"], 1)
        return {"inference/batch_size": delta["positions"] / calls,
                "inference/requests_per_call": delta["requests"] / calls}  # fmt: skip

    def iterate(self) -> dict[str, float]:
        """Self-play `moves_per_iteration` moves in every game, train, send the new weights."""
        core, cfg = self.core, self.config
        parts, stats = self._play()
        for p in parts:
            core.buffer.add(*p.samples)
        core.env_steps += cfg.moves_per_iteration * cfg.num_games
        returns = torch.cat([p.returns for p in parts])
        core.games_played += len(returns)
        stats |= {"games": float(core.games_played), "buffer_size": float(core.buffer.size)}
        if len(returns):
            stats["return/player_0"] = returns[:, 0].mean().item()
            stats["return/player_1"] = returns[:, 1].mean().item()
        if core.buffer.size >= cfg.min_buffer:
            steps = [core.update() for _ in range(cfg.train_steps)]
            stats |= {k: float(np.mean([s[k] for s in steps])) for k in steps[0]}
            self.version += 1
            self.broadcast_ms = self.broadcast()
        stats["time/broadcast_ms"] = self.broadcast_ms
        return stats

    def state_dict(self) -> dict[str, Any]:
        """The `AlphaZeroLearner` state."""
        return self.core.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore an `AlphaZeroLearner` state and serve its weights."""
        self.core.load_state_dict(state)
        self.version += 1
        self.broadcast_ms = self.broadcast()

    def policy(self) -> Any:
        """The learner's search policy."""
        return self.core.policy()

    def close(self) -> None:
        """Stop the actors."""
        import ray

        for actor in [self.server, *self.workers]:
            if actor is not None:
                ray.kill(actor, no_restart=True)


def make_learner(
    env_id: str,
    config: AlphaZeroConfig,
    seed: int,
    device: Any,
    env_kwargs: dict[str, Any] | None,
    ray_config: RayConfig,
) -> DistributedAlphaZeroLearner:
    """AlphaZero with `ray_config.actors` self-play actors (and one inference actor)."""
    if env_kwargs:
        raise ConfigError(f"alphazero takes no env kwargs; got {sorted(env_kwargs)}")
    if ray_config.max_lag != 0:
        raise ConfigError("alphazero with --backend ray runs synchronously: max_lag must be 0")
    k = ray_config.actors
    if config.num_games % k:
        raise ConfigError(f"num_games={config.num_games} does not split over {k} self-play actors")
    init_ray(ray_config.address)
    core = AlphaZeroLearner(env_id, config, seed, device)
    server = None
    if ray_config.inference == "server":
        gpus = ray_config.inference_gpus
        server_class = remote_actor(InferenceServer, ray_config, num_gpus=gpus)
        wait_ms, server_device = ray_config.batch_wait_ms, "cuda" if gpus > 0 else "cpu"
        server = server_class.remote(env_id, config, k, wait_ms, server_device)
    worker_class = remote_actor(SelfPlayWorker, ray_config)
    workers = [
        worker_class.remote(env_id, config, seed, i, config.num_games // k) for i in range(k)
    ]
    return DistributedAlphaZeroLearner(core, server, workers)
