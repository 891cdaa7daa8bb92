"""`marl.make`, `marl.register`, `marl.list_envs`, `marl.env_spec`: one registry for every env.

Entry points and default kwargs live in PettingZoo's own registry (`pettingzoo.register`);
this module adds what PettingZoo does not keep: the family, team grouping and source of each
id, lazy registration of the built-in families, and `marl.envs` entry-point plugins.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
import os
import re
import sys
import warnings
from collections.abc import Callable, Sequence
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
VERSION_PATTERN = re.compile(r"-v(\d+)$")
ENTRY_POINT_PATTERN = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
PLUGIN_GROUP = "marl.envs"


class UnknownEnvError(KeyError, ValueError):
    """An env id that no family, registration or plugin provides."""

    def __str__(self) -> str:
        return str(self.args[0])


class EnvKwargError(TypeError, ValueError):
    """A kwarg that the env's constructor does not take."""


class RegistrationError(ValueError):
    """A `register` call that would replace an id or names no usable entry point."""


@dataclass(frozen=True)
class Registration:
    """What marl knows about an id beyond PettingZoo's spec."""

    env_id: str
    kind: Kind
    family: str
    source: str
    teams: TeamsArg = None
    kwargs: dict[str, Any] = field(default_factory=dict)
    entry_point: Any = None

    def same_env(self, other: Registration) -> bool:
        """Whether `other` makes the same env (teams rules are often fresh lambdas)."""
        mine = (self.kind, self.family, self.source, self.kwargs, self.entry_point)
        return mine == (other.kind, other.family, other.source, other.kwargs, other.entry_point)


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
    """Every kwarg the env takes with the value it has here (defaults, then those given)."""
    valid_kwargs: tuple[str, ...] | None = None
    """The kwargs `make` accepts, sorted; None where they cannot be known (gym ids)."""


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
    override: bool = False,
    **defaults: Any,
) -> None:
    """Register `env_id` (`namespace/Name-vN`) with PettingZoo's registry and marl's metadata.

    `entry_point` is a callable or a "module:attr" string. `teams` maps agent names to team
    names (a function or a dict); default: by name prefix. An id that is already registered
    (built-in ones included) is refused unless `override=True`; registering the very same
    entry point, kind and defaults again is a no-op, so loading twice is harmless.
    """
    if not isinstance(env_id, str) or not ID_PATTERN.match(env_id):
        raise RegistrationError(f"env id {env_id!r} must look like 'namespace/Name-vN'")
    if kind not in ("aec", "parallel"):
        raise RegistrationError(f"kind={kind!r}: expected 'aec' or 'parallel'")
    _check_entry_point(env_id, entry_point)
    ensure_loaded()  # so that a user id clashing with a built-in one is seen now
    family = family or env_id.split("/", 1)[0]
    new = Registration(env_id, kind, family, source, teams, dict(defaults), entry_point)
    old = _REGISTRATIONS.get(env_id)
    if old is not None and not override:
        if old.same_env(new):
            return
        raise RegistrationError(
            f"{env_id} is already registered (source {old.source!r}, entry point "
            f"{old.entry_point!r}); pass override=True to replace it, or pick another id"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PettingZoo warns on every override; ours was asked for
        pettingzoo.register(kind, env_id, entry_point, max_cycles=max_cycles, kwargs=dict(defaults))
    _REGISTRATIONS[env_id] = new


def _check_entry_point(env_id: str, entry_point: Any) -> None:
    if callable(entry_point):
        return
    if isinstance(entry_point, str) and ENTRY_POINT_PATTERN.match(entry_point):
        return
    raise RegistrationError(
        f"{env_id}: entry_point={entry_point!r}: expected a callable that returns the env, "
        "or a 'module:attr' string such as 'mpe2.simple_tag_v3:parallel_env'"
    )


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


_USER_MODULES: list[str] = []


def import_user_modules(names: Sequence[str]) -> None:
    """Import modules that register envs (`marl train --import`; from the current folder
    too), and remember them: processes marl spawns import them again (`user_modules`)."""
    if names and os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())  # the `marl` script, unlike `python -m`, omits it
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as err:
            raise ValueError(f"--import {name}: {err}") from None
        if name not in _USER_MODULES:
            _USER_MODULES.append(name)


def user_modules() -> list[str]:
    """The modules `import_user_modules` imported in this process, in order."""
    return list(_USER_MODULES)


