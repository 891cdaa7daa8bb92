"""`--seeds K`: K PPO-family runs as one batched computation equal K separate runs."""

import dataclasses
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import assert_resumes_exactly, cli

from marl.algorithms import local_trainer, make_config, seeds_trainer
from marl.core.config import ConfigError
from marl.core.learner import interval95
from marl.envs.mpe import make_batched
from marl.envs.vector import make_vec, vec_spec
from marl.learners.ppo import PPOLearner, SeedsLearner
from marl.learners.ppo import seeds as seeds_mod
from marl.run.loop import RunSpec, default_out, resume, seed_procs, train
from marl.run.metrics import read_metrics, seed_band
from marl.run.seed_procs import SeedProcessError, SeedProcesses, merge_stats, seed_blocks
from marl.run.seed_runs import UNALIGNED, RunsTrainer

SPREAD = "mpe/simple_spread-v3"
SMALL = {"num_envs": 2, "rollout_len": 32, "minibatches": 2, "epochs": 2, "total_steps": 4096}


def small(algo: str, **changes) -> object:
    return make_config(algo, {**SMALL, "backend": "batched", **changes})


def test_seed_blocks_of_the_batched_mpe_are_separate_envs():
    """K seeds split the worlds into K blocks, each the env a run of its own seed steps."""
    a, b = make_batched(SPREAD, 3, seed=5), make_batched(SPREAD, 3, seed=7)
    both = make_batched(SPREAD, 6, seed=[5, 7])
    actions = torch.randint(5, (60, 6, 3), generator=torch.Generator().manual_seed(0))
    for act in actions:  # 60 steps: two autoresets, each block from its own generator
        sa, sb, s = a.step(act[:3]), b.step(act[3:]), both.step(act)
        assert torch.equal(torch.cat([sa.obs, sb.obs]), s.obs)
        assert torch.equal(torch.cat([sa.reward, sb.reward]), s.reward)
    sa, sb, s = a.reset(seed=1), b.reset(seed=2), both.reset(seed=[1, 2])
    assert torch.equal(torch.cat([sa.state, sb.state]), s.state)
    with pytest.raises(ValueError, match="2 generators"):
        both.reset(seed=3)


def test_seed_blocks_of_the_sync_env_are_separate_envs():
    """The sync backend seeds env b of block k with seeds[k] + b, as run k's env would."""
    both = make_vec(SPREAD, 4, seed=[10, 20], backend="sync")
    a, b = make_vec(SPREAD, 2, seed=10, backend="sync"), make_vec(SPREAD, 2, seed=20)
    assert np.array_equal(
        np.concatenate([a.reset(10).obs, b.reset(20).obs]), both.reset([10, 20]).obs
    )


def test_each_seed_starts_with_the_weights_of_its_own_run():
    spec = vec_spec(SPREAD, backend="batched")
    config = small("mappo")
    stacked = SeedsLearner(spec, config, [3, 4])
    for k, seed in enumerate([3, 4]):
        single = PPOLearner(spec, config, seed)
        for name, p in single.net.named_parameters():
            assert torch.equal(stacked.net.params[name][k], p), name


