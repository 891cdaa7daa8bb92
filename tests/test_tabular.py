"""Tabular Q-learning and Dyna-Q: exact numerics, the learner's plumbing, and learning tests."""

import io

import numpy as np
import pytest
import torch

import marl
from marl.core.config import ConfigError
from marl.core.spec import VecSpec
from marl.envs.families.matrix import GAMES
from marl.envs.families.maze import (
    LAYOUTS,
    MazeEnv,
    greedy_path_length,
    maze_step,
    shortest_path_length,
)
from marl.learners.tabular import (
    TabularConfig,
    TabularExperience,
    TabularLearner,
    evaluate_tabular,
    train_tabular,
)
from marl.learners.tabular.numerics import TabularModel, epsilon_greedy, plan, q_learning_update
from marl.learners.tabular.states import StateIndex

MAZE = LAYOUTS["dyna_maze"]
ALPHA, GAMMA = 0.5, 0.9


# -- pure numerics -------------------------------------------------------------------------


def _table() -> np.ndarray:
    q = np.zeros((3, 2))
    q[0, 1] = 0.5
    q[2] = [0.2, 0.8]
    return q


def test_q_update_bootstraps_unless_terminated():
    q = _table()
    # target 1 + .9 * max(.2, .8) = 1.72; error 1.72 - .5 = 1.22; Q = .5 + .5 * 1.22
    assert q_learning_update(q, 0, 1, 1.0, 2, False, ALPHA, GAMMA) == pytest.approx(1.22)
    assert q[0, 1] == pytest.approx(1.11)
    q = _table()
    # terminated: target is the reward alone, 1 - .5 = .5; Q = .5 + .25
    assert q_learning_update(q, 0, 1, 1.0, 2, True, ALPHA, GAMMA) == pytest.approx(0.5)
    assert q[0, 1] == pytest.approx(0.75)


def test_q_update_bootstraps_over_legal_actions_only():
    q, legal = _table(), np.ones((3, 2), bool)
    legal[2, 1] = False  # the 0.8 action is illegal in state 2
    q_learning_update(q, 0, 1, 1.0, 2, False, ALPHA, GAMMA, legal)
    assert q[0, 1] == pytest.approx(0.5 + 0.5 * (1.0 + 0.9 * 0.2 - 0.5))


def test_epsilon_greedy_breaks_ties_at_random_among_legal_actions():
    rng = np.random.default_rng(0)
    q = np.tile([1.0, 3.0, 3.0, 3.0], (2000, 1))
    mask = np.tile([True, True, True, False], (2000, 1))
    actions = epsilon_greedy(q, mask, 0.0, rng)
    counts = np.bincount(actions, minlength=4)
    assert counts[0] == 0 and counts[3] == 0  # never worse, never illegal
    assert 900 < counts[1] < 1100 and 900 < counts[2] < 1100
    explore = epsilon_greedy(q, mask, 1.0, rng)
    assert set(np.unique(explore)) == {0, 1, 2}
    again = [epsilon_greedy(q, mask, 0.3, np.random.default_rng(5)) for _ in range(2)]
    assert np.array_equal(*again)


def test_model_remembers_the_last_outcome_of_each_pair():
    model = TabularModel.empty(4, 2)
    model.record(1, 0, 0.0, 2, False)
    model.record(3, 1, 1.0, 0, True)
    model.record(1, 0, 0.5, 3, False)  # seen again: overwritten, not listed twice
    assert model.seen == [1 * 2 + 0, 3 * 2 + 1]
    assert (model.next_state[1, 0], model.reward[1, 0]) == (3, 0.5)
    assert model.terminated[3, 1] and model.next_state[0, 0] == -1


def test_planning_step_by_hand():
    q = np.zeros((3, 2))
    q[2] = [0.4, 1.0]
    model = TabularModel.empty(3, 2)
    model.record(0, 1, 1.0, 2, False)
    # the one seen pair: Q[0, 1] = 0 + .5 * (1 + .9 * 1.0 - 0) = .95
    assert plan(q, model, 1, ALPHA, GAMMA, np.random.default_rng(0)) == pytest.approx(1.9)
    assert q[0, 1] == pytest.approx(0.95)


