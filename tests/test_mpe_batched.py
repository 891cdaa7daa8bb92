"""The batched MPE against mpe2 itself, plus its VecEnv contract (seeding, autoreset, errors)."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch

from marl.envs.mpe import BATCHED_IDS, make_batched, mpe2_module
from marl.envs.mpe.mpe2_bridge import import_mpe2_state
from marl.envs.mpe.world import Physics, WorldState, make_spec

torch.set_num_threads(1)
STEPS = 1000
COLLIDING = {"mpe/simple_spread-v3", "mpe/simple_tag-v3", "mpe/simple_push-v3"}


def mpe2_parallel(env_id: str, **kwargs):
    """The mpe2 parallel env an id names."""
    return importlib.import_module(f"mpe2.{mpe2_module(env_id)}").parallel_env(**kwargs)


def random_actions(env, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """One joint action as our [N] / [N, D] array and as mpe2's dict."""
    if env.continuous_actions:
        act = rng.random((len(env.agents), env.action_dim), dtype=np.float32)
        sizes = [space.shape[0] for space in env.action_spaces]
        return act, {a: act[i, : sizes[i]] for i, a in enumerate(env.agents)}
    act = np.array([rng.integers(space.n) for space in env.action_spaces])
    return act, {a: int(act[i]) for i, a in enumerate(env.agents)}


def assert_obs_match(env, ours: torch.Tensor, ref: dict, where: str) -> None:
    """Each agent's unpadded observation equals mpe2's to 1e-5; padding is zero."""
    expected = np.zeros(ours.shape[1:])
    for i, agent in enumerate(env.agents):
        expected[i, : len(ref[agent])] = ref[agent]
    got = ours[0].numpy()
    if np.abs(got - expected).max() > 1e-5:  # a cheap test first; the slow one explains
        np.testing.assert_allclose(got, expected, atol=1e-5, err_msg=where)


def mirror_respawns(env, ref) -> None:
    """Make our treasure respawns take mpe2's draws (mpe2 draws them from its own RNG)."""
    world = ref.unwrapped.world

    def draw(generator: torch.Generator, num_envs: int) -> tuple[torch.Tensor, torch.Tensor]:
        pos = np.stack([lm.state.p_pos for lm in world.landmarks])
        kinds = [[lm.type for lm in world.landmarks]]
        return torch.tensor(pos, dtype=torch.float64)[None], torch.tensor(kinds)

    env.scenario.draw_treasures = draw


def run_lockstep(env_id: str, continuous: bool, **kwargs) -> dict[str, int]:
    """Step mpe2 and ours side by side for STEPS random joint actions; count events."""
    module = mpe2_module(env_id)
    ref = mpe2_parallel(env_id, continuous_actions=continuous, **kwargs)
    env = make_batched(
        env_id, 1, seed=0, dtype=torch.float64, continuous_actions=continuous, **kwargs
    )
    if module == "collect_treasure_v1":
        mirror_respawns(env, ref)
    rng = np.random.default_rng(0)
    obs, _ = ref.reset(seed=0)
    start = env.set_state(import_mpe2_state(ref, module))
    assert_obs_match(env, start.obs, obs, "reset")
    np.testing.assert_allclose(start.state[0].numpy(), ref.state(), atol=1e-5)
    events = {"episodes": 0, "terminated": 0, "contacts": 0, "pickups": 0}
    first = env.agents[0]
    for t in range(STEPS):
        act, ref_act = random_actions(env, rng)
        obs, rew, term, trunc, _ = ref.step(ref_act)
        out = env.step(torch.as_tensor(act)[None])
        assert_obs_match(env, out.final_obs, obs, f"step {t}")
        expected = np.array([rew[a] for a in env.agents])
        assert np.abs(out.reward[0].numpy() - expected).max() < 1e-5, (t, out.reward, expected)
        ref_state = np.concatenate([obs[a] for a in env.agents])  # what mpe2's state() is
        assert np.abs(out.final_state[0].numpy() - ref_state).max() < 1e-5, t
        assert (bool(out.terminated[0]), bool(out.truncated[0])) == (term[first], trunc[first])
        if module == "collect_treasure_v1":
            events["pickups"] += int(env.world_state.goals[0, -1])
        if env_id in COLLIDING:
            pushed = env.physics.contact_forces(env.world_state.pos).abs().max() > 1e-3
            events["contacts"] += int(pushed)
        if term[first] or trunc[first]:
            events["episodes"] += 1
            events["terminated"] += int(term[first])
            obs, _ = ref.reset()
            assert_obs_match(env, env.set_state(import_mpe2_state(ref, module)).obs, obs, "reset")
    return events