VARIANTS = {
    "ippo": ("ippo", SPREAD, {}, {}),
    "mappo": ("mappo", SPREAD, {}, {}),
    "per-agent nets": ("ippo", SPREAD, {"share_parameters": False}, {}),
    "continuous": ("mappo", SPREAD, {}, {"continuous_actions": True}),
    "sync CartPole": ("ppo", "gym/CartPole-v1", {"backend": "sync"}, {}),
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_seeds_train_as_separate_runs(variant):
    """Seed k of a 2-seed run acts exactly as a separate run of seed k in its first
    iteration (same rollout: same episode returns), and after two updates its weights
    differ from the separate run's only in float32 rounding (the batched matmul sums in
    another order). Shared or per-agent networks, discrete or continuous actions, the
    batched MPE or a sync vector env."""
    algo, env_id, changes, env_kwargs = VARIANTS[variant]
    spec = vec_spec(env_id, backend=changes.get("backend", "batched"), **env_kwargs)
    config = small(algo, **changes)
    together = seeds_trainer(algo, spec, config, [0, 1])
    first = together.iterate()
    together.iterate()
    runs = together.learner.state_dict()["runs"]
    for k, seed in enumerate([0, 1]):
        alone = local_trainer(algo, spec, config, seed)
        team = next(iter(spec.teams))
        assert alone.iterate()[f"return/{team}"] == first[f"seed{k}/return/{team}"]
        alone.iterate()
        for name, weight in alone.learner.net.state_dict().items():
            assert torch.allclose(runs[k]["net"][name], weight, rtol=0, atol=1e-6), name
        assert runs[k]["env_steps"] == alone.learner.env_steps
    pair = (first[f"seed0/return/{team}"] + first[f"seed1/return/{team}"]) / 2
    assert first[f"return/{team}"] == pytest.approx(pair)


@pytest.mark.parametrize("variant", ["ippo", "mappo", "per-agent nets"])
def test_seeds_analytic_gradients_train_as_autograds(variant):
    """The stacked nets' closed-form gradient (per-seed reductions under vmap) trains each
    seed as autograd of the summed losses does, float32 rounding apart: a wrong gradient
    would move the weights by about the learning rate (2.5e-4 a step), not 1e-6."""
    algo, env_id, changes, env_kwargs = VARIANTS[variant]
    spec = vec_spec(env_id, backend="batched", **env_kwargs)
    runs = {}
    for gradients in ("analytic", "autograd"):
        trainer = seeds_trainer(algo, spec, small(algo, **changes, gradients=gradients), [0, 1])
        trainer.iterate()
        trainer.iterate()
        runs[gradients] = trainer.learner.state_dict()["runs"]
    for k in range(2):
        analytic, autograd = runs["analytic"][k]["net"], runs["autograd"][k]["net"]
        for name, initial in PPOLearner(spec, small(algo, **changes), k).net.named_parameters():
            assert not torch.equal(autograd[name], initial), name  # the update moved it
            assert torch.allclose(analytic[name], autograd[name], rtol=0, atol=1e-6), name


@pytest.mark.parametrize("variant", ["ippo", "mappo", "per-agent nets"])
def test_seeds_analytic_minibatch_gradient_is_autograds(variant, monkeypatch, tanh_form):
    """On one minibatch of a 3-seed run, with each seed's own dead agents and log-probs and
    values moved so the clips cut: every stacked gradient and every per-seed stat equals
    autograd's. (A per-seed factor, e.g. one seed's count used for all, would be missed by
    training alone: Adam and the norm clip cancel it.)"""
    algo, env_id, changes, env_kwargs = VARIANTS[variant]
    spec = vec_spec(env_id, backend="batched", **env_kwargs)
    trainer = seeds_trainer(algo, spec, small(algo, **changes), [0, 1, 2])
    caught, analytic = [], seeds_mod._analytic

    def catch(net, batch, cfg):
        caught.append((net, batch, cfg))
        return analytic(net, batch, cfg)

    monkeypatch.setattr(seeds_mod, "_analytic", catch)
    trainer.iterate()
    net, batch, cfg = caught[0]
    noise = torch.Generator().manual_seed(0)
    alive = torch.rand(batch.alive.shape, generator=noise) > 0.2
    batch = batch._replace(
        alive=alive,
        log_probs=batch.log_probs + torch.randn(batch.log_probs.shape, generator=noise),
        values=batch.values + torch.randn(batch.values.shape, generator=noise),
    )
    stats = seeds_mod._autograd(net, batch, cfg)
    expected = {name: p.grad.clone() for name, p in net.params.items()}
    got = analytic(net, batch, cfg)
    for name, p in net.params.items():
        assert torch.allclose(p.grad, expected[name], rtol=1e-5, atol=1e-8), name
    for key, value in stats.items():
        assert value.shape == (3,) and torch.allclose(got[key], value, rtol=1e-5), key
    assert (stats["clip_frac"] > 0.1).all()


def test_seeds_resume_exactly(tmp_path):
    spec = vec_spec(SPREAD, backend="batched")
    assert_resumes_exactly(lambda: seeds_trainer("mappo", spec, small("mappo"), [0, 1]), tmp_path)


def test_a_seeds_run_is_named_after_its_seeds():
    assert default_out(RunSpec("mappo", SPREAD, steps=1, seed=3, seeds=8)).name.endswith("-s3-10")
    assert default_out(RunSpec("mappo", SPREAD, steps=1, seed=3)).name.endswith("-s3")


def test_seeds_refused_where_they_cannot_train_in_step():
    for algo in UNALIGNED:
        with pytest.raises(ConfigError, match=f"{algo}'s iterations end on whole episodes"):
            RunSpec(algo, SPREAD, steps=100, seeds=2).validate()
    with pytest.raises(ConfigError, match="no batched --seeds learner"):
        seeds_trainer("a2c", vec_spec(SPREAD, backend="batched"), make_config("a2c"), [0, 1])
    with pytest.raises(ConfigError, match="local"):
        RunSpec("mappo", SPREAD, steps=100, seeds=2, backend="threads").validate()
    with pytest.raises(ConfigError, match="recurrent"):
        SeedsLearner(vec_spec(SPREAD, backend="batched"), small("ppo", recurrent=True), [0, 1])
    with pytest.raises(ConfigError, match=r"procs=3: expected 0 \(auto\) to seeds=2"):
        RunSpec("mappo", SPREAD, steps=100, seeds=2, procs=3).validate()
    cpu = torch.device("cpu")  # a batched block of one seed rounds differently: refused
    with pytest.raises(ConfigError, match=r"procs=2 puts a seed of ippo alone.*at most 1"):
        seed_procs(RunSpec("ippo", SPREAD, steps=100, seeds=3, procs=2), cpu, is_batched=True)
    assert seed_procs(RunSpec("dqn", SPREAD, steps=100, seeds=3, procs=3), cpu, False) == 3


def same_state(a, b) -> bool:
    """Nested dicts / lists of tensors and values equal to the bit."""
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_state(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same_state(x, y) for x, y in zip(a, b))
    return torch.equal(a, b) if isinstance(a, torch.Tensor) else a == b


def untimed(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in rows]


def test_seeds_split_over_processes_are_the_runs_of_one_process(tmp_path):
    """procs=2 trains seeds 0-1 and 2-3 in two processes: the same runs to the bit as one
    process of the 4 (per-seed metrics, means, checkpoint), resumed in one process or two."""
    spec = RunSpec("mappo", SPREAD, steps=256, seeds=4, procs=2, checkpoint_every=128)
    config = {**SMALL, "total_steps": 256}
    split = train(spec, config, out=tmp_path / "split", progress=False)
    one = train(dataclasses.replace(spec, procs=1), config, out=tmp_path / "one", progress=False)
    assert isinstance(split.trainer, SeedProcesses) and split.trainer.blocks == [[0, 1], [2, 3]]
    assert split.trainer._view is None  # a run builds no K-seed learner in this process
    assert {"seed3/return/agent", "return/agent"} <= set(split.rows[-1])
    assert untimed(split.rows) == untimed(one.rows) and len(split.rows) == 4
    states = [torch.load(r.checkpoint, weights_only=True)["learner"] for r in (split, one)]
    assert same_state(*states)
    assert same_state(split.learner.state_dict(), states[1])  # the parent's view of the runs
    longer = [resume(r.out_dir, progress=False, changes={"steps": 384, "procs": procs})
              for r, procs in ((split, 1), (one, 2))]  # fmt: skip
    assert untimed(longer[0].rows) == untimed(longer[1].rows) and len(longer[0].rows) == 6
    assert same_state(*(torch.load(r.checkpoint, weights_only=True)["learner"] for r in longer))


def test_a_seed_process_that_fails_or_dies_is_named():
    """A user error in a seed process comes back as a one-line ConfigError naming its
    seeds; the process then ends, and the next call says it died and how to go on."""
    spec = vec_spec(SPREAD, backend="batched")
    trainer = SeedProcesses("ippo", spec, small("ippo"), [0, 1, 2, 3], procs=2)
    try:
        state = trainer.state_dict()
        learner, runs = state["learner"], state["learner"]["runs"]
        right = {**state, "learner": {**learner, "seeds": [0, 1], "runs": runs[:2]}}
        wrong = {**state, "learner": {**learner, "seeds": [0, 1], "runs": runs[:2]}}
        with pytest.raises(ConfigError, match=r"seeds \[2, 3\]: the state is of seeds \[0, 1\]"):
            trainer._call("load_state_dict", [right, wrong])
        with pytest.raises(SeedProcessError, match=r"seeds \[2, 3\] died .* --resume"):
            trainer.iterate()
    finally:
        trainer.close()


def test_a_seed_process_that_cannot_start_names_the_guard(tmp_path):
    script = tmp_path / "unguarded.py"
    script.write_text(
        "from marl.run.loop import RunSpec, train\n"
        f"train(RunSpec('ippo', '{SPREAD}', steps=64, seeds=4, procs=2), {SMALL!r}, "
        f"out={str(tmp_path / 'run')!r}, force=True, progress=False)\n"
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert done.returncode != 0 and "if __name__ ==" in done.stderr.splitlines()[-1]


def test_seeds_of_other_algorithms_are_their_single_runs_to_the_bit(tmp_path):
    """DQN with --seeds 2 (in two processes): each seed's checkpointed state is the state
    `marl train --seed S` ends with, to the bit; metrics per seed and their mean."""
    config = {"num_envs": 2, "learning_starts": 64, "buffer_size": 512}
    spec = RunSpec("dqn", "gym/CartPole-v1", steps=256, seeds=2, procs=2)
    both = train(spec, config, out=tmp_path / "both", progress=False)
    assert isinstance(both.trainer, SeedProcesses)
    state = torch.load(both.checkpoint, weights_only=True)["learner"]
    for k in (0, 1):
        alone = dataclasses.replace(spec, seed=k, seeds=1, procs=0)
        run = train(alone, config, out=tmp_path / f"s{k}", progress=False)
        assert same_state(
            state["runs"][k], torch.load(run.checkpoint, weights_only=True)["learner"]
        )
        assert both.rows[-1][f"seed{k}/loss"] == run.rows[-1]["loss"]
    assert both.rows[-1]["loss"] == pytest.approx(
        (both.rows[-1]["seed0/loss"] + both.rows[-1]["seed1/loss"]) / 2
    )


def test_recurrent_ppo_seeds_train_side_by_side(tmp_path):
    spec = RunSpec("ppo", SPREAD, steps=128, seeds=2, procs=1)
    run = train(spec, {**SMALL, "recurrent": True}, out=tmp_path / "r", progress=False)
    assert isinstance(run.trainer, RunsTrainer) and {"seed1/return/agent"} <= set(run.rows[-1])


def test_seeds_that_drift_apart_are_stopped():
    trainer = RunsTrainer(
        "dqn", vec_spec("gym/CartPole-v1"), make_config("dqn", {"num_envs": 2}), [0, 1]
    )
    ahead = trainer.trainers[1]
    ahead.learner.env_steps += 1
    with pytest.raises(ConfigError, match="different env steps"):
        trainer.iterate()
    trainer.close()


def test_seed_processes_import_the_users_env_modules(tmp_path, capfd, monkeypatch):
    """An env registered by `--import MODULE` is there in the seed processes too; what a
    seed process prints reaches the output though it ends without the interpreter's
    teardown (`_serve_then_exit` flushes first)."""
    (tmp_path / "seed_proc_envs.py").write_text(
        "import marl\nfrom marl.envs.registry import make\n\nprint('seed_proc_envs imported')\n"
        "\n\ndef spread(**kwargs):\n"
        "    return make('mpe/simple_spread-v3', parallel=True, **kwargs)\n\n\n"
        "marl.register('seedprocs/spread-v0', spread)\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PYTHONUNBUFFERED", raising=False)  # the seeds' prints buffered
    args = ["train", "ippo", "--import", "seed_proc_envs", "--env", "seedprocs/spread-v0",
            "--seeds", "4", "--procs", "2", "--steps", "64", "--set", "num_envs=2",
            "--set", "rollout_len=32", "--no-progress"]  # fmt: skip
    status, out, err = cli(capfd, *args, "--out", str(tmp_path / "run"))
    assert status == 0 and (tmp_path / "run" / "checkpoint.pt").is_file(), err
    assert out.count("seed_proc_envs imported") == 3, out  # this process and the two seeds'


def test_a_diverged_seed_is_named():
    """One seed's NaN weights stop the K runs with an error naming that seed."""
    from marl.learners.ppo.nets import DivergedError

    trainer = seeds_trainer("ippo", vec_spec(SPREAD, backend="batched"), small("ippo"), [0, 1, 2])
    with torch.no_grad():
        next(iter(trainer.learner.net.params.values()))[1].fill_(float("nan"))
    with pytest.raises(DivergedError, match=r"seed\(s\) \[1\] have NaN or infinite weights"):
        trainer.iterate()


def test_blocks_stats_merge_as_one_runs():
    merged = merge_stats(
        [
            {"lr": 1.0, "seed0/x": 1.0, "seed1/x": 2.0, "x": 1.5},
            {"lr": 1.0, "seed0/x": 6.0, "x": 6.0},
        ],
        [2, 1],
    )
    assert merged == {"lr": 1.0, "x": 3.0, "seed0/x": 1.0, "seed1/x": 2.0, "seed2/x": 6.0}
    assert seed_blocks([4, 5, 6, 7, 8], 2) == [[4, 5, 6], [7, 8]]


def test_interval95_by_hand():
    mean, half = interval95([1.0, 2.0, 3.0])  # sd 1, t(0.975, 2) = 4.303
    assert mean == 2.0 and half == pytest.approx(4.303 / math.sqrt(3))
    assert interval95([1.0, float("nan")]) == (1.0, pytest.approx(float("nan"), nan_ok=True))


def test_cli_trains_seeds_and_eval_reports_each(tmp_path, capsys):
    out = tmp_path / "run"
    status, text, _ = cli(capsys, "train", "ippo", "--env", SPREAD, "--seeds", "2", "--steps",
                          "128", "--set", "num_envs=2", "--set", "rollout_len=32",
                          "--out", str(out), "--no-progress")  # fmt: skip
    assert status == 0, text
    rows = read_metrics(out / "metrics.csv")
    assert {"seed0/return/agent", "seed1/return/agent", "return/agent"} <= set(rows[-1])
    assert len(seed_band(rows, "return/agent")) == len(rows)
    assert (out / "learning_curve.png").stat().st_size > 0
    status, text, _ = cli(capsys, "eval", str(out), "--episodes", "2")
    assert status == 0 and "across 2 seeds; per seed:" in text, text
    status, _, err = cli(capsys, "train", "reinforce", "--env", SPREAD, "--seeds", "2",
                         "--steps", "64", "--out", str(tmp_path / "reinforce"))  # fmt: skip
    assert status != 0 and "cannot train in step" in err


def test_seeds_run_resumes_from_its_checkpoint(tmp_path):
    spec = RunSpec("mappo", SPREAD, steps=128, seeds=2, checkpoint_every=64)
    run = train(spec, {**SMALL, "total_steps": 128}, out=tmp_path / "r", progress=False)
    assert run.learner.env_steps == 128
    record = torch.load(run.checkpoint, weights_only=True)
    assert record["run"]["seeds"] == 2 and len(record["learner"]["runs"]) == 2
    longer = resume(tmp_path / "r", progress=False, changes={"steps": 192})
    assert longer.learner.env_steps == 192 and longer.learner.seeds == [0, 1]
