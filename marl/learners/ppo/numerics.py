"""Pure numerics of on-policy learning: GAE(lambda), V-trace, Monte-Carlo returns, bootstrapping
targets, running moments, and TRPO's conjugate gradient, Fisher-vector product and line search.

Every function here is a plain function of tensors (no modules, no hidden state), so the
tests check them against hand-worked numbers. Time is the leading axis: `[T, ...]`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
from torch import Tensor


def bootstrap_targets(
    values: Tensor,  # [T, B, N] V(s_t)
    last_values: Tensor,  # [B, N] V(s_T), the state after the rollout
    final_values: Tensor,  # [T, B, N] V(final state) where the episode was truncated at t
    terminated: Tensor,  # [T, B] bool, episode ended by the env at t: no bootstrap
    truncated: Tensor,  # [T, B] bool, episode cut by a time limit at t: bootstrap final value
    next_alive: Tensor,  # [T, B, N] bool, the agent is alive after step t
) -> tuple[Tensor, Tensor]:
    """The value of what follows each step, and where each agent's trajectory ends.

    Returns `(next_values, ends)`, both `[T, B, N]`. `next_values[t]` is V(s_{t+1}) inside an
    episode, V(final_obs) on truncation, and 0 on termination or when the agent died at t
    (alive before, not after, in the same episode). `ends[t]` cuts the lambda-trace.
    """
    next_values = torch.cat([values[1:], last_values[None]], dim=0)
    trunc = truncated[..., None].expand_as(values)
    term = terminated[..., None].expand_as(values)
    done = trunc | term
    died = ~done & ~next_alive
    next_values = torch.where(trunc, final_values, next_values)
    next_values = torch.where(term | died, torch.zeros_like(values), next_values)
    return next_values, done | died


def gae(
    rewards: Tensor,  # [T, ...] reward after the action at t
    values: Tensor,  # [T, ...] V(s_t)
    next_values: Tensor,  # [T, ...] V of the next state, 0 where nothing follows
    ends: Tensor,  # [T, ...] bool, trajectory ends at t (the trace does not cross it)
    gamma: float,
    lam: float,
) -> Tensor:
    """Generalized advantage estimates A_t = sum_k (gamma lam)^k delta_{t+k}, cut at `ends`."""
    deltas = rewards + gamma * next_values - values
    return backward_sum(deltas, (1.0 - ends.to(values.dtype)) * gamma * lam)


def backward_sum(deltas: Tensor, carry: Tensor) -> Tensor:
    """x_t = deltas_t + carry_t x_{t+1}, x_T = 0: the recursion of GAE and V-trace."""
    out = torch.zeros_like(deltas)
    running = torch.zeros_like(deltas[0])
    for t in range(deltas.shape[0] - 1, -1, -1):
        running = deltas[t] + carry[t] * running
        out[t] = running
    return out


def vtrace(
    rewards: Tensor,  # [T, ...] reward after the action at t
    values: Tensor,  # [T, ...] V(s_t) of the learner's critic
    next_values: Tensor,  # [T, ...] V of the next state, 0 where nothing follows
    ends: Tensor,  # [T, ...] bool, trajectory ends at t (the trace does not cross it)
    log_rhos: Tensor,  # [T, ...] log pi(a_t|s_t) - log mu(a_t|s_t), learner over actor
    gamma: float,
    rho_bar: float = 1.0,
    c_bar: float = 1.0,
    lam: float = 1.0,
) -> tuple[Tensor, Tensor]:
    """V-trace targets and policy-gradient advantages (Espeholt et al. 2018, eq. 1 and 4).

    With rho_t = min(rho_bar, e^log_rho) and c_t = lam min(c_bar, e^log_rho):
    v_t = V_t + delta_t + gamma c_t (v_{t+1} - V_{t+1}), delta_t = rho_t (r_t + gamma V'_t - V_t),
    and the advantage rho_t (r_t + gamma v'_t - V_t), where V'_t = `next_values[t]` and
    v'_t = v_{t+1} inside a trajectory, `next_values[t]` where it ends or the rollout does.
    `ends` and `next_values` come from `bootstrap_targets`, so a termination cuts the trace
    and a truncation bootstraps from V(final obs), as in `gae`. Returns `(vs, advantages)`.
    """
    ratios = torch.exp(log_rhos)
    rhos = torch.clamp(ratios, max=rho_bar)
    cs = lam * torch.clamp(ratios, max=c_bar)
    deltas = rhos * (rewards + gamma * next_values - values)
    vs = values + backward_sum(deltas, (1.0 - ends.to(values.dtype)) * gamma * cs)
    following = torch.cat([vs[1:], next_values[-1:]], dim=0)
    following = torch.where(ends, next_values, following)
    return vs, rhos * (rewards + gamma * following - values)


def clipped_surrogate(log_ratio: Tensor, advantages: Tensor, clip: float) -> Tensor:
    """PPO's per-sample policy loss: -min(r A, clip(r, 1-clip, 1+clip) A), r = exp(log_ratio)."""
    ratio = torch.exp(log_ratio)
    unclipped = ratio * advantages
    clipped = torch.clamp(ratio, 1.0 - clip, 1.0 + clip) * advantages
    return -torch.min(unclipped, clipped)


def value_loss(values: Tensor, old_values: Tensor, returns: Tensor, clip: float | None) -> Tensor:
    """Per-sample 0.5 (V - R)^2; with `clip`, the max against V kept within clip of old V."""
    loss = (values - returns) ** 2
    if clip is not None:
        kept = old_values + torch.clamp(values - old_values, -clip, clip)
        loss = torch.max(loss, (kept - returns) ** 2)
    return 0.5 * loss


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Mean of `x` over entries where `mask` is true (0 when none are)."""
    return alive_means([x], mask)[0]


def alive_means(terms: Sequence[Tensor], alive: Tensor) -> list[Tensor]:
    """The mean of each of `terms` over entries where `alive` is true (0 when none are),
    the mask's weights made once."""
    weights = alive.to(terms[0].dtype)
    count = weights.sum().clamp(min=1.0)
    return [(x * weights).sum() / count for x in terms]


def standardized(advantages: Tensor, alive: Tensor) -> Tensor:
    """Advantages shifted and scaled to mean 0, std 1 over the alive entries."""
    mean = masked_mean(advantages, alive)
    std = masked_mean((advantages - mean) ** 2, alive).sqrt()
    return (advantages - mean) / (std + 1e-8)


def ppo_stats(
    means: Sequence[Tensor], log_ratio: Tensor, alive: Tensor, clip: float
) -> dict[str, Tensor]:
    """PPO's minibatch stats from the alive means of its (policy, value, entropy) terms and
    the log-ratios: the losses, entropy, approximate KL and the fraction of clipped ratios."""
    ratio = log_ratio.exp()
    kl, clipped = alive_means([(ratio - 1) - log_ratio, ((ratio - 1).abs() > clip).float()], alive)
    names = ("loss/policy", "loss/value", "entropy", "approx_kl", "clip_frac")
    return dict(zip(names, [m.detach() for m in means] + [kl, clipped], strict=True))


def explained_variance(predicted: Tensor, target: Tensor, mask: Tensor) -> float:
    """1 - Var[target - predicted] / Var[target] over masked entries (nan if Var[target]=0)."""
    y, p = target[mask].double(), predicted[mask].double()
    var_y = y.var(unbiased=False) if y.numel() else torch.tensor(0.0)
    if var_y == 0:
        return float("nan")
    return float(1.0 - (y - p).var(unbiased=False) / var_y)


class Moments(NamedTuple):
    """Running mean and variance of a stream of scalars (float64 scalars)."""

    mean: Tensor  # [] running mean
    var: Tensor  # [] running (population) variance
    count: Tensor  # [] number of samples seen (starts at a tiny epsilon)


def init_moments() -> Moments:
    """Moments before any data: mean 0, variance 1, a negligible count."""
    f64 = torch.float64
    return Moments(
        torch.zeros((), dtype=f64), torch.ones((), dtype=f64), torch.tensor(1e-4, dtype=f64)
    )


def update_moments(moments: Moments, x: Tensor) -> Moments:
    """Fold a batch of samples into the running moments (Chan et al.'s parallel formula)."""
    x = x.detach().double().flatten()
    if x.numel() == 0:
        return moments
    n = torch.tensor(float(x.numel()), dtype=torch.float64)
    batch_mean, batch_var = x.mean(), x.var(unbiased=False)
    total = moments.count + n
    delta = batch_mean - moments.mean
    mean = moments.mean + delta * n / total
    m2 = moments.var * moments.count + batch_var * n + delta**2 * moments.count * n / total
    return Moments(mean, m2 / total, total)


def normalize(x: Tensor, moments: Moments, eps: float = 1e-8) -> Tensor:
    """(x - mean) / std under the running moments, in `x`'s dtype."""
    std = torch.sqrt(moments.var + eps)
    return ((x.double() - moments.mean) / std).to(x.dtype)


def denormalize(x: Tensor, moments: Moments, eps: float = 1e-8) -> Tensor:
    """Invert `normalize`."""
    std = torch.sqrt(moments.var + eps)
    return (x.double() * std + moments.mean).to(x.dtype)


def discounted_returns(
    rewards: Tensor,  # [T, ...] reward after the action at t
    next_values: Tensor,  # [T, ...] value to bootstrap from where a trajectory ends at t
    ends: Tensor,  # [T, ...] bool, trajectory ends at t
    gamma: float,
) -> Tensor:
    """Monte-Carlo returns G_t = r_t + gamma * (next_values_t if ends_t else G_{t+1}).

    With `bootstrap_targets`' output, `next_values` is 0 at termination (the return is cut)
    and V(final_obs) at truncation (the return is bootstrapped); after the last step the
    return is bootstrapped from `next_values[T-1]` (V of the state after the rollout).
    """
    returns = torch.zeros_like(rewards)
    running = next_values[-1]
    for t in range(rewards.shape[0] - 1, -1, -1):
        running = rewards[t] + gamma * torch.where(ends[t], next_values[t], running)
        returns[t] = running
    return returns


def conjugate_gradient(
    matrix_vector: Callable[[Tensor], Tensor], b: Tensor, iters: int, tol: float = 1e-10
) -> Tensor:
    """Approximately solve A x = b for symmetric positive-definite A given only x -> A x.

    Plain conjugate gradient from x = 0: at most `iters` iterations, stopping once the
    squared residual is below `tol`.
    """
    x = torch.zeros_like(b)
    residual = b.clone()
    direction = b.clone()
    rr = residual @ residual
    for _ in range(iters):
        if rr < tol:
            break
        a_dir = matrix_vector(direction)
        alpha = rr / (direction @ a_dir)
        x = x + alpha * direction
        residual = residual - alpha * a_dir
        new_rr = residual @ residual
        direction = residual + (new_rr / rr) * direction
        rr = new_rr
    return x


def fisher_vector_product(
    kl: Tensor, params: Sequence[Tensor], damping: float = 0.0
) -> Callable[[Tensor], Tensor]:
    """v -> (H + damping I) v, H the Hessian of `kl` (a scalar) in the flattened `params`.

    `kl` is the mean KL(pi_old || pi_theta) at theta = old: there its Hessian is the Fisher
    information matrix, and this is TRPO's Fisher-vector product (two backward passes, no
    matrix is formed).
    """
    grads = torch.autograd.grad(kl, list(params), create_graph=True)
    flat = torch.cat([g.reshape(-1) for g in grads])

    def product(v: Tensor) -> Tensor:
        hv = torch.autograd.grad(flat @ v, list(params), retain_graph=True)
        return torch.cat([h.reshape(-1) for h in hv]) + damping * v

    return product


def backtracking_line_search(
    evaluate: Callable[[float], tuple[float, float]],
    max_kl: float,
    backtracks: int,
    shrink: float = 0.5,
) -> tuple[float, int]:
    """The largest step fraction shrink^k (k < backtracks) that `evaluate` accepts.

    `evaluate(fraction) -> (improvement, kl)` scores the step `fraction * full_step`: a
    fraction is accepted when the surrogate improves (> 0) and the KL stays within `max_kl`.
    Returns `(fraction, k)`; `(0.0, backtracks)` when every fraction is rejected (no step).
    """
    fraction = 1.0
    for k in range(backtracks):
        improvement, kl = evaluate(fraction)
        if kl <= max_kl and improvement > 0:
            return fraction, k
        fraction *= shrink
    return 0.0, backtracks
