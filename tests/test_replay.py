"""Replay for the value learner: sum tree, prioritized buffer, segment building."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from marl.envs.types import VecStep
from marl.learners.value.collect import SequenceBuilder, segment_to_transitions
from marl.learners.value.replay import ReplayBuffer, SumTree, transition_fields


def test_sum_tree_total_find_and_update():
    tree = SumTree(5)  # not a power of two: 8 leaves inside, 3 unused
    tree.update(np.arange(5), np.array([1.0, 2.0, 3.0, 0.0, 4.0]))
    assert tree.total == 10.0
    values = np.array([0.0, 0.999, 1.0, 2.99, 3.0, 5.99, 6.0, 9.99])
    assert tree.find(values).tolist() == [0, 0, 1, 1, 2, 2, 4, 4]  # item 3 (priority 0) never
    tree.update(np.array([1, 3]), np.array([0.5, 1.5]))
    assert tree.total == 10.0 and tree.get(np.array([1, 3])).tolist() == [0.5, 1.5]
    assert tree.find(np.array([1.4, 1.6, 4.6])).tolist() == [1, 2, 3]


def test_sum_tree_sampling_frequencies_match_priorities():
    tree = SumTree(6)
    priorities = np.array([1.0, 0.0, 5.0, 2.0, 0.5, 1.5])
    tree.update(np.arange(6), priorities)
    draws = tree.sample(200_000, np.random.default_rng(0))
    freq = np.bincount(draws, minlength=6) / len(draws)
    np.testing.assert_allclose(freq, priorities / priorities.sum(), atol=0.005)
    assert freq[1] == 0.0
    again = tree.sample(1000, np.random.default_rng(0))
    assert np.array_equal(again, draws[:1000])  # same seed, same draws


def test_sum_tree_refuses_bad_input():
    tree = SumTree(3)
    with pytest.raises(IndexError, match=r"\[0, 3\)"):
        tree.update(np.array([3]), np.array([1.0]))
    with pytest.raises(ValueError, match=">= 0"):
        tree.update(np.array([0]), np.array([-1.0]))
    with pytest.raises(ValueError, match="all 0"):
        tree.sample(1, np.random.default_rng(0))


def _items(count: int, start: int = 0) -> dict[str, np.ndarray]:
    fields = transition_fields(n_agents=1, obs_dim=2, state_dim=2, num_actions=3)
    items = {k: np.zeros((count, *shape)) for k, (shape, _) in fields.items()}
    items["returns"][:, 0] = np.arange(start, start + count)
    return items


def _buffer(prioritized: bool, capacity: int = 4, alpha: float = 1.0) -> ReplayBuffer:
    fields = transition_fields(n_agents=1, obs_dim=2, state_dim=2, num_actions=3)
    return ReplayBuffer(fields, capacity, prioritized=prioritized, alpha=alpha, eps=0.0)


def test_replay_ring_overwrites_oldest_and_samples_uniformly():
    buffer = _buffer(prioritized=False)
    buffer.add(_items(3))
    slots = buffer.add(_items(3, start=3))  # wraps: items 3, 4, 5 go to slots 3, 0, 1
    assert slots.tolist() == [3, 0, 1] and len(buffer) == 4
    assert buffer.data["returns"][:, 0].tolist() == [4.0, 5.0, 2.0, 3.0]
    indices, weights, batch = buffer.sample(40_000, np.random.default_rng(1))
    assert torch.equal(weights, torch.ones(40_000))
    np.testing.assert_allclose(np.bincount(indices) / 40_000, 0.25, atol=0.01)
    assert torch.equal(batch["returns"][:, 0], buffer.data["returns"][indices, 0])


def test_prioritized_replay_probabilities_and_importance_weights():
    buffer = _buffer(prioritized=True, alpha=0.5)
    slots = buffer.add(_items(4))
    assert buffer.tree.get(slots).tolist() == [1.0] * 4  # new items get the max priority
    buffer.update_priorities(slots, np.array([1.0, 4.0, 9.0, 16.0]))  # p^0.5 = 1, 2, 3, 4
    indices, weights, _ = buffer.sample(50_000, np.random.default_rng(2), beta=1.0)
    np.testing.assert_allclose(np.bincount(indices) / 50_000, [0.1, 0.2, 0.3, 0.4], atol=0.01)
    # w_i = (N P_i)^-beta / max_j w_j: with beta 1 that is P_min / P_i over the sampled batch
    expected = 0.1 / (np.array([1.0, 2.0, 3.0, 4.0])[indices] / 10)
    np.testing.assert_allclose(weights.numpy(), expected, rtol=1e-6)
    assert buffer.max_priority == 16.0
    assert buffer.add(_items(1)).tolist() == [0]
    assert buffer.tree.get(np.array([0]))[0] == 4.0  # max priority 16, alpha 0.5


def test_replay_state_dict_round_trips_through_weights_only_load():
    buffer = _buffer(prioritized=True, capacity=8)
    buffer.add(_items(5))
    buffer.update_priorities(np.array([0, 2]), np.array([3.0, 0.5]))
    data = io.BytesIO()
    torch.save(buffer.state_dict(), data)
    data.seek(0)
    state = torch.load(data, weights_only=True)
    restored = _buffer(prioritized=True, capacity=8)
    restored.load_state_dict(state)
    assert (restored.pos, restored.size, restored.max_priority) == (5, 5, 3.0)
    for key in buffer.data:
        assert torch.equal(restored.data[key], buffer.data[key])
    np.testing.assert_array_equal(restored.tree.tree, buffer.tree.tree)
    a = buffer.sample(16, np.random.default_rng(3))[0]
    b = restored.sample(16, np.random.default_rng(3))[0]
    assert np.array_equal(a, b)
    with pytest.raises(ValueError, match="capacity is 2"):
        _buffer(prioritized=True, capacity=2).load_state_dict(state)


def _vec_step(obs, reward, terminated=(False, False), truncated=(False, False), final=None):
    obs = np.asarray(obs, np.float32).reshape(2, 1, 1)
    final_obs = obs if final is None else np.asarray(final, np.float32).reshape(2, 1, 1)
    return VecStep(
        obs=obs,
        state=obs[:, 0],
        action_mask=np.array([[[True, False]]] * 2),
        reward=np.asarray(reward, np.float32).reshape(2, 1),
        alive=np.ones((2, 1), bool),
        terminated=np.array(terminated),
        truncated=np.array(truncated),
        final_obs=final_obs,
        final_state=final_obs[:, 0],
    )


def test_sequence_builder_cuts_episodes_and_segments():
    builder = SequenceBuilder(
        num_envs=2, horizon=3, n_agents=1, obs_dim=1, state_dim=1, num_actions=2
    )
    builder.begin(_vec_step([0, 10], [0, 0]))
    assert builder.record(np.array([[1], [0]]), _vec_step([1, 11], [1, 5])) == []
    # env 0 terminates: obs 100 starts its next episode, 2 was the episode's last obs
    done = builder.record(
        np.array([[0], [1]]), _vec_step([100, 12], [2, 6], (True, False), final=[2, 12])
    )
    assert len(done) == 1
    seg = done[0]
    assert seg["obs"][:, 0, 0].tolist() == [0, 1, 2, 0]
    assert seg["filled"].tolist() == [True, True, False]
    assert seg["terminated"].tolist() == [False, True, False]
    assert seg["prev_action"][:, 0].tolist() == [-1, 1, 0, 0]
    assert seg["action_mask"][2, 0].tolist() == [True, True]  # final obs: no mask, all legal
    # env 1 reaches the horizon: its episode goes on in a segment that starts at obs 13
    done = builder.record(np.array([[1], [1]]), _vec_step([101, 13], [3, 7]))
    assert [s["obs"][:, 0, 0].tolist() for s in done] == [[10, 11, 12, 13]]
    assert done[0]["filled"].all() and not done[0]["terminated"].any()
    assert builder.rows["obs"][1, 0, 0, 0] == 13 and builder.rows["prev_action"][1, 0, 0] == 1
    assert builder.rows["obs"][0, :2, 0, 0].tolist() == [100, 101]
    assert builder.rows["prev_action"][0, :2, 0].tolist() == [-1, 1]


def test_segment_to_transitions_bootstraps_n_steps_ahead():
    builder = SequenceBuilder(
        num_envs=2, horizon=4, n_agents=1, obs_dim=1, state_dim=1, num_actions=2
    )
    builder.begin(_vec_step([0, 0], [0, 0]))
    for t in range(1, 3):
        builder.record(np.zeros((2, 1), int), _vec_step([t, t], [t, t]))
    (seg,) = builder.record(
        np.zeros((2, 1), int), _vec_step([0, 3], [3, 3], truncated=(True, False), final=[3, 3])
    )
    out = segment_to_transitions(seg, gamma=0.5, n=2)
    assert out["returns"][:, 0].tolist() == [1 + 0.5 * 2, 2 + 0.5 * 3, 3]
    assert out["discount"].tolist() == [0.25, 0.25, 0.5]  # truncated: still bootstraps
    assert out["next_obs"][:, 0, 0].tolist() == [2, 3, 3]