def ensure_loaded() -> None:
    """Register the built-in families and plugins, once, the first time the registry is read."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    _load_builtin_families()
    load_plugins()


def _lookup(env_id: str) -> Registration:
    if not isinstance(env_id, str):
        raise ValueError(
            f"env_id={env_id!r}: expected an env id string such as 'mpe/simple_spread-v3' "
            "(see `marl envs list`)"
        )
    ensure_loaded()
    if env_id in _REGISTRATIONS:
        return _REGISTRATIONS[env_id]
    if env_id.startswith("gym/") and env_id[4:] in gymnasium.envs.registry:
        from marl.envs.families.gym import register_gym_id

        register_gym_id(register, env_id[4:])
        return _REGISTRATIONS[env_id]
    latest = latest_version(env_id)
    if latest is not None:
        return _REGISTRATIONS[latest]
    near = difflib.get_close_matches(env_id, list(_REGISTRATIONS), n=3, cutoff=0.6)
    hint = f"did you mean {' or '.join(near)}?" if near else "see `marl envs list`"
    raise UnknownEnvError(
        f"unknown env id {env_id!r}; {hint} (an env registered in your own code: import its "
        "module first, on the command line with --import MODULE)"
    )


def latest_version(env_id: str) -> str | None:
    """The highest registered `<env_id>-vN` for an id given without a version, as gymnasium does."""
    if VERSION_PATTERN.search(env_id):
        return None
    versions = {}
    for known in _REGISTRATIONS:
        match = VERSION_PATTERN.search(known)
        if match and known[: match.start()] == env_id:
            versions[int(match[1])] = known
    return versions[max(versions)] if versions else None


def _check_kwargs(reg: Registration, kwargs: dict[str, Any]) -> None:
    from marl.envs.families import accepted_kwargs, check_kwarg_values

    fixed = sorted(set(kwargs) & set(reg.kwargs))
    if fixed:
        raise EnvKwargError(
            f"{reg.env_id} fixes {fixed[0]}={reg.kwargs[fixed[0]]!r} (it is part of the id, not "
            f"an option); for another {fixed[0]}, make its own id (`marl envs list` lists them)"
        )
    valid = accepted_kwargs(reg)
    for key in kwargs if valid is not None else ():
        if key not in valid:
            near = difflib.get_close_matches(key, sorted(valid), n=1, cutoff=0.5)
            hint = f"did you mean {near[0]!r}? " if near else ""
            raise EnvKwargError(
                f"{reg.env_id} got an unknown kwarg {key!r}; {hint}"
                f"valid kwargs: {', '.join(sorted(valid)) or '(none)'}"
            )
    check_kwarg_values(reg, kwargs)


def make(env_id: str, *, parallel: bool = False, **kwargs: Any) -> AECEnv | ParallelEnv:
    """Make a PettingZoo env: ParallelEnv for simultaneous games, AECEnv for turn-based ones.

    An id without a version (`matrix/two_step`) means its highest registered version.
    `parallel=True` converts a turn-based env to a ParallelEnv where PettingZoo can. Every
    action given to `step` is checked against the agent's action space (`ActionError`).
    """
    from marl.envs.actions import CheckedAEC, CheckedParallel

    reg = _lookup(env_id)
    _check_kwargs(reg, kwargs)
    env = pettingzoo.make(reg.kind, reg.env_id, **kwargs)
    if reg.kind == "parallel":
        return CheckedParallel(env)
    if parallel:
        if not env.metadata.get("is_parallelizable", False):
            env.close()
            raise ValueError(
                f"{reg.env_id} is turn-based (one agent moves at a time), so it has no "
                "ParallelEnv form; use it as an AECEnv (parallel=False), e.g. with marl.search "
                "or leagues"
            )
        return CheckedParallel(aec_to_parallel(CheckedAEC(env)))
    return CheckedAEC(env)


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
    """Family, agents, teams, spaces, kwargs (with defaults) and source of `env_id`."""
    from marl.envs.families import kwarg_defaults

    reg = _lookup(env_id)
    defaults = kwarg_defaults(reg)
    env = make(env_id, **kwargs)
    try:
        agents = tuple(env.possible_agents)
        spec = EnvSpec(
            env_id=reg.env_id,
            family=reg.family,
            kind=reg.kind,
            source=reg.source,
            agents=agents,
            teams={k: tuple(v) for k, v in group_teams(agents, reg.teams).items()},
            observation_spaces={a: env.observation_space(a) for a in agents},
            action_spaces={a: env.action_space(a) for a in agents},
            default_kwargs={**(defaults or {}), **kwargs},
            valid_kwargs=None if defaults is None else tuple(sorted(defaults)),
        )
    finally:
        env.close()
    return spec
