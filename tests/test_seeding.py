"""Seeding: every stream is a SeedSequence child of the run's seed; no global seed is set."""

import numpy as np
import pytest
import torch

from marl.algorithms import learner_module, make_config
from marl.core.seeding import child_seed, seeded_init
from marl.envs import vec_spec


def test_child_seed_is_the_spawned_child():
    root = np.random.SeedSequence(1234)
    third = root.spawn(4)[2]
    assert child_seed(1234, 2) == int(third.generate_state(1)[0]) & 0x7FFFFFFF
    assert child_seed(1234, 2, 5) == int(third.spawn(6)[5].generate_state(1)[0]) & 0x7FFFFFFF
    assert len({child_seed(0, i) for i in range(100)}) == 100


@pytest.mark.parametrize(
    ("algo", "env_id"),
    [
        ("mappo", "mpe/simple_spread-v3"),
        ("trpo", "gym/CartPole-v1"),
        ("a2c", "gym/CartPole-v1"),
        ("impala", "gym/CartPole-v1"),
        ("a3c", "gym/CartPole-v1"),
        ("reinforce", "gym/CartPole-v1"),
        ("qmix", "matrix/two_step-v0"),
        ("rainbow", "gym/CartPole-v1"),
        ("sac", "gym/Pendulum-v1"),
        ("maddpg", "mpe/simple_tag-v3"),
        ("qlearning", "maze/dyna_maze-v0"),
        ("alphazero", "classic/tic_tac_toe-v0"),
    ],
)
def test_building_a_learner_leaves_global_rng_state_alone(algo, env_id):
    spec = vec_spec(env_id)
    torch_state, numpy_state = torch.get_rng_state(), np.random.get_state()[1].copy()
    initial = torch.initial_seed()
    first = learner_module(algo).make_learner(spec, make_config(algo), 7)
    assert torch.initial_seed() == initial
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert np.array_equal(np.random.get_state()[1], numpy_state)
    same = learner_module(algo).make_learner(spec, make_config(algo), 7)
    other = learner_module(algo).make_learner(spec, make_config(algo), 8)
    assert _tensors(first.weights()) == _tensors(same.weights())  # same seed, same weights
    if algo != "qlearning":  # a Q-table starts at initial_q whatever the seed
        assert _tensors(first.weights()) != _tensors(other.weights())


def _tensors(weights) -> list:
    """Every tensor in a `weights()` dict, as nested lists (comparable with ==)."""
    if isinstance(weights, torch.Tensor):
        return [weights.tolist()]
    if isinstance(weights, dict):
        return [x for key in sorted(weights) for x in _tensors(weights[key])]
    if isinstance(weights, list):
        return [x for item in weights for x in _tensors(item)]
    return []


def test_a_generator_state_from_another_device_reseeds_with_a_warning():
    """A CUDA generator's state (16 bytes) cannot be set on a CPU generator (5,056): the
    generator is seeded from the state's bytes (the same bytes, the same stream)."""
    import torch

    from marl.core.seeding import restore_generator, torch_generator

    saved = torch_generator(9).get_state()
    same = torch_generator(1)
    restore_generator(same, saved)  # a CPU state: set as is
    assert torch.equal(torch.rand(4, generator=same), torch.rand(4, generator=torch_generator(9)))
    cuda_state = torch.arange(16, dtype=torch.uint8)
    draws = []
    for seed in (0, 5):
        generator = torch_generator(seed)
        with pytest.warns(UserWarning, match="saved on another device"):
            restore_generator(generator, cuda_state)
        draws.append(torch.rand(4, generator=generator))
    assert torch.equal(draws[0], draws[1])
    with pytest.raises(RuntimeError):  # the CPU size but not a state: damaged, not foreign
        restore_generator(torch_generator(0), torch.zeros_like(saved))


def test_seeded_init_restores_the_global_generator():
    before = torch.get_rng_state()
    with seeded_init(3):
        inside = torch.rand(2)
    with seeded_init(3):
        assert torch.equal(torch.rand(2), inside)
    assert torch.equal(torch.get_rng_state(), before)