def test_planning_draws_a_seen_state_then_a_seen_action_from_the_generator(monkeypatch):
    """Sutton & Barto's rule: a random observed state, then a random action taken in it, so
    a state with one tried action is planned as often as one with three."""
    from marl.learners.tabular import numerics

    model = TabularModel.empty(2, 3)
    for action in range(3):
        model.record(0, action, 1.0, 1, False)
    model.record(1, 2, 2.0, 0, True)
    planned: list[tuple[int, int]] = []
    update = numerics.q_learning_update

    def recorded(q, state, action, *rest):
        planned.append((state, action))
        return update(q, state, action, *rest)

    monkeypatch.setattr(numerics, "q_learning_update", recorded)
    plan(np.zeros((2, 3)), model, 4000, ALPHA, GAMMA, np.random.default_rng(7))
    share = sum(s == 1 for s, _ in planned) / len(planned)
    assert share == pytest.approx(0.5, abs=0.03)  # uniform over pairs would give 0.25
    assert {a for s, a in planned if s == 0} == {0, 1, 2} and {a for s, a in planned if s == 1} == {
        2
    }
    rng = np.random.default_rng(7)  # the draws: states, then an action index within each
    states = rng.integers(2, size=4000)
    actions = np.where(states == 0, rng.integers(np.array([3, 1])[states]), 2)
    assert planned == list(zip(states.tolist(), actions.tolist()))


# -- state index and learner plumbing ------------------------------------------------------


def _maze_learner(**overrides) -> tuple[TabularLearner, object]:
    env = marl.make_vec("maze/dyna_maze-v0", 1)
    config = TabularConfig(alpha=ALPHA, gamma=GAMMA, **overrides)
    return _tabular(env, config, "maze/dyna_maze-v0"), env


def _tabular(env, config, env_id="", seed=0) -> TabularLearner:
    return TabularLearner(VecSpec.of(env, env_id), config, seed)


def test_discrete_observations_arrive_one_hot_and_index_back():
    env = marl.make_vec("gym/FrozenLake-v1", 2, is_slippery=False)
    index = StateIndex(env.observation_spaces, env.agents, "gym/FrozenLake-v1", 100)
    step = env.reset(0)
    assert step.obs.shape == (2, 1, 16) and index(step.obs).tolist() == [[0], [0]]
    step = env.step(np.array([[2], [1]]))  # right -> cell 1, down -> cell 4
    assert index(step.obs).tolist() == [[1], [4]]


def test_binary_observations_read_as_bits():
    env = marl.make_vec("matrix/stag_hunt-v0", 1, rounds=2)  # obs: 4 joint-action + 2 round
    index = StateIndex(env.observation_spaces, env.agents, "matrix/stag_hunt-v0", 2**6)
    assert index.sizes == [64, 64]
    step = env.reset(0)
    assert index(step.obs).tolist() == [[16, 16]]  # round 0 bit
    step = env.step(np.array([[1, 0]]))  # joint action (hare, stag) = one-hot entry 2
    assert index(step.obs).tolist() == [[4 + 32, 4 + 32]]


def test_continuous_observations_are_refused_by_name():
    env = marl.make_vec("gym/CartPole-v1", 1)
    with pytest.raises(ValueError, match=r"gym/CartPole-v1 gives agent_0 observations in Box"):
        _tabular(env, TabularConfig(), "gym/CartPole-v1")


def test_config_is_validated():
    env = marl.make_vec("maze/dyna_maze-v0", 1)
    with pytest.raises(ConfigError, match="alpha"):
        _tabular(env, TabularConfig(alpha=1.5))
    with pytest.raises(ConfigError, match="planning_steps"):
        _tabular(env, TabularConfig(planning_steps=-1))


def _experience(terminated: bool, next_state: int) -> TabularExperience:
    one = np.ones((1, 1, 1))
    return TabularExperience(
        states=(one * 18).astype(np.int64),
        actions=(one * 1).astype(np.int64),
        rewards=(one * 1.0).astype(np.float32),
        next_states=(one * next_state).astype(np.int64),
        terminated=(one * terminated).astype(bool),
        acted=one.astype(bool),
        legal=np.ones((1, 1, 1, 4), bool),
        episode_returns=np.array([[1.0]]),
        episode_lengths=np.array([7]),
    )


