"""The language task: a reward model of answers learned from preferences, and PPO of the
character GRU against it with a KL penalty to the SFT model.

The hidden rule the synthetic annotator prefers by: `rule_score(answer)` = 1 if the answer
ends with a period, minus its length over `RULE_LENGTH` characters (shorter answers that
end with a period score highest). The reward model never sees the rule, only labels.

PPO here is token-level: each sampled character pays -β (log π - log π_ref) and the last
one also gets the reward model's score of the whole answer. Advantages are GAE
(`marl.learners.ppo.numerics.gae`, γ = 1) over the answer's characters, and the update is
PPO's clipped surrogate and value loss (`numerics.clipped_surrogate`, `value_loss`),
averaged over the sampled characters only.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from marl.core.seeding import seeded_init, torch_generator
from marl.learners.ppo import numerics as nx
from marl.learners.rlhf import kl
from marl.learners.rlhf.fitting import fit_minibatches
from marl.learners.rlhf.preferences import Preference, PreferenceError
from marl.learners.rlhf.reward_model import preference_loss
from marl.learners.rlhf.text import CharGRU, Samples, encode, pad, sample, token_log_probs

RULE_LENGTH = 80.0
"""Characters of answer that cost one point of the rule's score."""


def rule_score(answer: str) -> float:
    """The hidden rule: 1 if `answer` ends with '.', minus len(answer) / RULE_LENGTH."""
    return float(answer.endswith(".")) - len(answer) / RULE_LENGTH


class AnswerRewardModel(nn.Module):
    """A small GRU over an answer's characters (and a closing newline) -> a scalar reward."""

    def __init__(self, hidden: int = 64, embed: int = 16, seed: int = 0):
        super().__init__()
        with seeded_init(seed):
            self.core = CharGRU(hidden, embed, seed)
            self.out = nn.Linear(hidden, 1)
        self.register_buffer("shift", torch.zeros(()))
        self.register_buffer("scale", torch.ones(()))

    def forward(self, answers: Sequence[str]) -> Tensor:
        """[B] rewards of B answers (standardized once `normalize` has run)."""
        rows = [encode(a + "\n") for a in answers]
        out, _ = self.core.gru(self.core.embed(pad(rows)))
        last = torch.tensor([len(r) - 1 for r in rows])
        raw = self.out(out[torch.arange(len(rows)), last]).squeeze(-1)
        return (raw - self.shift) / self.scale

    @torch.no_grad()
    def normalize(self, answers: Sequence[str]) -> None:
        """Shift and scale the rewards to mean 0, std 1 over `answers` (the reference
        policy's), so the KL coefficient means the same whatever the labels' temperature."""
        self.shift.zero_()
        self.scale.fill_(1.0)
        raw = self(answers)
        self.shift.copy_(raw.mean())
        self.scale.copy_(raw.std().clamp(min=1e-6))


def fit_reward(
    model: AnswerRewardModel,
    answers: dict[str, str],
    labels: Sequence[Preference],
    *,
    epochs: int = 30,
    lr: float = 3e-3,
    batch: int = 64,
    seed: int = 0,
) -> dict[str, float]:
    """Fit `model` to `labels` over the answers (by id) with the Bradley-Terry loss."""
    for p in labels:
        for sid in (p.a, p.b):
            if sid not in answers:
                raise PreferenceError(f"label refers to unknown answer id {sid!r}")

    def batch_loss(idx: Tensor) -> Tensor:
        rows = [labels[i] for i in idx]
        scores = model([answers[p.a] for p in rows] + [answers[p.b] for p in rows])
        target = torch.tensor([p.label for p in rows])
        return preference_loss(scores[: len(rows)], scores[len(rows) :], target)

    total, _ = fit_minibatches(model.parameters(), len(labels), batch_loss, epochs=epochs,
                               lr=lr, batch=batch, seed=seed)  # fmt: skip
    return {"loss": total / len(labels)}


@torch.no_grad()
def agreement(
    model: AnswerRewardModel, answers: dict[str, str], labels: Sequence[Preference]
) -> float:
    """Fraction of non-tied labels whose preferred answer the model scores higher."""
    kept = [p for p in labels if p.label != 0.5]
    a, b = model([answers[p.a] for p in kept]), model([answers[p.b] for p in kept])
    return float(((a > b).float() == torch.tensor([p.label for p in kept])).float().mean())


@dataclass(frozen=True)
class TextPPOConfig:
    """PPO settings of the language task."""

    batch: int = 64
    """Prompts answered per iteration."""
    max_new: int = 80
    """Most characters an answer may have."""
    epochs: int = 4
    """Passes over each batch."""
    minibatches: int = 4
    """Minibatches per pass."""
    lr: float = 1e-3
    """Adam learning rate."""
    clip: float = 0.2
    """PPO ratio clip (and value clip)."""
    vf_coef: float = 0.5
    """Weight of the value loss."""
    gae_lambda: float = 0.95
    """GAE lambda over an answer's characters (γ = 1)."""
    kl_coef: float = 0.2
    """Initial β of the per-character KL penalty."""
    kl_target: float = 3.0
    """Target KL(π || π_ref) per answer (nats) that β is adapted toward; 0: β stays fixed."""
    kl_horizon: int = 256
    """Answers over which the controller can move β by at most 20%."""


