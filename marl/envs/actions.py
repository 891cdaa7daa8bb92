"""Check every action against its agent's action space before an env sees it.

Without this, a bad action fails deep inside the env (mpe2's `AssertionError: action is not
in action space`, `KeyError: 'agent_1'`) or, worse, is silently accepted (`step(2.7)` playing
column 2, an OpenSpiel game failing in C++ on an occupied cell). `marl.make` wraps each env
in `CheckedAEC` or `CheckedParallel`, so the error names the agent, the action and the space
instead, or, for a turn-based game whose info gives the mover's action mask (OpenSpiel's,
marl's board games), the legal actions when the move is masked out.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pettingzoo.utils.wrappers import BaseParallelWrapper, BaseWrapper

from marl.core.actions import ActionError, check_action, describe


def info_mask(infos: Mapping[str, Any], agent: str) -> Any:
    """`agent`'s action mask in an env's infos, or None."""
    info = infos.get(agent)
    return info.get("action_mask") if isinstance(info, Mapping) else None


class CheckedAEC(BaseWrapper):
    """An AEC env whose `step` refuses an action outside the acting agent's space, or one
    its action mask (in the agent's info) rules out."""

    def step(self, action: Any) -> None:
        """Check the acting agent's action, then step (a finished agent's None passes)."""
        agent = self.agent_selection
        if not (self.terminations.get(agent) or self.truncations.get(agent)):
            check_action(agent, action, self.action_space(agent), info_mask(self.infos, agent))
        self.env.step(action)


class CheckedParallel(BaseParallelWrapper):
    """A parallel env whose `step` refuses a missing, unknown or out-of-space action. (Masks
    are not enforced here: a parallel env's info mask may be advice, as gymnasium Taxi's
    "actions that change the state" are; a turn-based game's parallel form checks them
    in its `CheckedAEC`.)"""

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
