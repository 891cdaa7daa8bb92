"""`--seeds K` for the algorithms that are not batched over seeds: K runs side by side.

`RunsTrainer` holds one `local_trainer` per seed and iterates them in turn. Every random
stream of a run is its own (no marl code draws from a global generator), so seed k's run is
the run `marl train --seed k` trains, to the bit (tested); what `--seeds K` adds is one
folder, per-seed metrics with their mean and 95% interval, one curve and one `marl eval`,
and (`marl.run.seed_procs`) the seeds spread over processes. Feedforward PPO, IPPO and
MAPPO batch their seeds instead (`marl.algorithms.seeds_trainer`).

The seeds' iterations must stay in step: the loop logs one row per iteration at one env-step
count. Algorithms whose iterations end on episode or game boundaries (REINFORCE, AlphaZero,
MuZero) or that train from text (RLHF) are refused up front; any other run whose seeds drift
apart is stopped with an error that says so.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from marl.algorithms import SEEDED, learner_module, local_trainer, seeds_trainer
from marl.core.config import ConfigError, config_to_dict
from marl.core.learner import across_seeds, check_seeds

UNALIGNED = ("reinforce", "alphazero", "muzero", "rlhf_ppo")
"""Algorithms whose iterations take a varying number of env steps (whole episodes, games)
or no env: `--seeds K` is refused for them."""


def check_seedable(algo: str, seeds: int) -> None:
    """Refuse `--seeds K` (K > 1) for an algorithm whose seeds cannot train in step."""
    if seeds > 1 and algo in UNALIGNED:
        raise ConfigError(
            f"seeds={seeds}: {algo}'s iterations end on whole episodes or games, so its "
            f"seeds cannot train in step; run one seed per `marl train --seed S` (--seeds K "
            f"works with every algorithm but {', '.join(UNALIGNED)})"
        )


def same_env_steps(steps: Iterable[int], who: str) -> int:
    """The one env-step count the seeds' runs (`who`) are at after an iteration; refused
    when they differ: their seeds could not share one metrics row."""
    counts = sorted({int(s) for s in steps})
    if len(counts) > 1:
        raise ConfigError(
            f"--seeds: {who} are at different env steps after an iteration ({counts}), so "
            "they cannot share one metrics row; train them as separate runs (`marl train "
            "--seed S`)"
        )
    return counts[0]


def batched(algo: str, config: Any) -> bool:
    """Whether `algo`'s seeds train as one batched computation (feedforward PPO, IPPO,
    MAPPO), not side by side."""
    return algo in SEEDED and not getattr(config, "recurrent", False)


def block_trainer(algo: str, spec: Any, config: Any, seeds: list[int], device: Any = "cpu") -> Any:
    """The trainer of `seeds` in one process: batched for feedforward PPO/IPPO/MAPPO, side
    by side for the others (recurrent PPO included)."""
    if batched(algo, config):
        return seeds_trainer(algo, spec, config, seeds, device)
    return RunsTrainer(algo, spec, config, seeds, device)


def seeds_view(algo: str, spec: Any, config: Any, seeds: list[int]) -> Any:
    """A learner of `seeds` in this process that holds their state (no env, no workers)."""
    module = learner_module(algo)
    if batched(algo, config):
        return module.make_seeds_learner(spec, config, seeds, "cpu")
    return SeedRuns([module.make_learner(spec, config, s, "cpu") for s in seeds], seeds, config)


class SeedRuns:
    """K single-seed learners seen as one `--seeds K` learner: the state is each seed's
    own state in `runs` (what `marl eval` loads one learner each from)."""

    def __init__(self, runs: Sequence[Any], seeds: Sequence[int], config: Any) -> None:
        self.runs, self.seeds, self.config = list(runs), list(seeds), config
        self.env_steps = 0

    def state_dict(self, states: Sequence[Any] | None = None) -> dict[str, Any]:
        """Each seed's learner state (`states`, else the learners'), in seed order."""
        runs = list(states) if states is not None else [r.state_dict() for r in self.runs]
        return {"seeds": list(self.seeds), "runs": runs, "env_steps": self.env_steps,
                "config": config_to_dict(self.config)}  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore `state_dict()`'s output."""
        check_seeds(state, self.seeds)
        for run, run_state in zip(self.runs, state["runs"], strict=True):
            run.load_state_dict(run_state)
        self.env_steps = int(state["env_steps"])

    def policy(self) -> Any:
        """The first seed's policy (`policies()` has them all)."""
        return self.runs[0].policy()

    def policies(self) -> list[Any]:
        """Each seed's policy."""
        return [run.policy() for run in self.runs]

    def close(self) -> None:
        """Free every seed's learner."""
        for run in self.runs:
            run.close()


class RunsTrainer:
    """K runs of `algo`, one `local_trainer` per seed, iterated in turn (the `Trainer` shape
    the run loop drives; the state is a `SeedRuns` state)."""

    def __init__(self, algo: str, spec: Any, config: Any, seeds: list[int],
                 device: Any = "cpu") -> None:  # fmt: skip
        check_seedable(algo, len(seeds))
        self.algo = algo
        self.trainers = [local_trainer(algo, spec, config, s, device) for s in seeds]
        self.learner = SeedRuns([t.learner for t in self.trainers], seeds, config)
        self.iteration = 0

    @property
    def env_steps(self) -> int:
        """Env steps each seed has learned from."""
        return self.learner.env_steps

    def iterate(self) -> dict[str, float]:
        """One iteration of every seed: `seed{k}/` stats and their means across seeds."""
        per_seed = [t.iterate() for t in self.trainers]
        steps = [t.env_steps for t in self.trainers]
        self.learner.env_steps = same_env_steps(steps, f"{self.algo}'s seeds")
        self.iteration += 1
        return across_seeds(per_seed)

    def state_dict(self) -> dict[str, Any]:
        """Every seed's trainer state as one (each starts fresh episodes next, as a single
        run does after a checkpoint)."""
        states = [t.state_dict() for t in self.trainers]
        return {"learner": self.learner.state_dict([s["learner"] for s in states]),
                "iteration": self.iteration}  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore `state_dict()`."""
        learner = state["learner"]
        check_seeds(learner, self.learner.seeds)
        for trainer, run in zip(self.trainers, learner["runs"], strict=True):
            trainer.load_state_dict({"learner": run, "iteration": state["iteration"]})
        self.learner.env_steps = int(learner["env_steps"])
        self.iteration = int(state["iteration"])

    def policy(self) -> Any:
        """The first seed's policy."""
        return self.learner.policy()

    def close(self) -> None:
        """Stop every seed's workers and free its learner."""
        for trainer in self.trainers:
            trainer.close()
