"""Shared test settings: one torch thread (the CI machine has two cores)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import pytest
import torch

if TYPE_CHECKING:
    from marl.core.trainer import Trainer

Score = TypeVar("Score")

torch.set_num_threads(1)

TTT_RECIPE = {
    "num_games": 64, "search.simulations": 32, "channels": 32, "blocks": 2,
    "temperature_moves": 4, "moves_per_iteration": 9, "train_steps": 16, "batch_size": 128,
    "min_buffer": 256, "lr": 1e-3, "buffer_size": 8000, "targets.value_target_mix": 0.5,
}  # fmt: skip
"""AlphaZero's tic-tac-toe learning recipe (native and OpenSpiel rules alike). With it, each of
seeds 0-5 never lost to minimax at iterations 45, 50 and 55 on either rules (OpenSpiel: at every
fifth iteration from 40 to 60). With lr 2e-3 and outcome-only value targets, the net swung
between perfect play and 1-2 lost lines from one checkpoint to the next, so a test at 45
iterations passed or failed with the CPU's float rounding."""


def pytest_collection_modifyitems(config, items) -> None:
    """Longest first: the Ray group (about 3 minutes, on one worker), then the slow learning
    tests, then the rest in their usual order. With `-n auto` on two cores the long ones
    start early and the short ones fill in around them, instead of one worker finishing a
    2-minute test alone at the end of the run."""

    def rank(item) -> int:
        if item.get_closest_marker("xdist_group"):
            return 0
        return 1 if item.get_closest_marker("slow") else 2

    items.sort(key=rank)


def trainer_on(env, make_learner, config, seed=0):
    """A `Trainer` whose learner (built by `make_learner(spec, config, seed)`) acts on `env`,
    a test's own vector env, through one in-process worker."""
    from marl.core.pool import InProcessPool, Worker, WorkerRecipe
    from marl.core.spec import VecSpec
    from marl.core.trainer import Trainer

    learner = make_learner(VecSpec.of(env), config, seed)
    recipe = WorkerRecipe(make_env=lambda s: env, make_learner=lambda: learner, seed=seed)
    return Trainer(learner, InProcessPool([Worker(recipe, learner=learner, env=env)]))


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    """Run `marl ARGV` in this process: (status, stdout, stderr); never a traceback."""
    from marl.cli import main

    try:
        status = main(list(argv))
    except SystemExit as exit_:  # argparse refuses an option value this way
        status = int(exit_.code or 0)
    out, err = capsys.readouterr()
    assert "Traceback" not in err, err
    return status, out, err


def greedy_return(learner, env_id: str, episodes: int, seed: int) -> float:
    """Mean per-agent return of `episodes` greedy episodes on fresh copies of `env_id`."""
    import marl

    env = marl.make_vec(env_id, min(episodes, 10))
    policy = learner.policy()
    step = env.reset(seed=seed)
    running, finished = np.zeros(env.num_envs), []
    while len(finished) < episodes:
        step = env.step(policy.act(step.obs, step.action_mask))
        running += step.reward.mean(axis=1)
        done = step.terminated | step.truncated
        finished.extend(running[done])
        running[done] = 0.0
        policy.reset(done)
    env.close()
    return float(np.mean(finished[:episodes]))


def best_greedy_return(
    trainer: Trainer, env_id: str, threshold: float, max_steps: int, episodes: int,
    every: int = 5_000,
) -> float:  # fmt: skip
    """Train until the greedy return (evaluated every `every` env steps, seed 1) reaches
    `threshold` or `max_steps` env steps have passed; the best greedy return seen."""
    returns = train_until_passed(
        trainer, range(every, max_steps + 1, every),
        lambda learner: greedy_return(learner, env_id, episodes, seed=1),
        lambda value: value >= threshold, count=env_steps,
    )  # fmt: skip
    return max(returns)


def env_steps(trainer: Trainer) -> int:
    """`train_until_passed`'s count for budgets in env steps."""
    return trainer.env_steps


def train_until_passed(
    trainer: Trainer, checks: Iterable[int], score: Callable[[Any], Score],
    passed: Callable[[Score], bool], count: Callable[[Trainer], int] | None = None,
) -> list[Score]:  # fmt: skip
    """Train `trainer`, scoring its learner (`score(learner)`) each time `count(trainer)` (the
    iterations done, by default) reaches the next of `checks`, and stop at the first score that
    `passed`. Returns the scores so far: a learning test's threshold, checked along its budget,
    so that a run which gets there early stops early (the test then shows that the threshold
    was reached within the budget, not that it still holds at the budget's end)."""
    scores, iterations = [], 0
    for check in checks:
        while (count(trainer) if count else iterations) < check:
            trainer.iterate()
            iterations += 1
        scores.append(score(trainer.learner))
        if passed(scores[-1]):
            break
    return scores


def assert_resumes_exactly(make, tmp_path, before: int = 2, after: int = 2) -> list[dict]:
    """Train `make()` `before` iterations, checkpoint, train on; a fresh `make()` loaded from
    the checkpoint must log the same rows (times apart) and end with the same weights.
    Returns the unbroken run's rows after the checkpoint."""
    from marl.core.checkpoint import load_checkpoint, save_checkpoint

    def untimed(rows):
        return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in rows]

    unbroken = make()
    for _ in range(before):
        unbroken.iterate()
    path = save_checkpoint(tmp_path / "ckpt.pt", algo="test", env_id="fake", config={},
                           trainer=unbroken.state_dict())  # fmt: skip
    expected = [unbroken.iterate() for _ in range(after)]
    resumed = make()
    resumed.load_state_dict(load_checkpoint(path)["trainer"])
    got = [resumed.iterate() for _ in range(after)]
    assert untimed(got) == untimed(expected)
    nets = (unbroken.learner.net, resumed.learner.net)
    assert all(torch.equal(a, b) for a, b in zip(*(n.parameters() for n in nets), strict=True))
    return expected


@pytest.fixture(params=["torch", "sigmoid"])
def tanh_form(request, monkeypatch):
    """Each of the PPO family's tanh forms (`activation`), whatever this CPU picks."""
    from marl.learners.ppo import activation

    monkeypatch.setattr(activation, "BY_SIGMOID", request.param == "sigmoid")
    return request.param
