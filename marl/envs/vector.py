"""Step B copies of a parallel env and hand the learner `VecStep` arrays.

`SyncVecEnv` steps them in this process; `ProcVecEnv` splits them over worker processes
(each running a `SyncVecEnv`). Both autoreset finished episodes, keep the last observation of
a finished episode in `final_obs` (to bootstrap on truncation), mask agents that left the
episode through `alive`, and are seeded: env b gets `seed + b`.
"""

from __future__ import annotations

import multiprocessing as mp
import numbers
import pickle
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from typing import Any

import gymnasium
import numpy as np
from gymnasium.spaces import flatdim, flatten
from pettingzoo import ParallelEnv

from marl.core.actions import ActionError, describe
from marl.core.children import stop_children
from marl.core.spec import VecSpec
from marl.envs.types import VecStep

EnvFn = Callable[[], ParallelEnv]


def _obs_space(space: gymnasium.Space) -> gymnasium.Space:
    """The part of an observation space a policy sees (drops an `action_mask` entry)."""
    if isinstance(space, gymnasium.spaces.Dict) and "observation" in space.spaces:
        return space["observation"]
    return space


def _num_actions(space: gymnasium.Space) -> int:
    return int(space.n) if isinstance(space, gymnasium.spaces.Discrete) else 0


def _action_dim(space: gymnasium.Space) -> int:
    return int(np.prod(space.shape)) if isinstance(space, gymnasium.spaces.Box) else 0


