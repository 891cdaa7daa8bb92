"""Conformance checks for any registered env: PettingZoo's own API and seed tests.

`check_env(env_id)` runs the same checks the test suite runs on every built-in id and
returns one `CheckResult` per rule, with a plain-words explanation of each failure.
"""

from __future__ import annotations

import contextlib
import io
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pettingzoo.test import api_test, parallel_api_test, parallel_seed_test, seed_test

from marl.envs.registry import make, registration

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


def check_env(env_id: str, num_cycles: int = 50, **kwargs: Any) -> list[CheckResult]:
    """Run PettingZoo's API and seed tests on `env_id` (both APIs for parallel envs)."""
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
    return results
