"""`marl.make`, `marl.register`, `marl.list_envs`, `marl.env_spec`: one registry for every env.

Entry points and default kwargs live in PettingZoo's own registry (`pettingzoo.register`);
this module adds what PettingZoo does not keep: the family, team grouping and source of each
id, lazy registration of the built-in families, and `marl.envs` entry-point plugins.
"""

from __future__ import annotations

import difflib
import fnmatch
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Literal

import gymnasium
import pettingzoo
from pettingzoo import AECEnv, ParallelEnv
from pettingzoo.utils.conversions import aec_to_parallel

Kind = Literal["aec", "parallel"]
TeamsArg = Callable[[str], str] | dict[str, str] | None
ID_PATTERN = re.compile(r"^[A-Za-z0-9_.\-]+/[A-Za-z0-9_.\-]+$")
PLUGIN_GROUP = "marl.envs"


class UnknownEnvError(KeyError, ValueError):
    """An env id that no family, registration or plugin provides."""

    def __str__(self) -> str:
        return str(self.args[0])


class EnvKwargError(TypeError, ValueError):
    """A kwarg that the env's constructor does not take."""


@dataclass(frozen=True)
class Registration:
    """What marl knows about an id beyond PettingZoo's spec."""

    env_id: str
    kind: Kind
    family: str
    source: str
    teams: TeamsArg = None
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EnvSpec:
    """A description of a registered env, built by instantiating it once."""

    env_id: str
    family: str
    kind: Kind
    source: str
    agents: tuple[str, ...]
    teams: dict[str, tuple[str, ...]]
    observation_spaces: dict[str, gymnasium.Space]
    action_spaces: dict[str, gymnasium.Space]
    default_kwargs: dict[str, Any]


_REGISTRATIONS: dict[str, Registration] = {}
_loaded = False


def team_of(agent: str) -> str:
    """Default team of an agent: its name without a trailing `_<number>` (`adversary_0`)."""
    prefix, sep, suffix = agent.rpartition("_")
    return prefix if sep and suffix.isdigit() else agent


def register(
    env_id: str,
    entry_point: Callable[..., AECEnv | ParallelEnv] | str,
    *,
    kind: Kind = "parallel",
    family: str | None = None,
    teams: TeamsArg = None,
    source: str = "user",
    max_cycles: int | None = None,
    **defaults: Any,
) -> None:
    """Register `env_id` (`namespace/Name-vN`) with PettingZoo's registry and marl's metadata.

    `teams` maps agent names to team names (a function or a dict); default: by name prefix.
    """
    if not ID_PATTERN.match(env_id):
        raise ValueError(f"env id {env_id!r} must look like 'namespace/Name-vN'")
    if kind not in ("aec", "parallel"):
        raise ValueError(f"kind={kind!r}: expected 'aec' or 'parallel'")
    pettingzoo.register(kind, env_id, entry_point, max_cycles=max_cycles, kwargs=dict(defaults))
    family = family or env_id.split("/", 1)[0]
    _REGISTRATIONS[env_id] = Registration(env_id, kind, family, source, teams, dict(defaults))


def _load_builtin_families() -> None:
    from marl.envs.families import register_builtin

    register_builtin(register)


def load_plugins() -> list[str]:
    """Call every `marl.envs` entry point; return the names that loaded (broken ones warn)."""
    loaded = []
    for ep in metadata.entry_points(group=PLUGIN_GROUP):
        try:
            ep.load()()
        except Exception as err:  # a broken plugin must not break the others
            dist = ep.dist.name if ep.dist is not None else "?"
            warnings.warn(
                f"marl env plugin {ep.name!r} ({ep.value}, from {dist}) failed to load: "
                f"{type(err).__name__}: {err}",
                RuntimeWarning,
                stacklevel=3,
            )
        else:
            loaded.append(ep.name)
    return loaded