def test_step_size_and_exploration_schedules():
    learner, _ = _maze_learner(alpha_end=0.1, alpha_anneal_steps=100, epsilon_anneal_steps=10)
    assert [learner.alpha(s) for s in (0, 50, 100, 500)] == pytest.approx([0.5, 0.3, 0.1, 0.1])
    assert learner.epsilon(0) == pytest.approx(0.1)  # start == end by default


def test_learn_bootstraps_on_truncation_not_on_termination():
    learner, _ = _maze_learner()
    learner.q[0][19] = [0.0, 2.0, 0.0, 0.0]
    stats = learner.learn([_experience(terminated=False, next_state=19)])  # truncated
    assert learner.q[0][18, 1] == pytest.approx(0.5 * (1.0 + 0.9 * 2.0))
    assert stats["return/agent"] == 1.0 and stats["episodes"] == 1.0
    assert stats["env_steps"] == 1.0 and stats["td_error"] == pytest.approx(2.8)
    learner.q[0][18, 1] = 0.0
    learner.learn([_experience(terminated=True, next_state=19)])
    assert learner.q[0][18, 1] == pytest.approx(0.5)


def test_collect_records_transitions_and_finished_episodes():
    learner, env = _maze_learner(rollout_steps=40, epsilon_start=1.0, epsilon_end=1.0)
    carry = learner.start(env, seed=3)
    experience, carry = learner.collect(env, carry)
    assert experience.states.shape == (40, 1, 1) and experience.legal.shape == (40, 1, 1, 4)
    assert experience.states[0, 0, 0] == MAZE.index(MAZE.start)
    for t in range(39):  # the next state is where the agent acts next (no episode ended)
        assert experience.next_states[t, 0, 0] == experience.states[t + 1, 0, 0]
    cell = MAZE.start
    for t in range(40):  # replay the actions through the pure rules
        cell, reward, _ = maze_step(MAZE, cell, int(experience.actions[t, 0, 0]))
        assert experience.next_states[t, 0, 0] == MAZE.index(cell)
        assert experience.rewards[t, 0, 0] == reward
    assert learner.env_steps == 0  # collecting does not count as learning
    learner.learn([experience])
    assert learner.env_steps == 40 and carry.lengths[0] == 40


def test_final_obs_of_a_terminal_step_is_the_goal():
    env = marl.make_vec("gym/FrozenLake-v1", 1, is_slippery=False)
    learner = _tabular(env, TabularConfig(rollout_steps=6, epsilon_end=0.0))
    learner.q[0][:] = 0.0
    # right, right, down, down, down, right reaches the goal (15) of the 4x4 map
    for state, action in ((0, 2), (1, 2), (2, 1), (6, 1), (10, 1), (14, 2)):
        learner.q[0][state, action] = 1.0
    experience, carry = learner.collect(env, learner.start(env, seed=0))
    assert experience.next_states[-1, 0, 0] == 15 and experience.terminated[-1, 0, 0]
    assert experience.episode_returns.tolist() == [[1.0]]
    assert experience.episode_lengths.tolist() == [6]
    assert carry.lengths[0] == 0 and learner.index(carry.step.obs)[0, 0] == 0  # reset


def test_state_dict_round_trip_and_determinism():
    config = TabularConfig(planning_steps=5, epsilon_start=1.0, epsilon_anneal_steps=500)
    first = train_tabular("maze/dyna_maze-v0", config, 300, seed=4).learner
    second = train_tabular("maze/dyna_maze-v0", config, 300, seed=4).learner
    assert np.array_equal(first.q[0], second.q[0])  # same seed, same tables
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    env = marl.make_vec("maze/dyna_maze-v0", 1)
    restored = _tabular(env, config, seed=123)
    restored.load_state_dict(state)
    assert np.array_equal(restored.q[0], first.q[0]) and restored.env_steps == first.env_steps
    assert restored.models[0].seen == first.models[0].seen
    carry_a, carry_b = first.start(env, seed=9), restored.start(env, seed=9)
    obs, mask = carry_a.step.obs, carry_a.step.action_mask
    assert np.array_equal(
        first.policy(seed=2).act(obs, mask, greedy=False),
        restored.policy(seed=2).act(carry_b.step.obs, mask, greedy=False),
    )
    assert first.plan_rng.random() == restored.plan_rng.random()  # generator state restored


