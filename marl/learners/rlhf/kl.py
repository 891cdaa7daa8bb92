"""The KL penalty to a frozen reference policy: per-step estimators and β's controller.

RLHF's PPO maximizes r - β KL(π || π_ref). Per step it pays -β (log π(a|s) - log π_ref(a|s))
for the sampled action a ~ π: an unbiased estimate of KL(π(.|s) || π_ref(.|s)) whose
expectation over a is the exact categorical KL (`exact`). β is fixed, or adapted toward a
target KL with the proportional controller of Ziegler et al. (2019).
"""

from __future__ import annotations

import torch
from torch import Tensor

from marl.learners.ppo.nets import categorical_kl


def sampled(log_probs: Tensor, ref_log_probs: Tensor) -> Tensor:
    """Per-step estimate log π(a|s) - log π_ref(a|s) of KL(π || π_ref) at the sampled a."""
    return log_probs - ref_log_probs


def exact(logits: Tensor, ref_logits: Tensor) -> Tensor:
    """KL(π || π_ref) `[...]` of two categoricals given as (masked) logits `[..., A]`."""
    return categorical_kl(logits, ref_logits)


def expected_sampled(logits: Tensor, ref_logits: Tensor) -> Tensor:
    """E_{a~π}[log π(a) - log π_ref(a)], the sampled estimator's mean summed over all actions
    (equals `exact`: the check that the per-step penalty is unbiased)."""
    log_p, log_q = torch.log_softmax(logits, -1), torch.log_softmax(ref_logits, -1)
    return (log_p.exp() * sampled(log_p, log_q)).sum(-1)


def adapt_beta(beta: float, kl: float, target: float, steps: int, horizon: int) -> float:
    """Ziegler et al.'s controller: β *= 1 + clip((kl - target) / target, ±0.2) * steps / horizon.

    `kl` is the measured KL of the last `steps` env steps (or sequences); `horizon` sets how
    fast β moves."""
    if target <= 0 or horizon <= 0:
        raise ValueError(f"target={target}, horizon={horizon}: both must be > 0 to adapt β")
    error = min(max((kl - target) / target, -0.2), 0.2)
    return beta * (1.0 + error * steps / horizon)
