"""marl: multi-agent reinforcement learning and self-play on PettingZoo environments."""

__version__ = "0.1.0"