def block_seed(seed: int | Sequence[int] | None, b: int, num_envs: int) -> int | None:
    """The reset seed of env `b` of `num_envs`: `seed + b`, or with K seeds (K equal blocks
    of envs side by side) `seed[k] + b % (num_envs / K)` for env b in block k."""
    if seed is None or isinstance(seed, numbers.Integral):
        return None if seed is None else int(seed) + b
    seeds = list(seed)
    if not seeds or num_envs % len(seeds):
        raise ValueError(f"{num_envs} envs do not split into {len(seeds)} seed blocks")
    size = num_envs // len(seeds)
    return int(seeds[b // size]) + b % size


def check_layout(actions: Any, vec: Any) -> np.ndarray:
    """`actions` as an array, refused with an error that says what was expected unless it
    is [B, N] integers (discrete actions) or [B, N, action_dim] finite numbers (continuous)
    for `vec`'s B envs and N agents. Checked or not, every step: a float or bool given for
    a discrete action would otherwise be truncated by `int` (2.7 playing 2)."""
    actions = np.asarray(actions)
    want = (vec.num_envs, len(vec.agents), *((vec.action_dim,) if vec.action_dim else ()))
    if actions.shape != want:
        raise ValueError(
            f"actions have shape {actions.shape}; expected {want}: [envs, agents"
            f"{', action_dim' if vec.action_dim else ''}]"
        )
    if vec.action_dim:
        if not np.issubdtype(actions.dtype, np.number):
            raise ActionError(f"continuous actions must be numbers, not {actions.dtype}")
        if not np.isfinite(actions).all():
            b, n = np.argwhere(~np.isfinite(actions))[0][:2]
            raise ActionError(
                f"action {describe(actions[b, n])} of agent {vec.agents[n]!r} (env {b}) is "
                "not finite: NaN or infinite continuous actions (a diverged policy?)"
            )
    elif not np.issubdtype(actions.dtype, np.integer):
        raise ActionError(
            f"discrete actions must be integers, got an array of {actions.dtype}: "
            f"{describe(actions)}"
        )
    return actions


class SyncVecEnv:
    """B copies of a parallel env stepped one after another in this process."""

    def __init__(self, env_fn: EnvFn, num_envs: int, teams: dict[str, list[str]]) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs={num_envs}: expected at least 1")
        self.envs = [env_fn() for _ in range(num_envs)]
        first = self.envs[0]
        self.num_envs = num_envs
        self.agents = list(first.possible_agents)
        index = {a: i for i, a in enumerate(self.agents)}
        self.teams = {team: [index[a] for a in members] for team, members in teams.items()}
        self.observation_spaces = [_obs_space(first.observation_space(a)) for a in self.agents]
        self.action_spaces = [first.action_space(a) for a in self.agents]
        self._obs_sizes = [flatdim(s) for s in self.observation_spaces]
        self.obs_dim = max(self._obs_sizes)
        self._agent_actions = [_num_actions(s) for s in self.action_spaces]
        self.num_actions = max(self._agent_actions)
        self._agent_action_dims = [_action_dim(s) for s in self.action_spaces]
        self.action_dim = max(self._agent_action_dims)
        self.state_dim = self._probe_state_dim(first)
        self._has_state = True

    def _probe_state_dim(self, env: ParallelEnv) -> int:
        space = getattr(env, "state_space", None)
        if space is not None:
            return flatdim(space)
        env.reset()
        try:
            return int(np.asarray(env.state()).size)
        except (NotImplementedError, AttributeError):
            return sum(self._obs_sizes)

    # -- one env -> rows of arrays ---------------------------------------------------------
    def _mask_row(self, agent: int, obs: Any, info: dict, row: np.ndarray) -> None:
        """Write the agent's legal actions into `row` [A]: its env's mask (all of its actions
        where there is none), and none past its own action count."""
        n = self._agent_actions[agent]
        mask = info.get("action_mask")
        if mask is None and isinstance(obs, dict):
            mask = obs.get("action_mask")
        row[:n] = True if mask is None else np.asarray(mask, bool)[:n]
        row[n:] = False

    def _state(self, env: ParallelEnv, obs_rows: np.ndarray) -> np.ndarray:
        if self._has_state:
            try:
                return np.asarray(env.state(), np.float32).ravel()
            except (NotImplementedError, AttributeError):
                self._has_state = False
        return np.concatenate([row[:size] for row, size in zip(obs_rows, self._obs_sizes)])

    def _fill(self, env: ParallelEnv, obs: dict, infos: dict, obs_rows: np.ndarray,
              masks: np.ndarray) -> np.ndarray:  # fmt: skip
        """Write each present agent's observation (zero-padded) into `obs_rows` [N, O] (zeros)
        and its legal actions into `masks` [N, A] (all True); return the env's state."""
        for i, agent in enumerate(self.agents):
            if agent in obs:
                seen = obs[agent]
                if isinstance(seen, dict) and "observation" in seen:
                    seen = seen["observation"]
                obs_rows[i, : self._obs_sizes[i]] = flatten(self.observation_spaces[i], seen)
                self._mask_row(i, obs[agent], infos.get(agent, {}), masks[i])
        return self._state(env, obs_rows)

    def _arrays(self) -> VecStep:
        """Fresh arrays for one step of the B envs (callers keep what a step returns)."""
        b, n = self.num_envs, len(self.agents)
        return VecStep(
            np.zeros((b, n, self.obs_dim), np.float32), np.zeros((b, self.state_dim), np.float32),
            np.ones((b, n, self.num_actions), bool), np.zeros((b, n), np.float32),
            np.zeros((b, n), bool), np.zeros(b, bool), np.zeros(b, bool),
            np.zeros((b, n, self.obs_dim), np.float32), np.zeros((b, self.state_dim), np.float32),
        )  # fmt: skip

    def _observe(self, env: ParallelEnv, obs: dict, infos: dict, out: VecStep, b: int) -> None:
        """Env b's observations, masks, state and live agents, written into `out`."""
        out.state[b] = self._fill(env, obs, infos, out.obs[b], out.action_mask[b])
        out.alive[b] = [a in env.agents for a in self.agents]

    # -- the VecEnv protocol ---------------------------------------------------------------
    def reset(self, seed: int | Sequence[int] | None = None) -> VecStep:
        """Reset every env; env b is seeded with `seed + b`. K seeds split the envs into K
        equal blocks side by side: env b of block k is seeded `seed[k] + b` (`--seeds K`)."""
        out = self._arrays()
        for b, env in enumerate(self.envs):
            obs, infos = env.reset(seed=block_seed(seed, b, self.num_envs))
            self._observe(env, obs, infos, out, b)
        return out._replace(final_obs=out.obs, final_state=out.state)

    def _env_actions(self, env: ParallelEnv, actions: np.ndarray) -> dict:
        out = {}
        for i, agent in enumerate(self.agents):
            if agent not in env.agents:
                continue
            space = self.action_spaces[i]
            if isinstance(space, gymnasium.spaces.Box):  # clipped (np.clip's wrappers cost more)
                size = self._agent_action_dims[i]
                act = np.asarray(actions[i][:size], space.dtype).reshape(space.shape)
                out[agent] = np.minimum(np.maximum(act, space.low), space.high)
            else:
                out[agent] = int(actions[i])
        return out

    def _step_one(self, env: ParallelEnv, actions: np.ndarray, out: VecStep, b: int) -> None:
        """Step env b and write its row of `out` (autoreset: the next episode's first
        observation, the finished one's last in `final_obs`)."""
        obs, rewards, terms, truncs, infos = env.step(self._env_actions(env, actions))
        out.reward[b] = [rewards.get(a, 0.0) for a in self.agents]
        if env.agents:
            self._observe(env, obs, infos, out, b)
            out.final_obs[b], out.final_state[b] = out.obs[b], out.state[b]
            return
        # as in gymnasium, a last step that is both terminated and truncated is terminated,
        # also when some agents terminate on it and others are cut by the time limit
        terminated = any(terms.values()) or not any(truncs.values())
        out.terminated[b], out.truncated[b] = terminated, not terminated
        unused = np.ones_like(out.action_mask[b])  # the finished episode's masks are not kept
        out.final_state[b] = self._fill(env, obs, infos, out.final_obs[b], unused)
        new_obs, new_infos = env.reset()
        self._observe(env, new_obs, new_infos, out, b)

    def step(self, actions: Any) -> VecStep:
        """Step every env with its agents' actions ([B, N] or [B, N, action_dim]); autoreset."""
        actions = check_layout(actions, self)
        out = self._arrays()
        for b, env in enumerate(self.envs):
            self._step_one(env, actions[b], out, b)
        return out

    def close(self) -> None:
        """Close every env."""
        for env in self.envs:
            env.close()


def _worker(conn: Connection, env_fn: EnvFn, num_envs: int, teams: dict) -> None:
    """Serve reset and step on a `SyncVecEnv` of `num_envs`; an error goes back to the parent
    (`_Failed`) and the worker keeps serving."""
    vec = SyncVecEnv(env_fn, num_envs, teams)
    while True:
        command, arg = conn.recv()
        if command not in ("reset", "step"):
            vec.close()
            conn.close()
            return
        try:
            conn.send(vec.reset(arg) if command == "reset" else vec.step(arg))
        except Exception as err:  # the parent raises it; pickled as is, or as its text
            conn.send(_Failed(err))


class _Failed:
    """An error in a worker, sent to the parent to raise there."""

    def __init__(self, err: Exception) -> None:
        try:
            self.error = pickle.loads(pickle.dumps(err))
        except Exception:  # an exception that cannot be pickled: its type and text
            self.error = RuntimeError(f"{type(err).__name__}: {err}")


class ProcVecEnv:
    """B envs split over worker processes, each stepping its share with a `SyncVecEnv`."""

    def __init__(self, env_fn: EnvFn, num_envs: int, teams: dict, num_workers: int = 2) -> None:
        probe = SyncVecEnv(env_fn, 1, teams)
        for name in ("agents", "teams", "observation_spaces", "action_spaces", "obs_dim",
                     "state_dim", "num_actions", "action_dim"):  # fmt: skip
            setattr(self, name, getattr(probe, name))
        probe.close()
        self.num_envs = num_envs
        num_workers = max(1, min(num_workers, num_envs))
        self._sizes = [len(c) for c in np.array_split(np.arange(num_envs), num_workers)]
        ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
        self._conns, self._procs = [], []
        for size in self._sizes:
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker, args=(child, env_fn, size, teams), daemon=True)
            proc.start()
            child.close()
            self._conns.append(parent)
            self._procs.append(proc)

    def _gather(self) -> VecStep:
        parts = [conn.recv() for conn in self._conns]  # every reply, so none is left pending
        for part in parts:
            if isinstance(part, _Failed):
                raise part.error
        return VecStep(*(np.concatenate(x) for x in zip(*parts)))

    def reset(self, seed: int | None = None) -> VecStep:
        """Reset every env; env b is seeded with `seed + b`."""
        if not (seed is None or isinstance(seed, numbers.Integral)):
            raise ValueError("the process backend takes one reset seed; per-seed blocks "
                             "(--seeds K) run on the sync or batched backend")  # fmt: skip
        start = 0
        for conn, size in zip(self._conns, self._sizes):
            conn.send(("reset", None if seed is None else seed + start))
            start += size
        return self._gather()

    def step(self, actions: Any) -> VecStep:
        """Step every env; autoreset."""
        actions = check_layout(actions, self)
        start = 0
        for conn, size in zip(self._conns, self._sizes):
            conn.send(("step", actions[start : start + size]))
            start += size
        return self._gather()

    def close(self) -> None:
        """Stop the workers (one still running after 5 s is terminated)."""
        stop_children(self._conns, self._procs, timeout=5)
        self._conns, self._procs = [], []


BACKENDS = ("auto", "sync", "process", "batched", "compiled")
BATCHED = ("batched", "compiled")
"""The backends that step the natively batched torch MPE (compiled: through torch.compile)."""


def resolve_backend(env_id: str, backend: str, kwargs: dict[str, Any]) -> tuple[str, str]:
    """The backend that `backend` names for `env_id` with `kwargs`, and why (one line).

    "auto" is the batched torch MPE for the mpe/ ids it implements with every kwarg given
    (an order of magnitude more env steps per second than mpe2 from 16 worlds up: README's
    MPE throughput table), else the in-process sync backend; other names are taken as
    they are.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend={backend!r}: expected one of {', '.join(BACKENDS)}")
    if backend == "compiled":
        return backend, "compiled (as asked: the batched torch MPE; its first step compiles)"
    if backend != "auto":
        return backend, f"{backend} (as asked)"
    from marl.envs.registry import registration

    env_id = registration(env_id).env_id
    if not env_id.startswith("mpe/"):
        return "sync", f"sync (auto: {env_id} has no batched version)"
    from marl.envs.mpe import BATCHED_IDS, batched_kwargs_error

    if env_id not in BATCHED_IDS:
        return "sync", f"sync (auto: {env_id} has no batched version)"
    refused = batched_kwargs_error(env_id, kwargs)
    if refused:
        return "sync", f"sync (auto: the batched {env_id} refuses {refused}; mpe2 runs instead)"
    return "batched", (
        f"batched (auto: the natively batched torch {env_id}; set backend=sync for mpe2's)"
    )


def _make_parallel(env_id: str, kwargs: dict, check_actions: bool = True) -> ParallelEnv:
    from marl.envs.actions import CheckedParallel
    from marl.envs.registry import make

    env = make(env_id, parallel=True, **kwargs)
    return env if check_actions or not isinstance(env, CheckedParallel) else env.env


def _check_count(name: str, value: Any) -> None:
    """A count must be a whole number of at least 1 (2.5 envs or True workers is a mistake)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name}={value!r}: expected an integer of at least 1")


