"""PettingZoo's own API and seed tests over every built-in id (what `marl envs check` runs).

Every mpe, matrix, gym and classic id is checked; OpenSpiel ids are all checked too (each
takes about 0.1 s), except a few big-board or long-setup games that are sampled out below.
"""

from __future__ import annotations

import importlib.util
import warnings

import numpy as np
import pytest

import marl
from marl.envs.check import check_env

# Games whose set-up or step is slow enough to dominate the suite; covered by the same
# checks through `marl envs check` by hand (they passed when this list was made).
SAMPLED_OUT = {"openspiel/bridge", "openspiel/colored_trails"}

IDS = [i for i in marl.list_envs() if i not in SAMPLED_OUT and not i.startswith("test/")]
NO_MUJOCO = importlib.util.find_spec("gymnasium_robotics") is None


def _param(env_id: str):
    """The id, skipped where it needs an extra that is not installed."""
    needs_mujoco = env_id.startswith("mamujoco/") and NO_MUJOCO
    return pytest.param(env_id, marks=pytest.mark.skipif(needs_mujoco, reason="no mujoco extra"))


@pytest.mark.parametrize("env_id", [_param(i) for i in IDS])
def test_api_and_seed(env_id: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = check_env(env_id, num_cycles=20)
    failures = [f"{r.rule}: {r.message}" for r in results if not r.passed]
    assert not failures, failures
    assert len(results) == 4


def test_check_reports_a_broken_env_in_plain_words() -> None:
    from marl.envs.families.matrix import TwoStepGame

    class Unseeded(TwoStepGame):
        """Observations drawn from an unseeded generator: breaks the seed rule."""

        def state(self):
            return np.random.default_rng().random(3).astype(np.float32)

    marl.register("test/unseeded-v0", Unseeded)
    results = {r.rule: r for r in check_env("test/unseeded-v0")}
    assert results["parallel_api_test"].passed
    assert not results["parallel_seed_test"].passed
    assert "seed" in results["parallel_seed_test"].message


def test_the_episodes_test_catches_what_pettingzoos_seed_test_misses() -> None:
    """PettingZoo's parallel seed test stops after one step and never resets twice: an env
    whose later episodes come from an unseeded generator passes it, not marl's test."""
    from marl.envs.families.matrix import TwoStepGame

    class LaterUnseeded(TwoStepGame):
        def reset(self, seed=None, options=None):
            self._rng = np.random.default_rng(seed)  # unseeded (OS entropy) when seed is None
            return super().reset(seed=seed, options=options)

        def state(self):
            return self._rng.random(3).astype(np.float32)

    marl.register("test/later_unseeded-v0", LaterUnseeded)
    results = {r.rule: r for r in check_env("test/later_unseeded-v0", num_cycles=20)}
    assert results["parallel_seed_test"].passed and results["parallel_api_test"].passed
    assert not results["episodes_seed_test"].passed
    assert "later resets unseeded" in results["episodes_seed_test"].message
    with pytest.raises(ValueError, match="num_cycles=0: the checks need at least 1 step"):
        check_env("matrix/two_step-v0", num_cycles=0)


def test_mamujoco_without_the_extra_names_it(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    import sys

    from conftest import cli

    monkeypatch.setitem(sys.modules, "gymnasium_robotics", None)  # import now fails
    with pytest.raises(ImportError, match=r"\.\[mujoco\]"):
        marl.make("mamujoco/HalfCheetah-2x3", parallel=True)
    status, _, err = cli(capsys, "envs", "show", "mamujoco/HalfCheetah-2x3")  # one line
    assert status == 2 and "install the extra" in err


@pytest.mark.skipif(importlib.util.find_spec("Box2D") is not None, reason="Box2D installed")
def test_a_gym_id_whose_dependency_is_missing_is_one_line(capsys) -> None:
    from conftest import cli

    status, _, err = cli(capsys, "envs", "show", "gym/LunarLander-v3")
    assert status == 2 and "gym/LunarLander-v3: Box2D is not installed" in err