# -- the maze ------------------------------------------------------------------------------


def test_dyna_maze_layout_matches_the_book():
    walls = {(r, c) for r in range(6) for c in range(9) if MAZE.rows[r][c] == "#"}
    assert walls == {(1, 2), (2, 2), (3, 2), (4, 5), (0, 7), (1, 7), (2, 7)}
    assert MAZE.shape == (6, 9) and MAZE.start == (2, 0) and MAZE.goal == (0, 8)
    assert shortest_path_length(MAZE) == 14


def test_maze_rules_table():
    assert maze_step(MAZE, (2, 0), 3) == ((2, 0), 0.0, False)  # off the grid: stay
    assert maze_step(MAZE, (2, 1), 1) == ((2, 1), 0.0, False)  # into a wall: stay
    assert maze_step(MAZE, (2, 0), 0) == ((1, 0), 0.0, False)
    assert maze_step(MAZE, (1, 8), 0) == ((0, 8), 1.0, True)  # the goal pays 1 and ends


def test_greedy_path_length_follows_argmax_and_detects_loops():
    q = np.zeros((54, 4))
    assert greedy_path_length(MAZE, q) is None  # all ties go up: stuck at the top edge
    route = [2, 2, 1, 1, 1, 0, 1, 1, 1, 1, 1, 0, 0, 0]  # down 2, right 3, up, right 5, up 3
    cell = MAZE.start
    for action in route:
        q[MAZE.index(cell), action] = 1.0
        cell, _, _ = maze_step(MAZE, cell, action)
    assert cell == MAZE.goal and greedy_path_length(MAZE, q) == 14


def test_maze_truncates_at_max_cycles():
    env = MazeEnv(max_cycles=2)
    env.reset(seed=0)
    env.step({"agent_0": 3})
    _, _, terms, truncs, _ = env.step({"agent_0": 3})
    assert truncs == {"agent_0": True} and terms == {"agent_0": False} and env.agents == []


# -- learning ------------------------------------------------------------------------------

FROZEN = dict(gamma=0.99, epsilon_start=1.0, epsilon_end=0.1, num_envs=8, rollout_steps=16)


def test_frozen_lake_deterministic_is_solved():
    config = TabularConfig(alpha=0.5, gamma=0.95, epsilon_start=1.0, epsilon_end=0.05,
                           epsilon_anneal_steps=10_000, num_envs=8, rollout_steps=16)  # fmt: skip
    kwargs = {"is_slippery": False}
    run = train_tabular("gym/FrozenLake-v1", config, 20_000, seed=0, env_kwargs=kwargs)
    env = marl.make_vec("gym/FrozenLake-v1", 8, **kwargs)
    returns = evaluate_tabular(run.learner.policy(seed=1), env, 64, seed=100)
    assert returns.mean() == 1.0


@pytest.mark.slow
def test_frozen_lake_slippery_near_optimal():
    # a decaying step size: with a constant one the Q noise flips close greedy choices
    config = TabularConfig(alpha=0.1, alpha_end=0.005, alpha_anneal_steps=200_000,
                           epsilon_anneal_steps=100_000, **FROZEN)  # fmt: skip
    run = train_tabular("gym/FrozenLake-v1", config, 200_000, seed=0)
    env = marl.make_vec("gym/FrozenLake-v1", 8)
    success = (evaluate_tabular(run.learner.policy(seed=1), env, 1000, seed=10_000) > 0).mean()
    assert success >= 0.70  # the optimal policy succeeds about 74% of the time