@pytest.mark.parametrize("continuous", [False, True], ids=["discrete", "continuous"])
@pytest.mark.parametrize("env_id", BATCHED_IDS)
def test_matches_mpe2_step_for_step(env_id: str, continuous: bool) -> None:
    events = run_lockstep(env_id, continuous)
    assert events["episodes"] == STEPS // 25
    if env_id in COLLIDING:
        assert events["contacts"] > 0, "no contact force was ever exercised"
    if env_id == "mpe/collect_treasure-v1":
        assert events["pickups"] > 0, "no treasure was ever picked up"


@pytest.mark.parametrize(
    ("env_id", "kwargs"),
    [
        ("mpe/simple_spread-v3", {"N": 4, "local_ratio": 0.3, "num_agent_neighbors": 2}),
        ("mpe/simple_spread-v3", {"N": 2, "num_agent_neighbors": 3, "num_landmark_neighbors": 1}),
        ("mpe/simple_tag-v3", {"num_good": 2, "num_adversaries": 2, "num_agent_neighbors": 2}),
        (
            "mpe/simple_adversary-v3",
            {"N": 3, "num_agent_neighbors": 1, "num_landmark_neighbors": 2},
        ),
        ("mpe/simple_world_comm-v3", {"num_good": 3, "num_adversaries": 2, "num_forests": 3}),
        ("mpe/simple_formation-v1", {"N": 5, "max_cycles": 40}),
    ],
)
def test_matches_mpe2_with_scenario_kwargs(env_id: str, kwargs: dict) -> None:
    events = run_lockstep(env_id, False, **kwargs)
    assert events["episodes"] == STEPS // kwargs.get("max_cycles", 25)


def test_matches_mpe2_when_episodes_terminate_early() -> None:
    events = run_lockstep("mpe/simple_tag-v3", False, num_adversaries=4, terminate_on_success=True)
    assert events["terminated"] > 0, "no episode ended by success; the test checks nothing"


@pytest.mark.parametrize("env_id", BATCHED_IDS)
def test_spaces_and_agents_equal_mpe2s(env_id: str) -> None:
    for continuous in (False, True):
        ref = mpe2_parallel(env_id, continuous_actions=continuous)
        ref.reset(seed=0)
        env = make_batched(env_id, 2, seed=0, continuous_actions=continuous)
        assert env.agents == ref.possible_agents
        assert env.observation_spaces == [ref.observation_space(a) for a in env.agents]
        assert env.action_spaces == [ref.action_space(a) for a in env.agents]
        assert env.state_dim == ref.state().shape[0]


def constant_treasures(generator: torch.Generator, num_envs: int) -> tuple[torch.Tensor, ...]:
    """Treasures that always respawn at (0.5, 0.5) with type 1."""
    pos = torch.full((num_envs, 6, 2), 0.5, dtype=torch.float64)
    return pos, torch.ones(num_envs, 6, dtype=torch.long)


def test_batched_rows_evolve_like_separate_worlds() -> None:
    for env_id in BATCHED_IDS:
        batch = make_batched(env_id, 5, seed=3, dtype=torch.float64, max_cycles=1000)
        singles = []
        for b in range(5):
            single = make_batched(env_id, 1, seed=0, dtype=torch.float64, max_cycles=1000)
            single.set_state(WorldState(*(x[b : b + 1] for x in batch.world_state)))
            singles.append(single)
        for env in (batch, *singles):  # respawns draw per batch: make them a constant
            if env_id == "mpe/collect_treasure-v1":
                env.scenario.draw_treasures = constant_treasures
        gen = torch.Generator().manual_seed(1)
        for _ in range(30):
            act = torch.stack(
                [torch.randint(s.n, (5,), generator=gen) for s in batch.action_spaces], 1
            )
            out = batch.step(act)
            for b, single in enumerate(singles):
                one = single.step(act[b : b + 1])
                torch.testing.assert_close(out.obs[b : b + 1], one.obs, msg=env_id)
                torch.testing.assert_close(out.reward[b : b + 1], one.reward, msg=env_id)