def make_vec(
    env_id: str,
    num_envs: int = 8,
    *,
    seed: int | Sequence[int] | None = None,
    backend: str = "sync",
    num_workers: int = 2,
    device: str = "cpu",
    check_actions: bool = True,
    **kwargs: Any,
) -> Any:
    """B copies of `env_id` as one `VecEnv`.

    backend: "sync" (this process), "process" (worker processes), "batched" (natively
    batched torch implementation, MPE only), "compiled" (the batched one with its step
    through `torch.compile`: 2.5-3.4x its env steps per second from 1 to 8,192 worlds,
    after seconds of compiling; docs/speed.md) or "auto" (batched where it exists for the id and
    kwargs, else sync: `resolve_backend`). With `seed`, the envs are reset once here; K
    seeds split them into K equal blocks side by side, each seeded as a run of its own.
    `check_actions` refuses actions outside their agent's space (on the batched backend:
    NaN or infinite continuous actions and out-of-range discrete ones) with an error that
    names them; learners' workers turn it off, since their actions come from their own
    (masked) policy (the checks cost a gym env step a quarter to two fifths of its CPU in
    this process). Turned off, the sync and process backends drop the parallel env's check
    (a turn-based env keeps its per-move one) and still refuse non-finite continuous
    actions.
    """
    import functools

    from marl.envs.registry import group_teams, make, registration

    backend = resolve_backend(env_id, backend, kwargs)[0]
    _check_count("num_envs", num_envs)
    _check_count("num_workers", num_workers)
    reg = registration(env_id)
    if backend in BATCHED:
        from marl.envs.families import check_kwarg_values
        from marl.envs.mpe import make_batched

        check_kwarg_values(reg, kwargs)  # as `make` does for mpe2: N=0 named, not a torch error

        return make_batched(reg.env_id, num_envs, device=device, seed=seed,
                            check_actions=check_actions, compile=backend == "compiled",
                            **kwargs)  # fmt: skip
    probe = make(env_id, parallel=True, **kwargs)
    teams = group_teams(probe.possible_agents, reg.teams)
    probe.close()
    env_fn = functools.partial(_make_parallel, env_id, kwargs, check_actions)
    if backend == "process":
        vec: Any = ProcVecEnv(env_fn, num_envs, teams, num_workers)
    else:
        vec = SyncVecEnv(env_fn, num_envs, teams)
    if seed is not None:
        vec.reset(seed)
    return vec


