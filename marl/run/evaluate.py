"""Evaluate a trained policy: per-team returns with their convention, and an episode GIF."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from marl.algorithms import learner_module, make_config
from marl.core.checkpoint import load_checkpoint, load_state
from marl.core.device import get_device
from marl.core.learner import interval95, reset_finished
from marl.envs.registry import group_teams, make, registration
from marl.envs.vector import SyncVecEnv, make_vec, vec_spec


@dataclass(frozen=True)
class EvalResult:
    """Mean and std over episodes of each team's per-agent undiscounted episode return."""

    env_id: str
    env_kwargs: dict[str, Any]
    episodes: int
    greedy: bool
    seed: int
    team_returns: dict[str, tuple[float, float]]  # team -> (mean, std) of per-agent return
    seed_returns: dict[str, list[float]] = field(default_factory=dict)
    """A `--seeds K` run: team -> each seed's mean per-agent return (each seed plays all
    `episodes`)."""

    @property
    def convention(self) -> str:
        """How the numbers were made (MPE numbers are not comparable without this)."""
        policy = "greedy" if self.greedy else "sampled"
        each = " per seed" if self.seed_returns else ""
        return (f"per-agent undiscounted episode return (mean over the team's agents), "
                f"{policy} policy, {self.episodes} episodes{each}, eval seed {self.seed}, "
                f"env {self.env_id} {self.env_kwargs or '(default kwargs)'}")  # fmt: skip

    def summary(self) -> str:
        """One line per team (a `--seeds K` run: each seed's mean and the 95% interval of
        the mean across seeds)."""
        if self.seed_returns:
            return "\n".join([*map(self._seeds_line, self.seed_returns), f"({self.convention})"])
        lines = [f"{team}: {m:.3f} +- {s:.3f}" for team, (m, s) in self.team_returns.items()]
        return "\n".join([*lines, f"({self.convention})"])

    def _seeds_line(self, team: str) -> str:
        returns = self.seed_returns[team]
        mean, half = interval95(returns)
        each = ", ".join(f"{r:.3f}" for r in returns)
        return (f"{team}: {mean:.3f} +- {half:.3f} (95% interval of the mean across "
                f"{len(returns)} seeds; per seed: {each})")  # fmt: skip


def checkpoint_path(source: str | Path) -> Path:
    """The checkpoint file of a run directory (or the file itself)."""
    path = Path(source)
    return path / "checkpoint.pt" if path.is_dir() else path


def load_policy(source: str | Path, device: str = "cpu") -> tuple[Any, dict[str, Any]]:
    """The policy of a run dir or checkpoint (of a `--seeds K` run: the first seed's), and
    the checkpoint record."""
    policies, record = load_policies(source, device)
    return policies[0], record


def load_policies(source: str | Path, device: str = "cpu") -> tuple[list[Any], dict[str, Any]]:
    """The policy of each seed of a run dir or checkpoint (one for a single-seed run), and
    the checkpoint record. A `--seeds K` checkpoint holds each seed's state as a single run
    of that seed would (`runs`), so each is loaded into a learner of its own."""
    path = checkpoint_path(source)
    record = load_checkpoint(path, needs=("run", "learner"))
    algo, env_id, spec = record["algo"], record["env_id"], record["run"]
    config = make_config(algo, record["config"])
    backend = getattr(config, "backend", "auto")
    env = vec_spec(env_id, backend=backend, **spec["env_kwargs"])
    built_for = f"{algo} on {env_id} {spec['env_kwargs'] or '(default kwargs)'}"
    state = record["learner"]
    seeded = spec.get("seeds", 1) > 1
    seeds, states = (state["seeds"], state["runs"]) if seeded else ([spec["seed"]], [state])
    policies = []
    for seed, run_state in zip(seeds, states):
        learner = learner_module(algo).make_learner(env, config, seed, get_device(device))
        load_state(learner.load_state_dict, run_state, path, built_for)
        policies.append(learner.policy())
    return policies, record


def run_episodes(policy: Any, vec: Any, episodes: int, greedy: bool, seed: int) -> np.ndarray:
    """Per-agent returns [episodes, N]; each of the B envs plays an equal share."""
    per_env = -(-episodes // vec.num_envs)
    step = vec.reset(seed=seed)
    running = np.zeros((vec.num_envs, len(vec.agents)))
    finished: list[list[np.ndarray]] = [[] for _ in range(vec.num_envs)]
    while any(len(f) < per_env for f in finished):
        actions = policy.act(step.obs, step.action_mask, greedy=greedy)
        step = vec.step(np.asarray(actions))
        reset_finished(policy, step.done)
        running += np.asarray(step.reward, dtype=np.float64)
        for b in np.flatnonzero(np.asarray(step.done)):
            if len(finished[b]) < per_env:
                finished[b].append(running[b].copy())
            running[b] = 0.0
    returns = np.stack([r for env_returns in finished for r in env_returns])
    return returns[:episodes]


def evaluate(
    source: str | Path,
    *,
    episodes: int = 100,
    greedy: bool = True,
    seed: int = 10_000,
    num_envs: int = 16,
    device: str = "cpu",
) -> EvalResult:
    """Evaluate the policy of a run dir or checkpoint on fresh, seeded episodes."""
    if episodes < 1:
        raise ValueError(f"episodes={episodes}: expected at least 1")
    policies, record = load_policies(source, device)
    env_id, env_kwargs = record["env_id"], record["run"]["env_kwargs"]
    vec = make_vec(env_id, min(num_envs, episodes), **env_kwargs)
    per_seed = [run_episodes(policy, vec, episodes, greedy, seed) for policy in policies]
    vec.close()
    returns = np.concatenate(per_seed)
    teams = {
        team: (float(returns[:, idx].mean(1).mean()), float(returns[:, idx].mean(1).std()))
        for team, idx in vec.teams.items()
    }
    seeds = {team: [float(r[:, idx].mean()) for r in per_seed] for team, idx in vec.teams.items()}
    return EvalResult(env_id, env_kwargs, episodes, greedy, seed, teams,
                      seeds if len(policies) > 1 else {})  # fmt: skip


def render_gif(source: str | Path, path: str | Path, *, seed: int = 0, greedy: bool = True,
               fps: int = 10) -> Path:  # fmt: skip
    """Play one episode with the policy and write its frames as a GIF (or an .mp4 video)."""
    import imageio.v2 as imageio

    policy, record = load_policy(source)
    env_id, env_kwargs = record["env_id"], dict(record["run"]["env_kwargs"])
    env_fn = functools.partial(make, env_id, parallel=True, **env_kwargs, render_mode="rgb_array")
    probe = env_fn()
    teams = group_teams(probe.possible_agents, registration(env_id).teams)
    probe.close()
    vec = SyncVecEnv(env_fn, 1, teams)
    step = vec.reset(seed=seed)
    frames = [vec.envs[0].render()]
    while True:
        step = vec.step(np.asarray(policy.act(step.obs, step.action_mask, greedy=greedy)))
        reset_finished(policy, step.done)
        if step.done[0]:
            break
        frames.append(vec.envs[0].render())
    vec.close()
    frames = [f for f in frames if f is not None]
    if not frames:
        raise ValueError(f"{env_id} renders no rgb_array frames; no GIF can be made")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".gif":
        imageio.mimsave(path, frames, duration=1000 / fps, loop=0)
    else:  # a video through imageio's ffmpeg plugin (the `video` extra)
        imageio.mimsave(path, frames, fps=fps)
    return path