def test_one_push_from_rest_by_hand() -> None:
    spec = make_spec(["agent_0"], [], [], collide=False, silent=True)
    physics = Physics(spec, torch.device("cpu"), torch.float64)
    zero = torch.zeros(1, 1, 2, dtype=torch.float64)
    s = WorldState(zero, zero, zero[..., :0], torch.zeros(1, 0, dtype=torch.long), zero[:, :0])
    right = torch.tensor([[2]])
    for _ in range(2):
        s = physics.step(s, *physics.discrete_controls(right))
    # step 1: vel = 5 * dt = 0.5, pos stays 0; step 2: pos = 0.05, vel = 0.5 * 0.75 + 0.5
    torch.testing.assert_close(s.pos, torch.tensor([[[0.05, 0.0]]], dtype=torch.float64))
    torch.testing.assert_close(s.vel, torch.tensor([[[0.875, 0.0]]], dtype=torch.float64))


def test_contact_force_by_hand() -> None:
    spec = make_spec(["agent_0", "agent_1"], [], [], size=0.1, silent=True)
    physics = Physics(spec, torch.device("cpu"), torch.float64)
    pos = torch.tensor([[[0.0, 0.0], [0.15, 0.0]]], dtype=torch.float64)
    force = physics.contact_forces(pos)
    # overlap 0.05: penetration = 1e-3 * log(1 + exp(50)) ~ 0.05, force = 100 * 0.05 = 5
    magnitude = 100 * np.logaddexp(0, 0.05 / 1e-3) * 1e-3
    expected = torch.tensor([[[-magnitude, 0.0], [magnitude, 0.0]]], dtype=torch.float64)
    torch.testing.assert_close(force, expected)


def test_same_seed_same_tensors_and_other_seed_differs() -> None:
    def rollout(seed: int) -> list[torch.Tensor]:
        env = make_batched("mpe/simple_tag-v3", 8, seed=seed, max_cycles=10)
        gen = torch.Generator().manual_seed(0)
        outs = [env.reset().obs]
        for _ in range(25):
            outs.append(env.step(torch.randint(5, (8, 4), generator=gen)).obs)
        return outs

    a, b, c = rollout(7), rollout(7), rollout(8)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a[0], c[0])
    env = make_batched("mpe/simple_spread-v3", 4, seed=1)
    assert torch.equal(env.reset(seed=5).obs, env.reset(seed=5).obs)


def test_autoreset_keeps_final_obs_and_restarts_episode() -> None:
    env = make_batched("mpe/simple_spread-v3", 3, seed=0, max_cycles=4)
    env.reset()
    right = torch.full((3, 3), 2)
    for t in range(1, 9):
        out = env.step(right)
        ended = t % 4 == 0
        assert out.truncated.tolist() == [ended] * 3 and not out.terminated.any()
        assert out.done.tolist() == [ended] * 3
        assert torch.equal(out.final_obs, out.obs) != ended
        if ended:
            assert (out.final_obs[..., :2].abs().sum(-1) > 0).all()  # moving at the end
            assert (out.obs[..., :2] == 0).all()  # the new episode starts at rest
            assert torch.equal(out.final_state, out.final_obs.flatten(1))
            assert torch.equal(out.state, out.obs.flatten(1))


def test_shapes_padding_and_action_mask() -> None:
    env = make_batched("mpe/simple_speaker_listener-v4", 6, seed=0)
    out = env.step(torch.tensor([[2, 4]] * 6))
    assert (env.obs_dim, env.state_dim, env.num_actions, env.action_dim) == (11, 14, 5, 0)
    assert out.obs.shape == (6, 2, 11) and out.state.shape == (6, 14)
    assert out.obs.dtype == torch.float32 and out.reward.shape == (6, 2)
    assert out.action_mask[0].tolist() == [[True] * 3 + [False] * 2, [True] * 5]
    assert out.alive.all() and out.alive.shape == (6, 2)
    assert not out.obs[:, 0, 3:].any()
    assert env.teams == {"speaker": [0], "listener": [1]}
    cont = make_batched("mpe/simple_world_comm-v3", 2, continuous_actions=True)
    assert (cont.num_actions, cont.action_dim) == (0, 9)
    assert cont.teams == {"leadadversary": [0], "adversary": [1, 2, 3], "agent": [4, 5]}
    assert cont.step(torch.rand(2, 6, 9)).obs.shape == (2, 6, 34)


