"""Past one machine: the worker pool and league matches on Ray.

Nothing here imports Ray at import time; `marl.distributed.ray_backend.require_ray` does, with
a clear error when it is missing (`pip install 'marl[ray]'`). The local backend stays the
default everywhere and needs no Ray. No algorithm has code here: workers are the same
`marl.core.pool.Worker`s that run in-process.
"""

from marl.distributed.pool import RayPool, ray_trainer
from marl.distributed.ray_backend import RayConfig

__all__ = ["RayConfig", "RayPool", "ray_trainer"]
