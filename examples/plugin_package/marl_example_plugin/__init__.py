"""An env plugin: marl calls `register_envs` the first time its registry is read."""

from __future__ import annotations


def register_envs() -> None:
    """Register this package's envs with marl."""
    import marl

    marl.register(
        "plugin/prisoners_dilemma_long-v0",
        "marl.envs.families.matrix:MatrixGameEnv",
        family="plugin",
        source="marl-example-plugin",
        teams=lambda agent: agent,
        game="prisoners_dilemma",
        rounds=100,
    )
