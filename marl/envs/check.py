"""Conformance checks for any registered env: PettingZoo's own API and seed tests, and
marl's episodes test.

`check_env(env_id)` runs the same checks the test suite runs on every built-in id and
returns one `CheckResult` per rule, with a plain-words explanation of each failure.
PettingZoo's parallel seed test stops after one step and neither of its seed tests resets
twice, so `episodes_seed_test` plays two envs reset with one seed through several episodes
(each later reset unseeded, as a vector env's autoreset is) and compares every observation,
reward, ending and info: an env drawing from an unseeded generator anywhere fails it.
"""

from __future__ import annotations

import contextlib
import io
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium
import numpy as np
from pettingzoo import AECEnv
from pettingzoo.test import api_test, parallel_api_test, parallel_seed_test, seed_test

from marl.envs.registry import make, registration

EPISODES = 3  # episodes the episodes test plays (the first seeded, the others not)

# What each PettingZoo assertion means, for authors who have not read pettingzoo.test: a
# piece of the assertion's own text, then the explanation. The first match wins, so the
# more specific texts come first.
EXPLANATIONS = (
    ("should return the exact same space object",
     "observation_space(agent) or action_space(agent) built a new space on each call: create "
     "the spaces once (e.g. in __init__) and return the stored object, so seeding it sticks"),
    ("Out of bounds observation",
     "an observation lies outside observation_space(agent): widen the space or fix the value"),
    ("dtype for observation at",
     "an observation's dtype differs from observation_space(agent)'s: cast it in observe/step"),
    ("Incorrect action mask",
     "two envs reset with the same seed gave different action masks: derive masks from the "
     "state only"),
    ("Incorrect action",
     "action_space(agent).sample() differs between two envs reset with the same seed: seed "
     "each action space in reset(seed=...)"),
    ("Incorrect",
     "two envs reset with the same seed and given the same actions diverged: draw every random "
     "number from self.np_random"),
    ("Action mask can not be an empty array",
     "an action mask must be an int8 array of 0/1 with one entry per action"),
    ("must extend gymnasium.spaces.Space",
     "observation_space/action_space must return gymnasium.spaces.Space objects"),
    ("agent cannot be revived",
     "an agent that left env.agents came back: agents may only leave during an episode"),
)  # fmt: skip


@dataclass(frozen=True)
class CheckResult:
    """One rule checked on one env."""

    rule: str
    passed: bool
    message: str = ""


def _explain(err: BaseException) -> str:
    text = f"{type(err).__name__}: {err}".strip()
    if isinstance(err, AssertionError):  # only PettingZoo's checks fail with these texts
        for piece, meaning in EXPLANATIONS:
            if piece in str(err):
                return f"{text} -- {meaning}"
    frame = traceback.extract_tb(err.__traceback__)[-1]
    return f"{text} (at {frame.filename.rsplit('/', 2)[-1]}:{frame.lineno})"


def _run(rule: str, fn: Callable[[], Any]) -> CheckResult:
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            fn()
    except Exception as err:
        return CheckResult(rule, False, _explain(err))
    return CheckResult(rule, True)


def _legal_action(space: gymnasium.Space, obs: Any, info: Any, rng: np.random.Generator) -> Any:
    """A random action of `space` drawn from `rng`, legal under the agent's action mask
    (in its info or observation dict) where there is one."""
    mask = info.get("action_mask") if isinstance(info, dict) else None
    if mask is None and isinstance(obs, dict):
        mask = obs.get("action_mask")
    if isinstance(space, gymnasium.spaces.Discrete) and mask is not None:
        return int(space.start) + int(rng.choice(np.flatnonzero(np.asarray(mask))))
    space.seed(int(rng.integers(2**31)))
    return space.sample()


