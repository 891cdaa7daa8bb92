"""Register your own PettingZoo env in code, then make, check and vector-step it."""

from __future__ import annotations

import gymnasium
import numpy as np
from pettingzoo import ParallelEnv

import marl


class GuessTheNumber(ParallelEnv):
    """Two guessers each pick 0..4; both get 1 when either guesses the hidden number."""

    metadata = {"name": "guess_the_number", "is_parallelizable": True, "render_modes": []}

    def __init__(self, max_cycles: int = 5) -> None:
        self.possible_agents = ["guesser_0", "guesser_1"]
        self.agents: list[str] = []
        self.max_cycles = max_cycles
        self._obs = gymnasium.spaces.Box(0.0, 1.0, (1,), np.float32)
        self._act = gymnasium.spaces.Discrete(5)
        self._rng = np.random.default_rng()
        self._target, self._t = 0, 0

    def observation_space(self, agent: str) -> gymnasium.Space:
        return self._obs

    def action_space(self, agent: str) -> gymnasium.Space:
        return self._act

    def reset(self, seed=None, options=None):
        if seed is not None:
            self._rng = np.random.default_rng(seed)
            self._act.seed(seed)
        self.agents = list(self.possible_agents)
        self._target, self._t = int(self._rng.integers(5)), 0
        return {a: np.zeros(1, np.float32) for a in self.agents}, {a: {} for a in self.agents}

    def step(self, actions):
        self._t += 1
        hit = float(any(int(a) == self._target for a in actions.values()))
        agents, over = self.agents, self._t >= self.max_cycles
        if over:
            self.agents = []
        obs = {a: np.array([hit], np.float32) for a in agents}
        return obs, {a: hit for a in agents}, {a: False for a in agents}, \
            {a: over for a in agents}, {a: {} for a in agents}  # fmt: skip


def main() -> None:
    marl.register("example/guess_the_number-v0", GuessTheNumber, max_cycles=5)
    spec = marl.env_spec("example/guess_the_number-v0")
    print(spec.env_id, spec.agents, spec.teams)

    from marl.envs.check import check_env

    for result in check_env("example/guess_the_number-v0"):
        print(result.rule, "passed" if result.passed else f"FAILED: {result.message}")

    vec = marl.make_vec("example/guess_the_number-v0", num_envs=4, seed=0)
    step = vec.step(np.zeros((4, 2), dtype=int))
    print("obs", step.obs.shape, "reward", step.reward.shape)


if __name__ == "__main__":
    main()
