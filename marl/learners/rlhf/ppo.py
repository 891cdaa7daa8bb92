"""PPO against a learned reward with a per-step KL penalty to a frozen reference policy.

This is the PPO learner (`marl.learners.ppo`) with one change, made where the rollouts of
every worker meet the learner: before GAE, each step's reward becomes

    r_t = r_model(o_t, a_t) - r_absorb - β (log π(a_t|o_t) - log π_ref(a_t|o_t))

(`reward_model = ""` keeps the env's true reward and only adds the penalty: the baseline a
learned reward is measured against). The policy starts from the SFT network, which stays
frozen as π_ref. Collection, checkpoints, resume and metrics are the normal run's: the
episode returns (`return/<team>`) are the env's true reward, beside `rlhf/kl` (exact
KL(π || π_ref) averaged over the visited states), `rlhf/kl_sampled`, `rlhf/reward_learned`
(per step, with a reward model), `rlhf/reward_true` (per step) and `rlhf/beta`.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from marl.core.config import check_fields
from marl.core.spec import VecSpec
from marl.envs.vector import learner_env
from marl.learners.ppo.config import PPOConfig
from marl.learners.ppo.learner import Experience, PPOLearner
from marl.learners.ppo.nets import mask_logits
from marl.learners.rlhf import kl, reward_model, sft


@dataclass(frozen=True)
class RLHFConfig(PPOConfig):
    """PPO's settings, plus the reference policy, the reward model and the KL penalty."""

    reference: str = ""
    """SFT file (`marl rlhf sft`): the initial policy and the frozen reference of the KL."""
    reward_model: str = ""
    """Reward-model file (`marl rlhf reward`); empty: the env's true reward."""
    kl_coef: float = 0.05
    """β, the weight of the per-step KL penalty (the initial β when `kl_target` > 0)."""
    kl_target: float = 0.0
    """Adapt β toward this mean per-step KL (Ziegler et al.'s controller); 0: β stays fixed."""
    kl_horizon: int = 10_000
    """Env steps over which the controller can move β by at most 20%."""

    def validate(self) -> None:
        """PPO's checks, then the RLHF settings'."""
        super().validate()
        check_fields(
            self,
            [
                (
                    "reference",
                    bool(self.reference) or self.kl_coef == 0,
                    "an SFT file when kl_coef > 0",
                ),
                ("kl_coef", self.kl_coef >= 0, ">= 0"),
                ("kl_target", self.kl_target >= 0, ">= 0 (0: fixed β)"),
                (
                    "kl_coef",
                    self.kl_target == 0 or self.kl_coef > 0,
                    "> 0 when kl_target > 0 (the controller scales β: from 0 it stays 0)",
                ),
                ("kl_horizon", self.kl_horizon >= 1, ">= 1"),
            ],
        )


CONFIG = RLHFConfig
ALGOS: dict[str, dict[str, Any]] = {"rlhf_ppo": {}}


class RLHFPPOLearner(PPOLearner):
    """PPO whose rollouts are scored by a reward model and a KL penalty to π_ref."""

    def __init__(self, spec: VecSpec, config: RLHFConfig, seed: int, device: Any = "cpu"):
        super().__init__(spec, config, seed, device)
        if spec.n_agents != 1 or self.net.continuous:
            raise ValueError("rlhf_ppo takes one-agent envs with discrete actions")
        self.reward_model = None
        if config.reward_model:
            self.reward_model = reward_model.load(config.reward_model).to(self.device)
        self.reference = None
        if config.reference:
            built_for = f"rlhf_ppo with hidden={list(config.hidden)}"
            sft.load_into(self.net, config.reference, None, built_for)
            self.reference = copy.deepcopy(self.net).requires_grad_(False)
        self.beta = config.kl_coef

    def _kl_terms(self, batch: Any) -> tuple[Tensor, Tensor]:
        """Per-step sampled KL estimate log π(a|o) - log π_ref(a|o) [T, B, N] at the
        collected actions, and the exact KL(π || π_ref) of each step's distributions."""
        logits, _ = self.net.actor(batch.obs, batch.hidden, batch.starts)
        ref, _ = self.reference.actor(batch.obs, batch.hidden, batch.starts)
        logits = mask_logits(logits, batch.action_mask)
        ref = mask_logits(ref, batch.action_mask)
        ref_log_probs = torch.log_softmax(ref, -1).gather(-1, batch.actions[..., None])
        return kl.sampled(batch.log_probs, ref_log_probs.squeeze(-1)), kl.exact(logits, ref)

    def _rescore(self, e: Experience) -> tuple[Experience, dict[str, float]]:
        """The experience with its rewards replaced as the module doc says, and its stats."""
        batch, true = e.rollout.batch, e.rollout.rewards
        stats = {"rlhf/reward_true": float(true.mean())}
        with torch.no_grad():
            rewards = true
            if self.reward_model is not None:
                rewards = self.reward_model.shaped(batch.obs, batch.actions)
                stats["rlhf/reward_learned"] = float(rewards.mean())
            if self.reference is not None:
                sampled, exact = self._kl_terms(batch)
                rewards = rewards - self.beta * sampled
                stats["rlhf/kl"] = float(exact.mean())
                stats["rlhf/kl_sampled"] = float(sampled.mean())
        return e._replace(rollout=e.rollout._replace(rewards=rewards)), stats

    def learn(self, experience: Sequence[Experience]) -> dict[str, float]:
        """Rescore every worker's rollout, run PPO's update, then adapt β."""
        parts = [self._rescore(e) for e in experience]
        stats = {k: sum(p[1][k] for p in parts) / len(parts) for k in parts[0][1]}
        stats |= {"rlhf/beta": self.beta}
        before = self.env_steps
        stats = super().learn([p[0] for p in parts]) | stats
        cfg = self.config
        if cfg.kl_target > 0 and self.reference is not None:
            self.beta = kl.adapt_beta(
                self.beta, stats["rlhf/kl"], cfg.kl_target, self.env_steps - before, cfg.kl_horizon
            )
        return stats

    def state_dict(self) -> dict[str, Any]:
        """PPO's state and the current β."""
        return super().state_dict() | {"beta": self.beta}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore `state_dict()`'s output."""
        super().load_state_dict(state)
        self.beta = float(state["beta"])


def make_learner(
    spec: VecSpec, config: RLHFConfig, seed: int, device: Any = "cpu"
) -> RLHFPPOLearner:
    """An RLHF PPO learner for `spec`."""
    return RLHFPPOLearner(spec, config, seed, device)


make_env = learner_env
"""The vector env a worker steps (`marl.envs.vector.learner_env`), as PPO's."""
