"""The shared training loop, with a tiny learner: outputs, checkpoints, resume, bad input."""

from __future__ import annotations

import dataclasses
import sys

import numpy as np
import pytest
import torch

from marl import algorithms as algos
from marl.cli import main
from marl.core.checkpoint import CheckpointError, load_checkpoint
from marl.core.config import ConfigError
from marl.run.loop import RunSpec, resume, train
from marl.run.metrics import MetricsLog, read_metrics

CRASH_AT: list[int] = []  # env-step counts at which the fake learner "is killed"


@dataclasses.dataclass(frozen=True)
class CONFIG:  # noqa: N801 - the learner-module convention names the config class CONFIG
    lr: float = 0.1
    """step size of the fake update"""
    num_envs: int = 2
    """envs stepped per iteration"""


ALGOS = {"fake": {}}


class FakeLearner:
    """Acts on matrix/two_step with random actions and moves a scalar toward the reward."""

    def __init__(self, spec, config, seed) -> None:
        self.value = torch.zeros(())
        self.cfg = config
        self.env_steps = 0

    def start(self, env, seed):
        return env.reset(seed=seed), np.random.default_rng(seed)

    def collect(self, env, carry):
        _, rng = carry
        step = env.step(rng.integers(0, 2, (env.num_envs, 2)))
        return float(step.reward.mean()), (step, rng)

    def learn(self, experience) -> dict[str, float]:
        if self.env_steps in CRASH_AT:
            CRASH_AT.remove(self.env_steps)
            raise KeyboardInterrupt
        reward = float(np.mean(experience))
        self.value += self.cfg.lr * (reward - self.value)
        self.env_steps += self.cfg.num_envs
        return {"value": float(self.value), "return/team": reward}

    def weights(self) -> dict:
        return {"value": self.value}

    def load_weights(self, weights: dict) -> None:
        self.value = weights["value"]

    def state_dict(self) -> dict:
        return {"value": self.value, "env_steps": self.env_steps}

    def load_state_dict(self, state: dict) -> None:
        self.value = state["value"]
        self.env_steps = state["env_steps"]

    def policy(self):
        return self

    def close(self) -> None:
        pass


def make_learner(spec, config, seed, device="cpu"):
    return FakeLearner(spec, config, seed)


def make_env(spec, config, num_envs, seed):
    import marl

    return marl.make_vec(spec.env_id, num_envs, seed=seed, **spec.env_kwargs)


def _spec(steps, **kw) -> RunSpec:
    return RunSpec("fake", "matrix/two_step-v0", steps=steps, **kw)


@pytest.fixture(autouse=True)
def fake_algo(monkeypatch):
    monkeypatch.setitem(algos.ALGORITHMS, "fake", __name__)
    monkeypatch.setitem(sys.modules, __name__, sys.modules[__name__])


def test_run_writes_everything(tmp_path) -> None:
    run = train(_spec(20), out=tmp_path / "r", progress=False)
    for name in ("metrics.csv", "config.toml", "checkpoint.pt", "learning_curve.png"):
        assert (tmp_path / "r" / name).is_file(), name
    assert any((tmp_path / "r" / "tb").iterdir())
    rows = read_metrics(tmp_path / "r" / "metrics.csv")
    assert [r["env_steps"] for r in rows] == list(range(2, 22, 2))
    record = load_checkpoint(run.checkpoint, env_id="matrix/two_step-v0", algo="fake")
    assert record["config"] == {"lr": 0.1, "num_envs": 2} and record["learner"]["env_steps"] == 20


def test_resume_after_kill_matches_unbroken_run(tmp_path) -> None:
    unbroken = train(_spec(20, checkpoint_every=4), out=tmp_path / "a", progress=False)
    CRASH_AT.append(14)
    with pytest.raises(KeyboardInterrupt):
        train(_spec(20, checkpoint_every=4), out=tmp_path / "b", progress=False)
    assert load_checkpoint(tmp_path / "b" / "checkpoint.pt")["learner"]["env_steps"] == 12
    resumed = resume(tmp_path / "b", progress=False)
    assert resumed.learner.env_steps == 20
    assert float(resumed.learner.value) == pytest.approx(float(unbroken.learner.value), abs=0)
    # the resumed run acts and learns exactly as the unbroken one, row for row
    kept = ("env_steps", "value", "return/team")
    rows_a = [{k: r[k] for k in kept} for r in read_metrics(tmp_path / "a" / "metrics.csv")]
    rows_b = [{k: r[k] for k in kept} for r in read_metrics(tmp_path / "b" / "metrics.csv")]
    assert rows_a == rows_b
    rows = read_metrics(tmp_path / "b" / "metrics.csv")
    assert [r["env_steps"] for r in rows] == list(range(2, 22, 2))  # none lost or doubled


