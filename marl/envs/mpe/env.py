"""B copies of one MPE scenario stepped as tensors, following marl's VecEnv protocol."""

from __future__ import annotations

import numbers
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces

from marl.envs.mpe.scenario import Scenario
from marl.envs.mpe.world import MOVE_DIM, Physics, WorldSpec, WorldState, merge_states
from marl.envs.types import VecStep


def _compiler_failure() -> type[Exception] | tuple[()]:
    """torch's error for a backend that could not compile, or () (matches nothing) when
    `torch._dynamo` was never imported, so nothing compiled could have raised it. Not imported
    here: `torch._dynamo` took 2 s to import on a 2-core AMD host, in every process that
    builds an MPE env, compiled or not."""
    exc = sys.modules.get("torch._dynamo.exc")
    return () if exc is None else exc.BackendCompilerFailed


class CompileFailedError(ValueError):
    """`compile=True` (backend "compiled") where torch.compile cannot build the step (no
    working C++ compiler, say)."""


def team_of(agent_name: str) -> str:
    """The team an agent belongs to: its name up to the last underscore."""
    return agent_name.rsplit("_", 1)[0]


def action_size(spec: WorldSpec, agent: int, continuous: bool) -> int:
    """mpe2's action size: Discrete n, or the Box length with continuous actions."""
    movable, silent, c = spec.movable[agent], spec.silent[agent], spec.dim_c
    if continuous:
        return (2 * 2 + 1 if movable else 0) + (0 if silent else c)
    return (MOVE_DIM if movable else 1) * (1 if silent else c)


