"""One batched inference actor for AlphaZero self-play workers on Ray.

Each self-play worker's search asks the `InferenceServer` for priors and values instead of
a net of its own. The server merges the requests that arrive together (up to one per
worker, or whatever came within `wait_ms`) into ONE forward pass, so the net still sees
large batches, on a GPU when the server has one. It pays one round trip per simulation
step; for small nets on CPUs that costs more than the forward pass, so
`RayConfig(inference="local")` (each worker searches with its own copy) is the default.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from marl.core.device import set_threads
from marl.core.spec import VecSpec
from marl.search.alphazero import AlphaZeroConfig, make_net, rules_for_env
from marl.search.evaluator import NetEvaluator


class InferenceServer:
    """Answers evaluation requests from many self-play workers in merged batches."""

    def __init__(self, spec: VecSpec, config: AlphaZeroConfig, clients: int,
                 wait_ms: float = 2.0, device: str = "cpu"):  # fmt: skip
        set_threads(1)
        self.device = torch.device(device)
        self.net = make_net(rules_for_env(spec.env_id, spec.env_kwargs), config).to(self.device)
        self.evaluator = NetEvaluator(self.net, config.torch_compile)
        self.clients, self.wait_s = clients, wait_ms / 1e3
        self.queue: list[tuple[Tensor, Tensor, asyncio.Future]] = []
        self.calls, self.positions = 0, 0

    def set_weights(self, weights: dict[str, Tensor]) -> None:
        """Load the learner's weights."""
        self.net.load_state_dict(weights)

    def stats(self) -> dict[str, float]:
        """Forward passes and positions evaluated so far."""
        return {"calls": float(self.calls), "positions": float(self.positions)}

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


def served_learner(make_learner: Callable[[], Any], server: Any) -> Any:
    """An acting AlphaZero copy whose searches ask `server` (a worker recipe's learner)."""
    learner = make_learner()
    learner.evaluator = RemoteEvaluator(server)
    return learner
