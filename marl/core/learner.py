"""The one learner protocol every algorithm follows, and every backend calls.

An algorithm has two verbs. `collect(env, carry)` acts: it plays the env (a vector env,
self-play games, ...) with the learner's current weights and returns experience.
`learn(experience)` is the update. The local loop, the Ray workers and the league call
those two and nothing else (`marl.core.pool`, `marl.core.trainer`), so each algorithm is
written once. A worker that acts away from the learner holds its own copy, built by the
same constructor from the same `VecSpec`, and is sent `weights()` before it acts.

An algorithm's module exposes `CONFIG` (its frozen config dataclass), `ALGOS` (algorithm
name -> config overrides), `make_learner(spec, config, seed, device) -> Learner` and
`make_env(spec, config, num_envs, seed)`, the env its workers act on.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from marl.core.seeding import restore_generator


class Policy(Protocol):
    """Acts for all N agents of a batch of envs (used by evaluation, leagues and GIFs)."""

    def act(self, obs: Any, action_mask: Any, *, greedy: bool = True) -> np.ndarray:
        """obs [B, N, O], action_mask [B, N, A] -> actions [B, N] (or [B, N, action_dim])."""
        ...


def reset_finished(policy: Policy, done: Any) -> None:
    """Tell a recurrent policy which envs started a new episode (`reset(done)`, if it has one)."""
    reset = getattr(policy, "reset", None)
    if reset is not None:
        reset(done)


class Learner(Protocol):
    """One algorithm: acting (`start`, `collect`) and learning (`learn`) on one env spec."""

    env_steps: int  # environment steps learned from so far (the budget's unit)

    def start(self, env: Any, seed: int) -> Any:
        """Begin fresh episodes on `env`, seeded by `seed`; return the acting state (carry)
        that `collect` threads through: running episodes, recurrent state, acting RNG."""
        ...

    def collect(self, env: Any, carry: Any) -> tuple[Any, Any]:
        """Act on `env` with the current weights; return (experience, the next carry).

        Experience is plain tensors and arrays (it may cross a process boundary)."""
        ...

    def learn(self, experience: Sequence[Any]) -> dict[str, float]:
        """Update on the experience of one or more workers; count its env steps; return
        scalar stats. Stats named `return/<team>` are per-agent episode returns (sampled
        policy) of the episodes that finished in that experience."""
        ...

    def weights(self) -> dict[str, Any]:
        """What an acting copy needs to act as this learner does (tensors, plain values)."""
        ...

    def load_weights(self, weights: dict[str, Any]) -> None:
        """Take `weights()` from the learner (on an acting copy)."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume, as tensors and plain values only, so
        `torch.load(weights_only=True)` can read it."""
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` returned."""
        ...

    def policy(self) -> Policy:
        """The current policy for evaluation."""
        ...

    def close(self) -> None:
        """Free what the learner holds beyond memory (nothing, for most)."""
        ...


def mean_returns(finished: Any, teams: dict[str, Sequence[int]]) -> dict[str, float]:
    """`return/<team>`: the mean per-agent return [episodes, N] of each team's agents
    (NaN for a team when no episode finished)."""
    rows = np.asarray(finished, dtype=np.float64).reshape(-1, _width(teams))
    out = {}
    for team, members in teams.items():
        part = rows[:, list(members)]
        out[f"return/{team}"] = float(part.mean()) if len(part) else float("nan")
    return out


T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
        2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
        2.060, 2.056, 2.052, 2.048, 2.045, 2.042)  # fmt: skip
"""Student's t 0.975 quantiles for 1..30 degrees of freedom (two-sided 95%)."""


def check_seeds(state: dict[str, Any], seeds: Sequence[int]) -> None:
    """Refuse a `--seeds` state (`state["seeds"]`) saved for other seeds than `seeds`."""
    if list(state["seeds"]) != list(seeds):
        raise ValueError(f"the state is of seeds {state['seeds']}, this run trains {list(seeds)}")


def interval95(values: Sequence[float]) -> tuple[float, float]:
    """Mean and half-width of the 95% t-interval of the mean across seeds (NaNs dropped;
    half-width NaN with fewer than 2 values)."""
    xs = [float(v) for v in values if not math.isnan(float(v))]
    if not xs:
        return float("nan"), float("nan")
    mean = sum(xs) / len(xs)
    if len(xs) < 2:
        return mean, float("nan")
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1))
    t = T975[len(xs) - 2] if len(xs) - 1 <= len(T975) else 1.96
    return mean, t * sd / math.sqrt(len(xs))


def across_seeds(per_seed: Sequence[dict[str, float]]) -> dict[str, float]:
    """`seed{k}/{stat}` for every seed, and each stat's mean across seeds under its own name
    (NaNs, e.g. a seed with no finished episode, and seeds without the stat left out of the
    mean)."""
    keys = list(dict.fromkeys(key for stats in per_seed for key in stats))
    out: dict[str, float] = {}
    for key in keys:
        out[key] = interval95([s.get(key, float("nan")) for s in per_seed])[0]
    for i, stats in enumerate(per_seed):
        out |= {f"seed{i}/{key}": value for key, value in stats.items()}
    return out


def _width(teams: dict[str, Sequence[int]]) -> int:
    return 1 + max(i for members in teams.values() for i in members)


def cpu_state(module: Any) -> dict[str, Any]:
    """A module's weights detached and on the CPU: what `weights()` sends to acting copies."""
    return {k: v.detach().cpu() for k, v in module.state_dict().items()}


def rng_state(gen: np.random.Generator) -> dict[str, Any]:
    """A numpy generator's state as plain values (checkpoint-safe)."""
    return gen.bit_generator.state


def set_rng_state(gen: np.random.Generator, state: dict[str, Any]) -> None:
    """Restore a numpy generator from `rng_state`."""
    gen.bit_generator.state = state


def replay_progress(learner: Any) -> dict[str, Any]:
    """A replay learner's draws and counters (its numpy `rng`, torch `generator`,
    `env_steps`, `updates`, `owed_updates`) as checkpoint-safe values."""
    return {
        "rng": rng_state(learner.rng),
        "generator": learner.generator.get_state(),
        "env_steps": learner.env_steps,
        "updates": learner.updates,
        "owed_updates": learner.owed_updates,
    }


def load_replay_progress(learner: Any, state: dict[str, Any]) -> None:
    """Restore what `replay_progress` returned."""
    set_rng_state(learner.rng, state["rng"])
    restore_generator(learner.generator, state["generator"])
    learner.env_steps, learner.updates = int(state["env_steps"]), int(state["updates"])
    learner.owed_updates = float(state["owed_updates"])