class BatchedMPE:
    """A natively batched MPE scenario with autoreset after `max_cycles` steps."""

    def __init__(
        self,
        scenario: Scenario,
        num_envs: int,
        *,
        max_cycles: int = 25,
        continuous_actions: bool = False,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        seed: int | Sequence[int] | None = None,
        check_actions: bool = True,
        compile: bool = False,
    ) -> None:
        """Wrap `scenario` for `num_envs` worlds on `device`; `check_actions` refuses NaN or
        infinite continuous actions (mpe2 raises on them) and discrete actions out of range
        (a learner's hot path turns it off: its masked policy only picks legal ones).

        `compile` runs a step's physics, observations, rewards and episode ends through
        `torch.compile` (inductor) as one graph: a few fused kernels instead of ~200 small
        tensor ops, compiled on the first step (seconds); float rounding differs from the
        eager step in the last bits. Resets stay eager (`docs/speed.md`). Each batch size,
        scenario and dtype compiles its own graph; torch keeps a few per function (8 in
        torch 2.13) and steps eagerly, with a warning, past that.

        A sequence of K seeds splits the worlds into K equal blocks side by side, each drawing
        its resets from its own generator: block k is then the env a run of `num_envs / K`
        worlds seeded `seed[k]` would be (what `--seeds K` trains on)."""
        if num_envs < 1 or max_cycles < 1:
            raise ValueError(f"num_envs and max_cycles must be >= 1, got {num_envs}, {max_cycles}")
        blocks = 1 if seed is None or isinstance(seed, numbers.Integral) else len(seed)
        if blocks < 1 or num_envs % blocks:
            raise ValueError(f"num_envs={num_envs} does not split into {blocks} seed blocks")
        spec = scenario.spec
        self.scenario = scenario
        self.num_envs = num_envs
        self.max_cycles = max_cycles
        self.continuous_actions = continuous_actions
        self.check_actions = check_actions
        self.device = torch.device(device)
        self.physics = Physics(spec, self.device, dtype)
        self.agents = list(spec.agent_names)
        self.teams: dict[str, list[int]] = {}
        for i, name in enumerate(self.agents):
            self.teams.setdefault(team_of(name), []).append(i)
        self._generators = [torch.Generator(device=self.device) for _ in range(blocks)]
        if seed is None:
            self._generators[0].seed()
        else:
            self._seed(seed)
        # Only collect_treasure has a post-physics step (pickups, deliveries, respawns).
        self._post_step = getattr(scenario, "post_step", None)
        self._physics, self._finish, self._transition = (
            self.physics.step, self._outcome, self._step_and_outcome
        )  # fmt: skip
        if compile:  # one graph a step, or two around collect_treasure's eager post-step
            self._physics, self._finish, self._transition = (
                torch.compile(fn, dynamic=False)
                for fn in (self.physics.step, self._outcome, self._step_and_outcome)
            )
        self._state = self._fresh_states()
        self._t = torch.zeros(num_envs, dtype=torch.long, device=self.device)
        self._define_spaces(spec, continuous_actions)

    def _define_spaces(self, spec: WorldSpec, continuous: bool) -> None:
        """Spaces equal to mpe2's, sizes, and the constant mask and alive tensors."""
        blocks = self.scenario.observe(self._state)
        obs_sizes = [b.shape[-1] for b in blocks for _ in range(b.shape[1])]
        self.obs_sizes = obs_sizes
        self.obs_dim = max(obs_sizes)
        self.state_dim = sum(obs_sizes)
        inf = np.float32(np.inf)
        self.observation_spaces = [spaces.Box(-inf, inf, (o,), np.float32) for o in obs_sizes]
        sizes = [action_size(spec, i, continuous) for i in range(spec.num_agents)]
        self.action_sizes = torch.tensor(sizes, device=self.device)
        if continuous:
            self.action_spaces = [spaces.Box(0.0, 1.0, (d,)) for d in sizes]
            self.num_actions, self.action_dim = 0, max(sizes)
        else:
            self.action_spaces = [spaces.Discrete(n) for n in sizes]
            self.num_actions, self.action_dim = max(sizes), 0
        legal = torch.arange(self.num_actions, device=self.device) < self.action_sizes[:, None]
        self._action_mask = legal.expand(self.num_envs, -1, -1)
        self._alive = torch.ones(self.num_envs, len(sizes), dtype=torch.bool, device=self.device)
        self._no = torch.zeros(self.num_envs, dtype=torch.bool, device=self.device)

    @property
    def world_state(self) -> WorldState:
        """The current state of all B worlds."""
        return self._state

    def set_state(self, state: WorldState, steps: torch.Tensor | int = 0) -> VecStep:
        """Replace the world state (and the step counters); returns the new observations."""
        self._state = WorldState(*(x.to(self.device) for x in state))
        steps = torch.as_tensor(steps, device=self.device).to(self._t.dtype)
        self._t = torch.zeros_like(self._t) + steps
        return self._start_step()

    def _seed(self, seed: int | Sequence[int]) -> None:
        """Reseed the generators: one seed per block of worlds."""
        seeds = [seed] if isinstance(seed, numbers.Integral) else list(seed)
        if len(seeds) != len(self._generators):
            raise ValueError(
                f"seed {seed!r}: this env draws from {len(self._generators)} generators "
                f"(one per seed block); give that many seeds"
            )
        for generator, s in zip(self._generators, seeds):
            generator.manual_seed(int(s))

    def _per_block(self, draw: Any, state: WorldState | None = None) -> WorldState:
        """`draw(generator, block_size, block_state)` for each block, joined along the worlds."""
        if len(self._generators) == 1:
            return draw(self._generators[0], self.num_envs, state)
        size = self.num_envs // len(self._generators)
        parts = [
            draw(
                g,
                size,
                None
                if state is None
                else WorldState(*(x[k * size : (k + 1) * size] for x in state)),
            )
            for k, g in enumerate(self._generators)
        ]
        return WorldState(*(torch.cat(xs) for xs in zip(*parts)))

    def _fresh_states(self) -> WorldState:
        """Initial states of all B worlds, each block drawn from its own generator."""
        return self._per_block(lambda g, n, _: self.scenario.reset(n, g))

    def _restart(self, done: torch.Tensor, s: WorldState) -> WorldState:
        """`s` with the worlds where an episode ended (`done`) restarted. A block of worlds
        draws fresh states only when one of its own episodes ended, as a run of it alone
        would: another block's ends must not use up its generator (`--seeds K`)."""
        if len(self._generators) == 1:
            return merge_states(done, self.scenario.reset(self.num_envs, self._generators[0]), s)
        size = self.num_envs // len(self._generators)
        parts = []
        for k, generator in enumerate(self._generators):
            rows = slice(k * size, (k + 1) * size)
            block = WorldState(*(x[rows] for x in s))
            if bool(done[rows].any()):
                block = merge_states(done[rows], self.scenario.reset(size, generator), block)
            parts.append(block)
        return WorldState(*(torch.cat(xs) for xs in zip(*parts)))

    def reset(self, seed: int | Sequence[int] | None = None) -> VecStep:
        """Start all B episodes; a seed (one per seed block) reseeds the generators first."""
        if seed is not None:
            self._seed(seed)
        self._state = self._fresh_states()
        self._t.zero_()
        return self._start_step()

    def _pack(self, blocks: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Observation blocks -> padded obs [B, N, O] and state [B, S] (all obs in a row)."""
        state = (
            torch.cat([b.flatten(1) for b in blocks], 1)
            if len(blocks) > 1
            else blocks[0].flatten(1)
        )
        padded = [
            F.pad(b, (0, self.obs_dim - b.shape[-1])) if b.shape[-1] < self.obs_dim else b
            for b in blocks
        ]
        obs = padded[0] if len(padded) == 1 else torch.cat(padded, 1)
        return obs, state

    def _start_step(self) -> VecStep:
        """The VecStep of episodes starting at the current state (no reward, none ended)."""
        obs, state = self._pack(self.scenario.observe(self._state))
        reward = obs.new_zeros(self.num_envs, len(self.agents))
        return self._vec_step(obs, state, reward, self._no, self._no)

    def _vec_step(self, obs: torch.Tensor, state: torch.Tensor, reward: torch.Tensor,
                  terminated: torch.Tensor, truncated: torch.Tensor) -> VecStep:  # fmt: skip
        """A VecStep whose final obs/state are its obs/state (no autoreset in it)."""
        mask, alive = self._action_mask, self._alive
        return VecStep(obs, state, mask, reward, alive, terminated, truncated, obs, state)

    def _controls(self, actions: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Forces and messages from a batch of actions, after checking their shape and range."""
        a = torch.as_tensor(actions, device=self.device)
        b, n = self.num_envs, len(self.agents)
        if self.continuous_actions:
            if a.shape != (b, n, self.action_dim):
                raise ValueError(
                    f"expected continuous actions of shape {(b, n, self.action_dim)}, "
                    f"got {tuple(a.shape)}"
                )
            if self.check_actions:
                self._check_finite(a)
            return self.physics.continuous_controls(a.to(self.physics.push.dtype))
        if a.shape != (b, n) or a.dtype.is_floating_point or a.dtype == torch.bool:
            raise ValueError(
                f"expected integer actions of shape {(b, n)}, got {a.dtype} {tuple(a.shape)}"
            )
        if not self.check_actions:  # a learner's masked policy: legal by construction
            return self.physics.discrete_controls(a.long())
        bad = (a < 0) | (a >= self.action_sizes)
        if bad.any():
            env, agent = (int(i) for i in bad.nonzero()[0])
            raise ValueError(
                f"action {int(a[env, agent])} of {self.agents[agent]} in env {env} is outside "
                f"Discrete({int(self.action_sizes[agent])})"
            )
        return self.physics.discrete_controls(a.long())

    def _check_finite(self, actions: torch.Tensor) -> None:
        """Refuse a NaN or infinite action, naming the env, the agent and the value."""
        bad = ~torch.isfinite(actions).all(-1)
        if bad.any():
            env, agent = (int(i) for i in bad.nonzero()[0])
            raise ValueError(
                f"action {actions[env, agent].tolist()} of {self.agents[agent]} in env {env} "
                f"is not finite; expected finite floats in {self.action_spaces[agent]}"
            )

    def _outcome(self, s: WorldState, t: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """After a step to `s` at step counts `t`: obs [B, N, O], state [B, S], reward
        [B, N], terminated, truncated [B], the new step counts and whether any episode ended."""
        obs, state = self._pack(self.scenario.observe(s))
        t = t + 1
        ends = self.scenario.is_terminal(s)
        terminated = torch.zeros_like(t, dtype=torch.bool) if ends is None else ends
        truncated = (t >= self.max_cycles) & ~terminated  # terminated wins (mpe2: truncated)
        ended = (terminated | truncated).any()
        return obs, state, self.scenario.reward(s), terminated, truncated, t, ended

    def _step_and_outcome(
        self, s: WorldState, force: torch.Tensor, said: torch.Tensor, t: torch.Tensor
    ) -> tuple[Any, ...]:
        """The physics step from `s`, then its `_outcome`: (new state, *outcome)."""
        s = self.physics.step(s, force, said)
        return (s, *self._outcome(s, t))

    def _advance(self, force: torch.Tensor, said: torch.Tensor) -> tuple[Any, ...]:
        """(new state, *outcome) of a step from the current state, compiled or eager."""
        try:
            if self._post_step is None:
                return self._transition(self._state, force, said, self._t)
            s = self._physics(self._state, force, said)
            post = self._post_step
            s = self._per_block(lambda g, _, block: post(block, g), s)
            return (s, *self._finish(s, self._t))
        except _compiler_failure() as err:  # only a compiled step gets here
            cause = getattr(err, "inner_exception", None) or err
            reason = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
            raise CompileFailedError(
                f"backend=compiled: torch.compile could not build the MPE step ({reason}); "
                "backend=batched runs the same env without compiling"
            ) from err

    def step(self, actions: Any) -> VecStep:
        """Apply actions ([B, N] ints or [B, N, action_dim] floats); autoreset ended episodes."""
        s, *outcome = self._advance(*self._controls(actions))
        obs, state, reward, terminated, truncated, self._t, ended = outcome
        self._state = s
        out = self._vec_step(obs, state, reward, terminated, truncated)
        if not bool(ended):
            return out
        done = terminated | truncated
        self._state = self._restart(done, s)
        self._t = self._t.masked_fill(done, 0)
        obs, state = self._pack(self.scenario.observe(self._state))
        return out._replace(obs=obs, state=state)

    def close(self) -> None:
        """Nothing to free: the state is a handful of tensors."""