def test_unknown_id_names_the_closest_ids() -> None:
    with pytest.raises(ValueError, match="mpe/simple_spread-v3"):
        make_batched("mpe/simple_sprad-v3", 2)
    with pytest.raises(ValueError, match="num_good"):
        make_batched("mpe/simple_tag-v3", 2, num_god=2)
    with pytest.raises(ValueError, match="curriculum"):
        make_batched("mpe/simple_spread-v3", 2, curriculum=True)


def test_bad_actions_are_refused_with_what_was_expected() -> None:
    env = make_batched("mpe/simple_speaker_listener-v4", 2)
    with pytest.raises(
        ValueError, match=r"action 4 of speaker_0 in env 1 is outside Discrete\(3\)"
    ):
        env.step(torch.tensor([[0, 0], [4, 0]]))
    with pytest.raises(ValueError, match=r"shape \(2, 2\)"):
        env.step(torch.zeros(2, 3, dtype=torch.long))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_steps_like_cpu() -> None:
    envs = [
        make_batched("mpe/simple_tag-v3", 64, device=d, dtype=torch.float64, max_cycles=100)
        for d in ("cpu", "cuda")
    ]
    envs[1].set_state(envs[0].world_state)
    gen = torch.Generator().manual_seed(0)
    for _ in range(40):
        act = torch.randint(5, (64, 4), generator=gen)
        cpu, gpu = (env.step(act) for env in envs)
        torch.testing.assert_close(gpu.final_obs.cpu(), cpu.final_obs)
        torch.testing.assert_close(gpu.reward.cpu(), cpu.reward)


def test_treasure_pickup_delivery_and_respawn_by_hand() -> None:
    env = make_batched(
        "mpe/collect_treasure-v1",
        1,
        dtype=torch.float64,
        num_collectors=2,
        num_deposits=2,
        num_treasures=2,
    )
    scenario = env.scenario
    far = [[5.0, 5.0]]
    # collectors 0 and 1 both touch treasure 0 (type 1); collector 1 already holds type 0
    # and touches deposit 0; treasure 1 is gone and must respawn.
    pos = torch.tensor(
        [[[0.0, 0.0], [0.05, 0.0], [0.1, 0.05], *far, [0.02, 0.0], [-999.0, -999.0]]],
        dtype=torch.float64,
    )
    goals = torch.tensor([[-1, 0, 1, 0, 1, 0, 0]])  # holding | alive | type | events
    zero = torch.zeros(1, 4, 2, dtype=torch.float64)
    s = WorldState(pos, zero, zero, goals, zero[:, :0])
    fresh = torch.tensor([[[0.3, 0.3], [0.4, -0.4]]], dtype=torch.float64), torch.tensor([[0, 1]])
    scenario.draw_treasures = lambda generator, num_envs: fresh
    after = scenario.post_step(s, torch.Generator())
    # collector 0 takes treasure 0 (collector 1 is busy carrying); collector 1 delivers
    assert after.goals.tolist() == [[1, -1, 0, 1, 1, 1, 2]]
    assert after.pos[0, 4].tolist() == [-999.0, -999.0] and after.pos[0, 5].tolist() == [0.4, -0.4]
    reward = scenario.reward(after)
    # everyone gets +10 (two events); collector 0 touches collector 1 (-5) and holds
    # type 1: -0.1 * its distance to deposit 1 (at (5, 5))
    expected0 = 10 - 5 - 0.1 * np.hypot(5.0, 5.0)
    assert reward[0, 0].item() == pytest.approx(expected0)


def test_nan_actions_are_refused_unless_the_check_is_off():
    """mpe2 raises on a NaN action; the batched env does too by default (marl.make_vec),
    naming the env, the agent and the value, and learners' workers turn the check off."""
    import marl

    vec = marl.make_vec(
        "mpe/simple_spread-v3", 3, seed=0, backend="batched", continuous_actions=True
    )
    actions = np.zeros((3, 3, vec.action_dim), np.float32)
    actions[1, 2, 1] = np.nan  # a force component (component 0 is the no-op)
    with pytest.raises(ValueError, match=r"agent_2 in env 1 is not finite.*Box\(0.0, 1.0"):
        vec.step(actions)
    fast = marl.make_vec("mpe/simple_spread-v3", 3, seed=0, backend="batched",
                         continuous_actions=True, check_actions=False)  # fmt: skip
    assert np.isnan(np.asarray(fast.step(actions).obs)).any()  # unchecked: NaN flows through