def ensure_loaded() -> None:
    """Register the built-in families and plugins, once, the first time the registry is read."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    _load_builtin_families()
    load_plugins()


def _lookup(env_id: str) -> Registration:
    ensure_loaded()
    if env_id in _REGISTRATIONS:
        return _REGISTRATIONS[env_id]
    if env_id.startswith("gym/") and env_id[4:] in gymnasium.envs.registry:
        from marl.envs.families.gym import register_gym_id

        register_gym_id(register, env_id[4:])
        return _REGISTRATIONS[env_id]
    near = difflib.get_close_matches(env_id, list(_REGISTRATIONS), n=3, cutoff=0.6)
    hint = f"did you mean {' or '.join(near)}?" if near else "see `marl envs list`"
    raise UnknownEnvError(f"unknown env id {env_id!r}; {hint}")


def _check_kwargs(reg: Registration, kwargs: dict[str, Any]) -> None:
    from marl.envs.families import accepted_kwargs

    valid = accepted_kwargs(reg)
    if valid is None:
        return
    for key in kwargs:
        if key not in valid:
            near = difflib.get_close_matches(key, sorted(valid), n=1, cutoff=0.5)
            hint = f"did you mean {near[0]!r}? " if near else ""
            raise EnvKwargError(
                f"{reg.env_id} got an unknown kwarg {key!r}; {hint}"
                f"valid kwargs: {', '.join(sorted(valid)) or '(none)'}"
            )


def make(env_id: str, *, parallel: bool = False, **kwargs: Any) -> AECEnv | ParallelEnv:
    """Make a PettingZoo env: ParallelEnv for simultaneous games, AECEnv for turn-based ones.

    `parallel=True` converts a turn-based env to a ParallelEnv where PettingZoo can.
    """
    reg = _lookup(env_id)
    _check_kwargs(reg, kwargs)
    env = pettingzoo.make(reg.kind, env_id, **kwargs)
    if parallel and reg.kind == "aec":
        if not env.metadata.get("is_parallelizable", False):
            env.close()
            raise ValueError(
                f"{env_id} is turn-based (one agent moves at a time), so it has no ParallelEnv "
                "form; use it as an AECEnv (parallel=False), e.g. with marl.search or leagues"
            )
        env = aec_to_parallel(env)
    return env


def list_envs(pattern: str | None = None) -> list[str]:
    """Sorted registered ids, optionally filtered by a glob (`mpe/*`) or substring."""
    ensure_loaded()
    ids = sorted(_REGISTRATIONS)
    if pattern is None:
        return ids
    if any(c in pattern for c in "*?["):
        return [i for i in ids if fnmatch.fnmatch(i, pattern)]
    return [i for i in ids if pattern in i]


def registration(env_id: str) -> Registration:
    """marl's metadata for `env_id` (raises UnknownEnvError with suggestions)."""
    return _lookup(env_id)


def group_teams(agents: list[str] | tuple[str, ...], teams: TeamsArg) -> dict[str, list[str]]:
    """Group agents into teams (in order of first appearance) by a rule or mapping."""
    rule = teams.__getitem__ if isinstance(teams, dict) else (teams or team_of)
    grouped: dict[str, list[str]] = {}
    for agent in agents:
        grouped.setdefault(rule(agent), []).append(agent)
    return grouped


def env_spec(env_id: str, **kwargs: Any) -> EnvSpec:
    """Family, agents, teams, spaces, default kwargs and source of `env_id`."""
    reg = _lookup(env_id)
    env = make(env_id, **kwargs)
    try:
        agents = tuple(env.possible_agents)
        spec = EnvSpec(
            env_id=env_id,
            family=reg.family,
            kind=reg.kind,
            source=reg.source,
            agents=agents,
            teams={k: tuple(v) for k, v in group_teams(agents, reg.teams).items()},
            observation_spaces={a: env.observation_space(a) for a in agents},
            action_spaces={a: env.action_space(a) for a in agents},
            default_kwargs={**reg.kwargs, **kwargs},
        )
    finally:
        env.close()
    return spec