def test_force_clears_the_earlier_runs_files_and_an_extension_survives_a_kill(tmp_path):
    """--force: a kill before the new run's first checkpoint must not leave the old run's
    checkpoint to resume under the new config. --resume --steps N: the longer budget is in
    the checkpoint at once, so a kill before the next one does not undo the extension."""
    out = tmp_path / "r"
    train(_spec(8, seed=0), out=out, progress=False)
    CRASH_AT.append(0)
    with pytest.raises(KeyboardInterrupt):
        train(_spec(8, seed=7, checkpoint_every=4), out=out, progress=False, force=True)
    assert not (out / "checkpoint.pt").exists()
    assert len(list((out / "tb").iterdir())) == 1  # the new run's event file, not the old's
    train(_spec(8, checkpoint_every=4), out=out, progress=False, force=True)
    CRASH_AT.append(8)
    with pytest.raises(KeyboardInterrupt):
        resume(out, progress=False, changes={"steps": 16})
    assert load_checkpoint(out / "checkpoint.pt")["run"]["steps"] == 16
    assert resume(out, progress=False).learner.env_steps == 16


def test_tensorboard_keeps_the_checkpoints_row_on_resume(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "r"
    train(_spec(4, checkpoint_every=4), out=out, progress=False)
    resume(out, progress=False, changes={"steps": 8})
    events = EventAccumulator(str(out / "tb"))
    events.Reload()
    steps = sorted({e.step for e in events.Scalars("value")})
    assert 4 in steps and steps[-1] == 8  # purge_step=4 had dropped the checkpoint's row


def test_the_restart_count_is_checkpointed_and_restored(tmp_path):
    """`workers/restarts` goes on from where the checkpoint left it, not from 0."""
    from marl.core.trainer import Trainer

    run = train(_spec(4), out=tmp_path / "r", progress=False)
    assert load_checkpoint(run.checkpoint)["progress"] == {"iteration": 2, "restarts": 0}
    first = Trainer(FakeLearner(None, CONFIG(), 0), pool=None)
    first.restarts = 3
    second = Trainer(FakeLearner(None, CONFIG(), 0), pool=None)
    second.load_state_dict(first.state_dict())
    assert second.restarts == 3 and second.iteration == first.iteration


def test_refuses_to_overwrite_a_run(tmp_path) -> None:
    train(_spec(4), out=tmp_path / "r", progress=False)
    with pytest.raises(FileExistsError, match="--resume"):
        train(_spec(4), out=tmp_path / "r", progress=False)


def test_bad_config_key_and_value() -> None:
    with pytest.raises(ConfigError, match="did you mean lr"):
        algos.make_config("fake", {"lrr": 0.1})
    with pytest.raises(ConfigError, match="expected int"):
        algos.make_config("fake", {"num_envs": "many"})
    with pytest.raises(ValueError, match="did you mean mappo"):
        algos.make_config("mapo")


def test_corrupt_and_foreign_checkpoints(tmp_path) -> None:
    run = train(_spec(4), out=tmp_path / "r", progress=False)
    with pytest.raises(CheckpointError, match="env_id='matrix/two_step-v0'"):
        load_checkpoint(run.checkpoint, env_id="mpe/simple_spread-v3")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(run.checkpoint.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="is truncated or corrupt"):
        load_checkpoint(bad)
    torch.save({"weights": torch.zeros(2)}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not a marl checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")

    class Evil:
        def __reduce__(self):
            return (print, ("executed",))

    torch.save({"x": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="would run code when loaded"):
        load_checkpoint(tmp_path / "evil.pt")


def test_cli_one_line_errors(tmp_path, capsys) -> None:
    assert main(["train", "--resume", str(tmp_path / "missing")]) == 2
    assert "no run directory" in capsys.readouterr().err
    cfg = tmp_path / "run.toml"
    cfg.write_text('env = "matrix/two_step-v0"\nstep = 10\n')
    assert main(["train", "fake", "--config", str(cfg)]) == 2
    assert "did you mean 'steps'" in capsys.readouterr().err
    assert main(["eval", str(tmp_path / "nothing.pt")]) == 2
    assert "no checkpoint" in capsys.readouterr().err


def test_metrics_csv_grows_by_appending_and_skips_a_line_cut_short(tmp_path):
    log = MetricsLog(tmp_path, tensorboard=False)
    log.log(10, {"loss": 1.0})
    log.log(20, {"loss": 0.5})
    before = (tmp_path / "metrics.csv").stat().st_ino
    log.log(30, {"loss": 0.25, "return/agent": 3.0})  # a new column: the file is rewritten
    log.log(40, {"loss": 0.125})
    assert (tmp_path / "metrics.csv").stat().st_ino != before
    lines = (tmp_path / "metrics.csv").read_text().splitlines()
    assert lines[0] == "env_steps,loss,return/agent" and lines[-1] == "40.0,0.125,"
    for cut in ("50.0,0.0", "50.0,0.0,1"):  # killed while appending: no end of line
        (tmp_path / "cut.csv").write_text("\n".join(lines) + "\n" + cut)
        rows = read_metrics(tmp_path / "cut.csv")
        assert [r["env_steps"] for r in rows] == [10, 20, 30, 40] and rows[2]["return/agent"] == 3.0


def test_tensorboard_gets_a_row_at_most_every_interval_and_the_last(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    log = MetricsLog(tmp_path, tensorboard_every_s=3600.0)
    for step in range(1, 6):
        log.log(step * 10, {"loss": 1.0 / step})
    log.close()
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    assert [e.step for e in events.Scalars("loss")] == [10, 50]  # the first, and the last
    assert [r["env_steps"] for r in read_metrics(tmp_path / "metrics.csv")] == [10, 20, 30, 40, 50]


def _optimizers(learner) -> list[torch.optim.Optimizer]:
    found = [v for v in vars(learner).values() if isinstance(v, torch.optim.Optimizer)]
    return found + list(getattr(learner, "optimizers", {}).values())


def _saved_groups(state):
    """Every optimizer's saved `param_groups` inside a learner's `state_dict()`."""
    if isinstance(state, dict):
        if "param_groups" in state and "state" in state:
            yield from state["param_groups"]
        for value in state.values():
            yield from _saved_groups(value)
    elif isinstance(state, list):
        for value in state:
            yield from _saved_groups(value)


@pytest.mark.parametrize(
    "algo, env_id",
    [("ppo", "gym/CartPole-v1"), ("reinforce", "gym/CartPole-v1"), ("a2c", "gym/CartPole-v1"),
     ("trpo", "gym/CartPole-v1"), ("impala", "gym/CartPole-v1"), ("dqn", "gym/CartPole-v1"),
     ("qmix", "mpe/simple_spread-v3"), ("sac", "gym/Pendulum-v1"), ("mbpo", "gym/Pendulum-v1"),
     ("dreamer", "gym/Pendulum-v1"), ("alphazero", "classic/tic_tac_toe-v0"),
     ("muzero", "classic/tic_tac_toe-v0")],
)  # fmt: skip
def test_every_learners_optimizers_step_their_tensors_in_one_foreach_pass(algo, env_id):
    """On CPU torch's optimizers default to a Python loop over the tensors; `foreach=True`
    gives the same numbers to the bit (checked on these learners' weights and optimizer state
    when it was switched on) for about two thirds of the time a step. Every optimizer asks
    for it, and keeps it when a checkpoint saved before that (`foreach` None) is loaded."""
    from marl.envs import vec_spec

    learner = algos.learner_module(algo).make_learner(
        vec_spec(env_id), algos.make_config(algo), 0, "cpu"
    )
    assert _optimizers(learner), f"{algo}: no optimizer found on the learner"
    state = learner.state_dict()
    for group in _saved_groups(state):
        group["foreach"] = None  # as saved before the optimizers asked for foreach
    learner.load_state_dict(state)
    groups = [g for o in _optimizers(learner) for g in o.param_groups]
    assert all(g["foreach"] for g in groups), [g["foreach"] for g in groups]


def test_every_optimizer_and_gradient_clip_in_marl_asks_for_foreach():
    """The source's own check, for learners the test above does not build: each call of a
    `torch.optim` optimizer or of `clip_grad_norm_` in `marl/` passes `foreach=`."""
    import ast
    from pathlib import Path

    import marl

    names = {"Adam", "AdamW", "RMSprop", "SGD", "clip_grad_norm_"}
    calls = [
        (path, node)
        for path in Path(marl.__file__).parent.rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
        and node.func.attr in names
    ]  # fmt: skip
    missing = [
        f"{path.name}:{node.lineno} {node.func.attr}"
        for path, node in calls
        if "foreach" not in {k.arg for k in node.keywords}
    ]
    assert len(calls) > 20 and not missing, missing