def _same(a: Any, b: Any) -> bool:
    """Equal observations, rewards or infos (nested dicts, arrays, numbers), NaN equal NaN."""
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) or isinstance(b, dict):
        return (isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys()
                and all(_same(a[k], b[k]) for k in a))  # fmt: skip
    try:
        x, y = np.asarray(a), np.asarray(b)
        if x.dtype.kind in "fc" and y.dtype.kind in "fc":
            return x.shape == y.shape and bool(np.array_equal(x, y, equal_nan=True))
        return x.shape == y.shape and bool(np.array_equal(x, y))
    except (TypeError, ValueError):
        return a == b


def _play_parallel(env: Any, seed: int, steps: int) -> Any:
    """Records of `env` (parallel) played from `reset(seed)` through `EPISODES` episodes
    or `steps` steps, whichever comes first, each later episode reset without a seed."""
    rng = np.random.default_rng(seed)
    obs, infos = env.reset(seed=seed)
    yield obs, infos
    episodes = 1
    for _ in range(steps):
        actions = {a: _legal_action(env.action_space(a), obs[a], infos.get(a), rng)
                   for a in env.agents}  # fmt: skip
        obs, *rest, infos = env.step(actions)
        yield obs, rest, infos
        if not env.agents:
            if episodes == EPISODES:
                return
            obs, infos = env.reset()
            episodes += 1
            yield obs, infos


def _play_aec(env: Any, seed: int, steps: int) -> Any:
    """`_play_parallel` for an AEC env: the acting agent's `last()` before each move."""
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    episodes = 1
    for _ in range(steps):
        agent = env.agent_selection
        obs, reward, terminated, truncated, info = env.last()
        yield agent, obs, reward, terminated, truncated, info
        done = terminated or truncated
        env.step(None if done else _legal_action(env.action_space(agent), obs, info, rng))
        if not env.agents:
            if episodes == EPISODES:
                return
            env.reset()
            episodes += 1


def episodes_seed_test(env_fn: Callable[[], Any], num_cycles: int, seed: int = 0) -> None:
    """Play two envs from `env_fn` with one seed through `EPISODES` episodes (at most
    `EPISODES * num_cycles` steps) and assert they agree at every step."""
    first, second = env_fn(), env_fn()
    play = _play_aec if isinstance(first, AECEnv) else _play_parallel
    try:
        runs = zip(
            play(first, seed, EPISODES * num_cycles), play(second, seed, EPISODES * num_cycles)
        )
        for step, (a, b) in enumerate(runs):
            assert _same(list(a), list(b)), (
                f"Incorrect episodes: two envs reset with seed {seed} and given the same "
                f"actions differ at record {step} (counting resets and steps over "
                f"{EPISODES} episodes, later resets unseeded)"
            )
    finally:
        first.close()
        second.close()


def check_env(env_id: str, num_cycles: int = 50, **kwargs: Any) -> list[CheckResult]:
    """Run PettingZoo's API and seed tests on `env_id` (both APIs for parallel envs), then
    marl's episodes test; `num_cycles` steps a test (at least 1)."""
    if num_cycles < 1:
        raise ValueError(f"num_cycles={num_cycles}: the checks need at least 1 step")
    reg = registration(env_id)
    results = [_run("make", lambda: make(env_id, **kwargs).close())]
    if not results[0].passed:
        return results
    if reg.kind == "parallel":
        results.append(
            _run("parallel_api_test", lambda: parallel_api_test(make(env_id, **kwargs), num_cycles))
        )
        results.append(
            _run(
                "parallel_seed_test",
                lambda: parallel_seed_test(lambda: make(env_id, **kwargs), num_cycles),
            )
        )
    else:
        results.append(_run("api_test", lambda: api_test(make(env_id, **kwargs), num_cycles)))
        results.append(
            _run("seed_test", lambda: seed_test(lambda: make(env_id, **kwargs), num_cycles))
        )
    results.append(
        _run(
            "episodes_seed_test",
            lambda: episodes_seed_test(lambda: make(env_id, **kwargs), num_cycles),
        )
    )
    return results
