"""Team rules: how a registered env's agents are grouped into teams."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Register = Callable[..., Any]
"""`marl.envs.registry.register`, as the families receive it (they do not import the registry)."""


def each_own_team(agent: str) -> str:
    """Team rule for competitive games: every agent is a team of its own."""
    return agent


def one_team(agent: str) -> str:
    """Team rule for cooperative games: all agents are one team."""
    return "team"
