"""Check every action against its agent's action space before an env sees it.

Without this, a bad action fails deep inside the env (mpe2's `AssertionError: action is not
in action space`, `KeyError: 'agent_1'`) or, worse, is silently accepted (`step(2.7)` playing
column 2). `marl.make` wraps each env in `CheckedAEC` or `CheckedParallel`, so the error
names the agent, the action and the space instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pettingzoo.utils.wrappers import BaseParallelWrapper, BaseWrapper

from marl.core.actions import ActionError, check_action, describe


class CheckedAEC(BaseWrapper):
    """An AEC env whose `step` refuses an action outside the acting agent's space."""

    def step(self, action: Any) -> None:
        """Check the acting agent's action, then step (a finished agent's None passes)."""
        agent = self.agent_selection
        if not (self.terminations.get(agent) or self.truncations.get(agent)):
            check_action(agent, action, self.action_space(agent))
        self.env.step(action)


class CheckedParallel(BaseParallelWrapper):
    """A parallel env whose `step` refuses a missing, unknown or out-of-space action."""

    def step(self, actions: Mapping[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        """Check there is one valid action per live agent, then step."""
        if not isinstance(actions, Mapping):
            raise ActionError(f"step() takes a dict {{agent: action}}, got {describe(actions)}")
        for agent in self.agents:
            if agent not in actions:
                raise ActionError(
                    f"no action for agent {agent!r} (action space {self.action_space(agent)}); "
                    f"step() needs one action for each agent in env.agents: {self.agents}"
                )
            check_action(agent, actions[agent], self.action_space(agent))
        unknown = [a for a in actions if a not in self.possible_agents]
        if unknown:
            raise ActionError(
                f"actions for unknown agent(s) {unknown}; agents: {self.possible_agents}"
            )
        return self.env.step(actions)
