"""The environment layer: registry, families, vector stepping and checks."""

from marl.envs.registry import (
    EnvSpec,
    UnknownEnvError,
    env_spec,
    list_envs,
    make,
    register,
)
from marl.envs.types import VecEnv, VecStep
from marl.envs.vector import make_vec, vec_spec

__all__ = [
    "EnvSpec",
    "UnknownEnvError",
    "VecEnv",
    "VecStep",
    "env_spec",
    "list_envs",
    "make",
    "make_vec",
    "register",
    "vec_spec",
]