@pytest.mark.parametrize("env_id", ["mpe/simple_spread-v3", "mpe/collect_treasure-v1"])
def test_the_compiled_backend_steps_like_the_eager_one(env_id: str) -> None:
    """backend="compiled" (the step through torch.compile: one graph, or two around
    collect_treasure's eager post-step) gives the eager step's observations, rewards and
    episode ends to float32 rounding, across autoresets."""
    from marl.envs.vector import make_vec

    eager, compiled = (
        make_vec(env_id, 4, seed=3, backend=b, max_cycles=10) for b in ("batched", "compiled")
    )
    gen = torch.Generator().manual_seed(0)
    n, size = len(eager.agents), int(eager.action_sizes.max())
    for _ in range(25):
        act = torch.randint(size, (4, n), generator=gen) % eager.action_sizes
        a, b = eager.step(act), compiled.step(act)
        for field in ("obs", "state", "reward", "final_obs"):
            torch.testing.assert_close(getattr(b, field), getattr(a, field))
        assert torch.equal(a.terminated, b.terminated) and torch.equal(a.truncated, b.truncated)


def test_building_an_mpe_env_does_not_import_torch_dynamo() -> None:
    """torch._dynamo took 2 s to import on a 2-core AMD host; the batched env names its error
    class only when a compiled step fails, so a process that only steps or evaluates envs
    (a `--seeds` parent, `marl eval`) does not pay for it."""
    import subprocess
    import sys

    code = (
        "import sys, marl.cli.train, marl.run.loop\n"
        "from marl.envs.mpe import make_batched\n"
        "make_batched('mpe/simple_spread-v3', 2, seed=0).reset(seed=0)\n"
        "assert 'torch._dynamo' not in sys.modules, 'torch._dynamo was imported'"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]


def test_a_compiled_step_that_cannot_be_built_names_the_eager_backend(monkeypatch) -> None:
    """No working C++ compiler (say): one clear error naming backend=batched, not
    inductor's traceback."""
    from torch._dynamo.exc import BackendCompilerFailed

    from marl.envs.mpe.env import CompileFailedError

    env = make_batched("mpe/simple_spread-v3", 2, seed=0, compile=True)

    def fail(*args):
        cause = RuntimeError("InvalidCxxCompiler: No working C++ compiler found")
        raise BackendCompilerFailed(None, cause, None)

    monkeypatch.setattr(env, "_transition", fail)
    with pytest.raises(CompileFailedError, match="No working C.. compiler.*backend=batched"):
        env.step(torch.zeros(2, 3, dtype=torch.long))


def test_a_seed_blocks_resets_do_not_depend_on_the_other_blocks_episode_ends():
    """With episodes ending early (simple_tag's terminate_on_success), block k of a K-seed
    env stays the env of a run seeded seed[k]: another block's ends draw nothing from it."""
    from marl.envs.mpe import make_batched

    kw = dict(terminate_on_success=True, num_adversaries=4, max_cycles=25)
    env_id = "mpe/simple_tag-v3"
    alone = [make_batched(env_id, 3, seed=s, **kw) for s in (5, 7)]
    both = make_batched(env_id, 6, seed=[5, 7], **kw)
    gen = torch.Generator().manual_seed(0)
    ends = torch.zeros(2)
    for _ in range(300):
        act = torch.randint(5, (6, 5), generator=gen)
        parts = [env.step(a) for env, a in zip(alone, act.split(3))]
        step = both.step(act)
        assert torch.equal(torch.cat([p.obs for p in parts]), step.obs)
        ends += torch.stack([p.terminated.sum() for p in parts])
    assert (ends > 0).all()  # both blocks ended episodes early, at different steps


def test_the_batched_backend_checks_kwarg_values_as_mpe2s_does():
    import marl

    for kwargs, says in [({"N": 0}, "N=0: expected at least 1"),
                         ({"N": 2.5}, "N=2.5: expected an integer"),
                         ({"continuous_actions": "yes"}, "expected True or False")]:  # fmt: skip
        for backend in ("batched", "auto"):
            with pytest.raises(ValueError, match=says):
                marl.make_vec("mpe/simple_spread-v3", 2, seed=0, backend=backend, **kwargs)
    vec = marl.make_vec("mpe/simple_spread-v3", 2, seed=np.int64(0), backend="batched")
    with pytest.raises(ValueError, match="expected integer actions"):
        vec.step(torch.ones(2, 3, dtype=torch.bool))
