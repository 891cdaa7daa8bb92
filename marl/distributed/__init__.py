"""Past one machine: rollouts, self-play and league matches as Ray actors and tasks.

Nothing here imports Ray at import time; `marl.distributed.ray_backend.require_ray` does, with
a clear error when it is missing (`pip install 'marl[ray]'`). The local backend stays the
default everywhere and needs no Ray.
"""

from marl.distributed.ray_backend import RayConfig, make_ray_learner

__all__ = ["RayConfig", "make_ray_learner"]
