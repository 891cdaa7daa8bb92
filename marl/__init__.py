"""marl: multi-agent reinforcement learning and self-play on PettingZoo environments."""

from marl.envs import EnvSpec, UnknownEnvError, env_spec, list_envs, make, make_vec, register

__version__ = "0.1.0"

__all__ = [
    "EnvSpec",
    "UnknownEnvError",
    "__version__",
    "env_spec",
    "list_envs",
    "make",
    "make_vec",
    "register",
]
