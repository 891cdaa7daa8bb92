"""Natively batched multi-agent particle envs (MPE) in torch, matching mpe2's scenarios.

env = make_batched("mpe/simple_spread-v3", num_envs=1024, device="cuda", seed=0, N=3)
out = env.reset()                      # VecStep of tensors: obs [B, N, O], state [B, S]...
out = env.step(actions)                # actions [B, N] ints (or [B, N, D] floats)
"""

from marl.envs.mpe.env import BatchedMPE
from marl.envs.mpe.registry import BATCHED_IDS, batched_kwargs_error, make_batched, mpe2_module
from marl.envs.mpe.world import WorldSpec, WorldState

__all__ = [
    "BATCHED_IDS",
    "BatchedMPE",
    "batched_kwargs_error",
    "WorldSpec",
    "WorldState",
    "make_batched",
    "mpe2_module",
]