@pytest.mark.slow
def test_taxi_greedy_return():
    # gymnasium 1.4 ships Taxi-v4; without is_rainy/fickle_passenger it is Taxi-v3's MDP
    config = TabularConfig(alpha=0.5, gamma=0.99, epsilon_start=1.0, epsilon_end=0.05,
                           epsilon_anneal_steps=50_000, num_envs=8, rollout_steps=16)  # fmt: skip
    run = train_tabular("gym/Taxi-v4", config, 100_000, seed=0)
    env = marl.make_vec("gym/Taxi-v4", 8)
    returns = evaluate_tabular(run.learner.policy(seed=1), env, 200, seed=10_000)
    assert returns.mean() >= 7.0


def test_stag_hunt_independent_learners_reach_hare_hare():
    config = TabularConfig(alpha=0.1, epsilon_start=1.0, epsilon_end=0.05,
                           epsilon_anneal_steps=2000, num_envs=8, rollout_steps=10)  # fmt: skip
    run = train_tabular("matrix/stag_hunt-v0", config, 5000, seed=0, env_kwargs={"rounds": 1})
    env = marl.make_vec("matrix/stag_hunt-v0", 4, rounds=1)
    step = env.reset(0)
    actions = run.learner.policy().act(step.obs, step.action_mask)
    assert actions.tolist() == [[1, 1]] * 4  # (hare, hare): the risk-dominant equilibrium
    payoffs = np.array(GAMES["stag_hunt"].payoffs)  # [player, a0, a1]
    assert payoffs[0, 1, 1] >= payoffs[0, 0, 1] and payoffs[1, 1, 1] >= payoffs[1, 1, 0]  # Nash


def _steps_to_optimal(planning_steps: int, seed: int) -> int:
    # optimistic start (initial_q = 1, the largest return): with the book's zeros, untried
    # actions look worst and both methods can settle on the 16-step route over the wall
    config = TabularConfig(alpha=0.1, gamma=0.95, planning_steps=planning_steps, initial_q=1.0)
    optimal = shortest_path_length(MAZE)

    def reached(learner: TabularLearner) -> bool:
        return greedy_path_length(MAZE, learner.q[0]) == optimal

    run = train_tabular("maze/dyna_maze-v0", config, 40_000, seed=seed, until=reached)
    assert greedy_path_length(MAZE, run.learner.q[0]) == optimal, (planning_steps, seed)
    return run.env_steps


@pytest.mark.slow
def test_dyna_q_reaches_the_optimal_path_in_far_fewer_real_steps():
    seeds = range(5)
    q_learning = sum(_steps_to_optimal(0, seed) for seed in seeds)
    dyna = sum(_steps_to_optimal(50, seed) for seed in seeds)
    assert q_learning >= 5 * dyna, (q_learning, dyna)


def test_marl_train_and_eval_run_qlearning_through_the_shared_loop(tmp_path):
    """`marl train qlearning` goes through the same Trainer as every learner; its checkpoint
    holds the Q-tables and `marl eval` replays them greedily."""
    from marl.run.evaluate import evaluate
    from marl.run.loop import RunSpec, train

    spec = RunSpec(
        "qlearning", "gym/FrozenLake-v1", steps=20_000, env_kwargs={"is_slippery": False}
    )
    config = {"alpha": 0.5, "gamma": 0.95, "epsilon_start": 1.0, "epsilon_end": 0.05,
              "epsilon_anneal_steps": 10_000, "num_envs": 4, "rollout_steps": 25}  # fmt: skip
    run = train(spec, config, out=tmp_path / "q", progress=False)
    assert run.learner.env_steps >= 20_000 and run.learner.q[0].shape == (16, 4)
    result = evaluate(tmp_path / "q", episodes=10, seed=0)
    assert result.team_returns["agent"][0] == 1.0  # every greedy episode reaches the goal


def test_acting_copies_take_the_learners_tables():
    env = marl.make_vec("maze/dyna_maze-v0", 1)
    learner = _tabular(env, TabularConfig(epsilon_anneal_steps=100, epsilon_start=1.0))
    learner.q[0][:] = 3.0
    learner.env_steps = 50
    copy = _tabular(env, TabularConfig(epsilon_anneal_steps=100, epsilon_start=1.0), seed=5)
    copy.load_weights(learner.weights())
    assert np.array_equal(copy.q[0], learner.q[0]) and copy.epsilon() == learner.epsilon()