def vec_spec(env_id: str, *, backend: str = "sync", **kwargs: Any) -> VecSpec:
    """The `VecSpec` of `env_id` with `kwargs` (agents, teams, spaces, widths), read from
    one instance of the env on `backend` ("process" reads it in this process). A turn-based
    game has no vector form: its spec is read from its AEC env (no global state: S = 0)."""
    from marl.envs.registry import registration

    backend = resolve_backend(env_id, backend, kwargs)[0]
    if registration(env_id).kind == "aec" and backend not in BATCHED:
        return _turn_based_spec(env_id, kwargs)
    probe = {"process": "sync", "compiled": "batched"}.get(backend, backend)  # same spaces
    env = make_vec(env_id, 1, backend=probe, **kwargs)
    try:
        return VecSpec.of(env, env_id, kwargs)
    finally:
        env.close()


def _turn_based_spec(env_id: str, kwargs: dict[str, Any]) -> VecSpec:
    from marl.envs.registry import group_teams, make, registration

    env = make(env_id, **kwargs)
    try:
        agents = list(env.possible_agents)
        index = {a: i for i, a in enumerate(agents)}
        teams = group_teams(agents, registration(env_id).teams)
        obs = [_obs_space(env.observation_space(a)) for a in agents]
        actions = [env.action_space(a) for a in agents]
    finally:
        env.close()
    return VecSpec(
        tuple(agents), {t: tuple(index[a] for a in m) for t, m in teams.items()},
        tuple(obs), tuple(actions), max(flatdim(s) for s in obs), 0,
        max(_num_actions(s) for s in actions), max(_action_dim(s) for s in actions),
        env_id, dict(kwargs),
    )  # fmt: skip


def learner_env(spec: VecSpec, config: Any, num_envs: int, seed: int | Sequence[int]) -> Any:
    """The vector env a learner's worker steps: `num_envs` copies of the spec's env on the
    config's `backend` (auto when it has none: `resolve_backend`), actions unchecked (they
    come from its policy). A learner module that acts on a vector env uses this as its
    `make_env`. K seeds (`--seeds K`): K blocks of `num_envs` envs side by side, block k
    seeded as a run of its own with `seed[k]`."""
    backend = getattr(config, "backend", "auto")
    if not isinstance(seed, numbers.Integral):
        if backend == "process":
            raise ValueError("--seeds runs on the sync or batched backend, not process")
        num_envs *= len(seed)
    return make_vec(spec.env_id, num_envs, seed=seed, backend=backend, check_actions=False,
                    **spec.env_kwargs)  # fmt: skip