class TextPPO:
    """PPO of a `CharGRU` against an answer reward model, with a KL penalty to its start."""

    def __init__(
        self, policy: CharGRU, reward: AnswerRewardModel, config: TextPPOConfig, seed: int
    ):
        self.policy, self.reward, self.config = policy, reward.requires_grad_(False), config
        self.reference = copy.deepcopy(policy).requires_grad_(False)
        self.optimizer = torch.optim.Adam(policy.parameters(), lr=config.lr, foreach=True)
        self.generator = torch_generator(seed)
        self.beta = config.kl_coef

    def rewards(
        self, samples: Samples, ref_log_probs: Tensor, exact_kl: Tensor
    ) -> tuple[Tensor, dict[str, float]]:
        """[B, L] per-token rewards (KL penalty, plus the answer's score at its last token).

        `exact_kl` [B, L] is KL(π || π_ref) of each position's next-character distribution:
        summed over an answer it has the sampled penalty's expectation with less noise, so
        it is what `kl` reports (`kl_sampled` is the penalty's own sum)."""
        mask = samples.generated
        kl_tokens = kl.sampled(samples.log_probs, ref_log_probs) * mask
        scores = self.reward(samples.answers)
        last = (mask * torch.arange(mask.shape[1])).argmax(1)
        rewards = -self.beta * kl_tokens
        rewards[torch.arange(len(last)), last] += scores
        stats = {
            "reward_learned": float(scores.mean()),
            "kl": float((exact_kl * mask).sum(1).mean()),
            "kl_sampled": float(kl_tokens.sum(1).mean()),
            "true_score": float(np.mean([rule_score(a) for a in samples.answers])),
            "length": float(np.mean([len(a) for a in samples.answers])),
            "period": float(np.mean([a.endswith(".") for a in samples.answers])),
        }
        return rewards, stats

    def iterate(self, prompts: Sequence[str]) -> dict[str, float]:
        """Answer `prompts`, score them, and run the PPO update; the iteration's stats."""
        cfg = self.config
        samples = sample(self.policy, prompts, cfg.max_new, self.generator)
        mask = samples.generated
        with torch.no_grad():
            old_log_probs, logits, values = token_log_probs(self.policy, samples.tokens)
            ref_log_probs, ref_logits, _ = token_log_probs(self.reference, samples.tokens)
            rewards, stats = self.rewards(
                samples._replace(log_probs=old_log_probs),
                ref_log_probs,
                kl.exact(logits, ref_logits),
            )
            values = values * mask
            last = mask & ~torch.cat([mask[:, 1:], torch.zeros_like(mask[:, :1])], 1)
            next_values = torch.cat([values[:, 1:], torch.zeros_like(values[:, :1])], 1) * ~last
            advantages = nx.gae(
                rewards.T, values.T, next_values.T, (last | ~mask).T, 1.0, cfg.gae_lambda
            ).T
        stats |= {"beta": self.beta} | self._update(
            samples.tokens, mask, old_log_probs, values, advantages
        )
        if cfg.kl_target > 0:
            self.beta = kl.adapt_beta(
                self.beta, stats["kl"], cfg.kl_target, len(prompts), cfg.kl_horizon
            )
        return stats

    def _update(
        self,
        tokens: Tensor,
        mask: Tensor,
        old_log_probs: Tensor,
        values: Tensor,
        advantages: Tensor,
    ) -> dict[str, float]:
        cfg, returns = self.config, advantages + values
        totals = {"loss/policy": 0.0, "loss/value": 0.0}
        for _ in range(cfg.epochs):
            order = torch.randperm(len(tokens), generator=self.generator)
            for idx in torch.tensor_split(order, cfg.minibatches):
                log_probs, _, new_values = token_log_probs(self.policy, tokens[idx])
                m = mask[idx]
                adv = nx.standardized(advantages[idx], m)
                surrogate = nx.clipped_surrogate(log_probs - old_log_probs[idx], adv, cfg.clip)
                policy_loss = nx.masked_mean(surrogate, m)
                v = nx.value_loss(new_values, values[idx], returns[idx], cfg.clip)
                value_loss = nx.masked_mean(v, m)
                self.optimizer.zero_grad()
                (policy_loss + cfg.vf_coef * value_loss).backward()
                nn.utils.clip_grad_norm_(self.policy.parameters(), 1.0, foreach=True)
                self.optimizer.step()
                totals["loss/policy"] += float(policy_loss.detach())
                totals["loss/value"] += float(value_loss.detach())
        return {k: v / (cfg.epochs * cfg.minibatches) for k, v in totals.items()}
