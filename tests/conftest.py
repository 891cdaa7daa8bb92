"""Shared test settings: one torch thread (the CI machine has two cores)."""

import torch

torch.set_num_threads(1)


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
