"""Vector stepping: team arrays, masks, autoreset, agents leaving, seeding, worker processes."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest
from pettingzoo import ParallelEnv

import marl
from marl.core.actions import ActionError


class Countdown(ParallelEnv):
    """agent_0 leaves after 2 steps, agent_1 after 4 (terminated); obs = steps taken."""

    metadata = {"name": "countdown", "is_parallelizable": True}
    LIFETIMES = {"agent_0": 2, "agent_1": 4}

    def __init__(self) -> None:
        self.possible_agents = ["agent_0", "agent_1"]
        self.agents: list[str] = []
        self._t = 0

    def observation_space(self, agent):
        return gymnasium.spaces.Box(0, 10, (1,), np.float32)

    def action_space(self, agent):
        return gymnasium.spaces.Discrete(3)

    def reset(self, seed=None, options=None):
        self.agents, self._t = list(self.possible_agents), 0
        return {a: np.zeros(1, np.float32) for a in self.agents}, {
            a: {"action_mask": np.array([1, 0, 1], np.int8)} for a in self.agents
        }

    def step(self, actions):
        self._t += 1
        obs = {a: np.full(1, self._t, np.float32) for a in self.agents}
        done = {a: self._t >= self.LIFETIMES[a] for a in self.agents}
        rewards = {a: float(actions[a]) for a in self.agents}
        infos = {a: {"action_mask": np.array([1, 1, 0], np.int8)} for a in self.agents}
        self.agents = [a for a in self.agents if not done[a]]
        return obs, rewards, done, {a: False for a in done}, infos


marl.register("test/countdown-v0", Countdown)


def test_team_arrays_shapes_for_mixed_obs_sizes() -> None:
    vec = marl.make_vec("mpe/simple_tag-v3", 3, seed=0)
    step = vec.reset(seed=0)
    assert step.obs.shape == (3, 4, 16) and step.state.shape == (3, 62)
    assert step.action_mask.shape == (3, 4, 5) and step.action_mask.all()
    assert vec.teams == {"adversary": [0, 1, 2], "agent": [3]}
    # the prey sees 14 numbers; the last two columns are padding
    assert np.all(step.obs[:, 3, 14:] == 0) and np.any(step.obs[:, 3, :14] != 0)
    step = vec.step(np.zeros((3, 4), int))
    assert step.reward.shape == (3, 4) and step.alive.all() and not step.done.any()


def test_agents_leaving_are_masked_and_episode_autoresets() -> None:
    vec = marl.make_vec("test/countdown-v0", 2, seed=0)
    first = vec.reset(seed=0)
    assert first.action_mask[0, 0].tolist() == [True, False, True]
    alive, done, final = [], [], []
    for _ in range(5):
        step = vec.step(np.full((2, 2), 2))
        alive.append(step.alive[0].tolist())
        done.append(bool(step.done[0]))
        final.append(step.final_obs[0, 1, 0])
    assert alive == [[True, True], [False, True], [False, True], [True, True], [True, True]]
    assert done == [False, False, False, True, False]
    assert step.terminated.dtype == bool
    # the step that ended the episode keeps its last obs; obs is already the next episode's
    assert final[3] == 4.0
    assert vec.step(np.full((2, 2), 2)).obs[0, 1, 0] == 2.0  # t=2 of the new episode
    # the dead agent's reward is 0; the living one's is its action
    assert step.reward[0].tolist() == [2.0, 2.0]


def test_truncation_sets_final_obs() -> None:
    vec = marl.make_vec("mpe/simple_spread-v3", 2, seed=1, max_cycles=3)
    vec.reset(seed=1)
    steps = [vec.step(np.zeros((2, 3), int)) for _ in range(3)]
    last = steps[-1]
    assert last.truncated.all() and not last.terminated.any()
    assert not np.allclose(last.final_obs, last.obs)  # obs is the reset one
    assert np.allclose(steps[1].final_obs, steps[1].obs)


def test_same_seed_same_arrays_and_process_matches_sync() -> None:
    def run(backend: str, seed: int) -> np.ndarray:
        vec = marl.make_vec("mpe/simple_spread-v3", 4, backend=backend)
        rng = np.random.default_rng(0)
        out = [vec.reset(seed=seed).obs]
        for _ in range(30):
            out.append(vec.step(rng.integers(0, 5, (4, 3))).obs)
        vec.close()
        return np.stack(out)

    a, b = run("sync", 7), run("sync", 7)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, run("sync", 8))
    assert np.array_equal(a, run("process", 7))


def test_continuous_actions_and_single_agent_gym() -> None:
    vec = marl.make_vec("gym/Pendulum-v1", 2, seed=0)
    assert vec.action_dim == 1 and vec.num_actions == 0
    step = vec.step(np.full((2, 1, 1), 5.0))  # clipped to the Box [-2, 2]
    assert step.obs.shape == (2, 1, 3) and step.state.shape == (2, 3)
    vec = marl.make_vec("mpe/simple_spread-v3", 2, seed=0, continuous_actions=True)
    assert vec.action_dim == 5
    vec.step(np.random.default_rng(0).random((2, 3, 5)))


def test_simultaneous_openspiel_game_masks_in_vector_form() -> None:
    vec = marl.make_vec("openspiel/goofspiel", 2, seed=0, num_cards=4)
    step = vec.reset(seed=0)
    assert step.action_mask.shape == (2, 2, 4) and step.action_mask.all()
    step = vec.step(np.zeros((2, 2), int))
    assert not step.action_mask[:, :, 0].any()  # card 0 was played


def test_bad_actions_shape_and_backend_errors() -> None:
    vec = marl.make_vec("mpe/simple_spread-v3", 2)
    with pytest.raises(ValueError, match=r"expected \(2, 3"):
        vec.step(np.zeros((3, 3), int))
    with pytest.raises(ValueError, match=r"expected \(2, 3\): \[envs, agents\]"):
        vec.step(np.zeros((2, 3, 5)))  # a discrete env given continuous-shaped actions
    for bad in (np.full((2, 3), 2.7), np.ones((2, 3), bool)):  # int() would play 2 and 1
        with pytest.raises(ActionError, match="discrete actions must be integers"):
            vec.step(bad)
    box = marl.make_vec("gym/Pendulum-v1", 2, seed=0)
    with pytest.raises(ValueError, match=r"expected \(2, 1, 1\)"):
        box.step(np.zeros((2, 1, 3)))  # not silently cut to the first value
    with pytest.raises(ValueError, match="backend"):
        marl.make_vec("mpe/simple_spread-v3", 2, backend="threads")


def test_a_process_workers_error_comes_back_and_the_env_goes_on() -> None:
    vec = marl.make_vec("mpe/simple_spread-v3", 4, seed=0, backend="process")
    try:
        with pytest.raises(ActionError, match=r"action 7 of agent 'agent_0'.*expected 0..4"):
            vec.step(np.full((4, 3), 7))
        with pytest.raises(ValueError, match=r"expected \(4, 3\)"):
            vec.step(np.zeros((3, 3), int))
        assert vec.step(np.zeros((4, 3), int)).obs.shape == (4, 3, 18)
    finally:
        vec.close()


def test_openspiel_autoresets_repeat_with_the_seed() -> None:
    """Shimmy deals an unseeded reset from OS entropy; after a seeded reset marl seeds each
    later one from the first seed, so every episode of a seeded vector run repeats."""

    def run(seed: int) -> np.ndarray:
        vec = marl.make_vec("openspiel/goofspiel", 2, seed=seed, num_cards=4)
        steps = [vec.step(np.full((2, 2), t % 4)).obs for t in range(16)]  # 4 episodes
        return np.stack(steps)

    assert np.array_equal(run(0), run(0))
    assert not np.array_equal(run(0), run(1))


def test_the_fallback_state_concatenates_unequal_observations() -> None:
    class Unequal(ParallelEnv):
        metadata = {"name": "unequal", "is_parallelizable": True}
        possible_agents = ["a", "b"]
        sizes = {"a": 2, "b": 4}

        def observation_space(self, agent):
            return gymnasium.spaces.Box(0, 9, (self.sizes[agent],), np.float32)

        def action_space(self, agent):
            return gymnasium.spaces.Discrete(2)

        def reset(self, seed=None, options=None):
            self.agents = list(self.possible_agents)
            obs = {"a": np.array([1, 2], np.float32), "b": np.array([3, 4, 5, 6], np.float32)}
            return obs, {a: {} for a in self.agents}

    marl.register("test/unequal-v0", Unequal)
    step = marl.make_vec("test/unequal-v0", 1, seed=0).reset(seed=0)
    assert step.state.tolist() == [[1, 2, 3, 4, 5, 6]]  # not the padded rows [1, 2, 0, 0, ...]


class EndsAtTheTimeLimit(ParallelEnv):
    """Two agents; on step 3 agent_0 terminates while agent_1 is cut by the time limit (or,
    with `both`, agent_0 is terminated and truncated at once)."""

    metadata = {"name": "ends_at_limit", "is_parallelizable": True}

    def __init__(self, both: bool = False) -> None:
        self.possible_agents = ["agent_0", "agent_1"]
        self.agents: list[str] = []
        self.both, self._t = both, 0

    def observation_space(self, agent):
        return gymnasium.spaces.Box(0, 10, (1,), np.float32)

    def action_space(self, agent):
        return gymnasium.spaces.Discrete(2)

    def reset(self, seed=None, options=None):
        self.agents, self._t = list(self.possible_agents), 0
        return {a: np.zeros(1, np.float32) for a in self.agents}, {a: {} for a in self.agents}

    def step(self, actions):
        self._t += 1
        last = self._t >= 3
        obs = {a: np.full(1, self._t, np.float32) for a in self.agents}
        terms = {"agent_0": last, "agent_1": False}
        truncs = {"agent_0": last and self.both, "agent_1": last}
        if last:
            self.agents = []
        return obs, {a: 0.0 for a in obs}, terms, truncs, {a: {} for a in obs}


marl.register("test/ends_at_limit-v0", EndsAtTheTimeLimit)


@pytest.mark.parametrize("both", [False, True])
def test_a_last_step_that_terminates_and_truncates_counts_as_terminated(both) -> None:
    vec = marl.make_vec("test/ends_at_limit-v0", 2, seed=0, both=both)
    steps = [vec.step(np.zeros((2, 2), int)) for _ in range(3)]
    assert steps[-1].terminated.all() and not steps[-1].truncated.any()
    assert not any(s.done.any() for s in steps[:2])


def test_batched_mpe_end_by_time_limit_is_truncated_and_never_both() -> None:
    vec = marl.make_vec("mpe/simple_spread-v3", 4, seed=0, backend="batched", max_cycles=2)
    steps = [vec.step(np.zeros((4, 3), int)) for _ in range(2)]
    assert bool(steps[-1].truncated.all()) and not bool(steps[-1].terminated.any())
    assert not bool((steps[-1].terminated & steps[-1].truncated).any())
    # a scenario that ends on the time limit's step: terminated, not truncated
    import torch

    vec.scenario.is_terminal = lambda s: torch.ones(4, dtype=torch.bool)
    last = [vec.step(np.zeros((4, 3), int)) for _ in range(2)][-1]
    assert bool(last.terminated.all()) and not bool(last.truncated.any())


def test_auto_backend_is_batched_for_mpe_ids_it_supports_else_sync() -> None:
    from marl.envs.mpe import BatchedMPE
    from marl.envs.vector import resolve_backend

    spread = {"N": 3, "max_cycles": 25}
    backend, why = resolve_backend("mpe/simple_spread-v3", "auto", spread)
    assert backend == "batched" and "backend=sync" in why
    vec = marl.make_vec("mpe/simple_spread-v3", 2, backend="auto", **spread)
    assert isinstance(vec, BatchedMPE)
    # a kwarg the batched MPE refuses: mpe2 steps it, and the line says why
    backend, why = resolve_backend("mpe/simple_spread-v3", "auto", {"benchmark_data": True})
    assert backend == "sync" and "benchmark_data" in why
    assert resolve_backend("gym/CartPole-v1", "auto", {})[0] == "sync"
    assert resolve_backend("mpe/simple_tag-v3", "sync", {}) == ("sync", "sync (as asked)")
    backend, why = resolve_backend("mpe/simple_tag-v3", "compiled", {})
    assert backend == "compiled" and "its first step compiles" in why  # a pause is expected
    with pytest.raises(ValueError, match="expected one of auto, sync"):
        resolve_backend("mpe/simple_tag-v3", "fast", {})


def test_a_run_records_the_backend_that_ran(capsys) -> None:
    from marl.algorithms import make_config
    from marl.run.loop import RunSpec, env_backend

    spec = RunSpec("mappo", "mpe/simple_tag-v3", steps=10)
    config = env_backend(spec, make_config("mappo", {}), say=True)
    assert config.backend == "batched"
    assert "env backend: batched (auto" in capsys.readouterr().out
