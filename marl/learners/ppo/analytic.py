"""PPO's minibatch gradient in closed form, for feedforward tanh-MLP actor-critics with
discrete actions: what autograd computes, without recording and replaying a graph.

At JaxMARL's settings (1,536 rows through two 64-64 MLPs, a masked log-softmax, the clipped
losses) recording a minibatch step's graph and replaying its backward cost a third of the
step. Here the loss's derivative with respect to the logits and the values is written out
(a few elementwise ops), and each MLP is differentiated layer by layer (`mlp_backward`: two
matrix products, a sum and a fused `tanh_backward` per layer): one step costs 2.0 ms of
CPU where autograd's took 2.7 (one thread; docs/speed.md).
`--seeds K`'s stacked nets take the same path: grouped layers (`GroupedLinear`, one batched
product for K seeds) and the loss's reductions per seed under `vmap`.
The gradients equal autograd's up to float32 rounding (`tests/test_ppo.py` compares them
over masks, dead agents, per-agent networks, MAPPO critics and every loss option;
`tests/test_seeds.py` trains stacked seeds both ways), so a run is another sample of the
same training, not the same bits as `gradients = "autograd"`.

Derivatives used (r = exp(log pi(a) - old log pi(a)), A the minibatch's advantages, w the
alive weights over their count, H the entropy, p the policy):
- policy loss -min(r A, clip(r) A): d/d log pi(a) = -w A r where r A <= clip(r) A, else 0;
- value loss 0.5 max((V - R)^2, (V_clip - R)^2): d/dV = w (V - R) where the first is the
  larger, else w (V_clip - R) where V moved at most the clip (0 where it was clipped);
- log pi(a) by logit j: [j = a] - p_j; entropy H by logit j: -p_j (log p_j + H).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn
from torch.func import vmap

from marl.learners.ppo import numerics as nx
from marl.learners.ppo.activation import Tanh, tanh_
from marl.learners.ppo.config import PPOConfig
from marl.learners.ppo.nets import GroupedLinear, MultiAgentActorCritic, mask_logits
from marl.learners.ppo.rollout import Batch

Layer = nn.Linear | GroupedLinear
_LINEARS = (nn.Linear, GroupedLinear)  # the layers the closed form knows (`_tanh_mlp`: exactly)


def applies(net: MultiAgentActorCritic, cfg: PPOConfig) -> bool:
    """Whether `update` takes the closed-form gradient for `net` (else autograd): asked
    for, and every group's actor and critic are `mlp`'s tanh MLPs (linear, tanh, ...,
    linear) as `ActorCritic` builds them: no GRU, no log-std, no other layer."""
    if cfg.gradients != "analytic" or net.continuous:
        return False
    return all(
        sub.gru is None and _tanh_mlp([*sub.body, sub.head]) and _tanh_mlp(list(sub.critic))
        for sub in net.nets
    )


def _tanh_mlp(layers: list[nn.Module]) -> bool:
    """Whether `layers` alternate linear and `mlp`'s `Tanh`, starting and ending linear."""
    kinds = [type(m) for m in layers]
    return len(kinds) % 2 == 1 and all(
        kind in _LINEARS if i % 2 == 0 else kind is Tanh for i, kind in enumerate(kinds)
    )


def linears(module: nn.Module) -> list[Layer]:
    """The linear layers of an `mlp` (tanh between them), in order: `nn.Linear`, or the
    `GroupedLinear` of K seeds' stacked layers."""
    return [m for m in module.modules() if isinstance(m, _LINEARS)]


def mlp_forward(layers: list[Layer], x: Tensor) -> list[Tensor]:
    """The input and every layer's output of a tanh MLP (the last one linear): rows `[M, *]`,
    or `[K, M, *]` through K seeds' grouped layers."""
    outputs = [x]
    for i, layer in enumerate(layers):
        if layer.weight.dim() == 2:
            h = torch.addmm(layer.bias, outputs[-1], layer.weight.t())
        else:  # GroupedLinear's own product
            h = torch.baddbmm(layer.bias[:, None], outputs[-1], layer.weight.transpose(1, 2))
        outputs.append(tanh_(h) if i < len(layers) - 1 else h)
    return outputs


def mlp_backward(layers: list[Layer], outputs: list[Tensor], grad: Tensor) -> None:
    """Set each layer's `.grad` from `grad` (`[M, out]` or `[K, M, out]`), the loss's
    gradient at the MLP's output, back through the layers whose `outputs` `mlp_forward`
    gave."""
    for i in reversed(range(len(layers))):
        layer = layers[i]
        if layer.weight.requires_grad:  # a frozen layer keeps no gradient, as with autograd
            layer.weight.grad = grad.transpose(-1, -2) @ outputs[i]
        if layer.bias.requires_grad:
            layer.bias.grad = grad.sum(-2)
        if i:  # aten's fused grad * (1 - tanh^2), as autograd's tanh node computes it
            grad = torch.ops.aten.tanh_backward(grad @ layer.weight, outputs[i])


def log_softmax(logits: Tensor) -> Tensor:
    """`torch.log_softmax(logits, -1)` computed across rows: torch's CPU kernel over a short
    last axis (a few actions) is 6x slower than the one over a leading axis (94 against 15 us
    at 1,536 x 5, one thread). That kernel rounds a row by where it sits (vectorized body or
    tail of the axes after the reduced one), so it must not see a seeds' axis there: under
    `--seeds`' vmap the seeds' axis stays in front, and a seed's result does not depend on
    its block's size (`tests/test_seeds.py` checks the split)."""
    return torch.log_softmax(logits.movedim(-1, 0), 0).movedim(0, -1)


def loss_gradients(
    logits: Tensor, values: Tensor, batch: Batch, cfg: PPOConfig
) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
    """The PPO loss's gradient by `logits` `[..., N, A]` and `values` `[..., N]` on `batch`,
    and the loss stats `ppo_objective` reports."""
    alive, advantages = batch.alive, batch.advantages
    weights = alive.to(values.dtype)
    weights = weights / weights.sum().clamp(min=1.0)
    if cfg.normalize_advantages:
        advantages = nx.standardized(advantages, alive)
    log_p = log_softmax(mask_logits(logits, batch.action_mask))
    p = log_p.exp()
    entropy = -(p * log_p).sum(-1)
    actions = batch.actions.long()[..., None]
    log_ratio = log_p.gather(-1, actions).squeeze(-1) - batch.log_probs
    ratio = log_ratio.exp()
    unclipped = ratio * advantages
    clipped = ratio.clamp(1.0 - cfg.clip, 1.0 + cfg.clip) * advantages
    grad_chosen = torch.where(unclipped <= clipped, -weights * advantages * ratio, 0.0)
    grad_logits = p * ((cfg.ent_coef * weights)[..., None] * (log_p + entropy[..., None]))
    grad_logits = grad_logits - p * grad_chosen[..., None]
    grad_logits.scatter_add_(-1, actions, grad_chosen[..., None])
    grad_logits = torch.where(batch.action_mask, grad_logits, 0.0)
    value_loss, grad_values = value_loss_gradient(values, batch, cfg)
    terms = (-torch.minimum(unclipped, clipped), value_loss, entropy)
    stats = nx.ppo_stats(nx.alive_means(terms, alive), log_ratio, alive, cfg.clip)
    return grad_logits, grad_values * (cfg.vf_coef * weights), stats


def value_loss_gradient(values: Tensor, batch: Batch, cfg: PPOConfig) -> tuple[Tensor, Tensor]:
    """`nx.value_loss` per sample, and its derivative by `values`."""
    error = values - batch.returns
    loss = error * error
    if not cfg.clip_value_loss:
        return 0.5 * loss, error
    moved = values - batch.values
    clipped_error = batch.values + moved.clamp(-cfg.clip, cfg.clip) - batch.returns
    clipped_loss = clipped_error * clipped_error
    clipped_grad = clipped_error * (moved.abs() <= cfg.clip)
    grad = torch.where(loss > clipped_loss, error, clipped_grad)
    tie = loss == clipped_loss  # torch.maximum's gradient splits evenly between the two
    grad = torch.where(tie, 0.5 * (error + clipped_grad), grad)
    return 0.5 * torch.maximum(loss, clipped_loss), grad


def minibatch_gradients(
    net: MultiAgentActorCritic, batch: Batch, cfg: PPOConfig
) -> dict[str, Tensor]:
    """Set every parameter's `.grad` to the PPO loss's gradient on `batch` (a feedforward
    minibatch `[1, M, ...]`); returns the loss stats. A net of K seeds' grouped layers
    takes each seed's minibatch `[K, 1, M, ...]` and gives each seed's gradient and stats
    (`[K]`): the loss's reductions run per seed."""
    groups = net.groups
    seeds = isinstance(net.nets[0].head, GroupedLinear)
    net.zero_grad()  # every parameter gets its gradient below; none keeps a stale one
    with torch.no_grad():
        forward = [_group_forward(net, batch, g, seeds) for g in range(len(net.nets))]
        logits = groups.scatter([actor.out for actor, _ in forward], dim=-2)
        values = groups.scatter([critic.out.squeeze(-1) for _, critic in forward], dim=-1)
        gradients = vmap(loss_gradients, in_dims=(0, 0, 0, None)) if seeds else loss_gradients
        grad_logits, grad_values, stats = gradients(logits, values, batch, cfg)
        for g, (actor, critic) in enumerate(forward):
            rows = actor.outputs[0].shape[:-1]
            actor.backward(groups.gather(grad_logits, g).reshape(*rows, -1))
            critic.backward(groups.gather(grad_values[..., None], g).reshape(*rows, 1))
    return stats


class _Pass(NamedTuple):
    """One MLP's forward on a group's rows: its layers, their outputs (`mlp_forward`), and
    the last output shaped `[..., G, out]` as the group's agents."""

    layers: list[Layer]
    outputs: list[Tensor]
    out: Tensor

    def backward(self, grad: Tensor) -> None:
        """`mlp_backward` from the loss's gradient at the rows' outputs."""
        mlp_backward(self.layers, self.outputs, grad)


def _group_forward(
    net: MultiAgentActorCritic, batch: Batch, g: int, seeds: bool
) -> tuple[_Pass, _Pass]:
    """Group `g`'s actor and critic passes on `batch`'s rows (`[M, *]`, or `[K, M, *]` for K
    `seeds`)."""
    sub = net.nets[g]
    actor_in = net.actor_inputs(batch.obs, g)
    local = net.critic_input == "local"  # the actor's input: not composed twice
    critic_in = actor_in if local else net.critic_inputs(batch.obs, batch.state, g)
    lead, agents = actor_in.shape[:1] if seeds else (), actor_in.shape[:-1]

    def run(layers: list[Layer], x: Tensor) -> _Pass:
        outputs = mlp_forward(layers, x.reshape(*lead, -1, x.shape[-1]))
        return _Pass(layers, outputs, outputs[-1].reshape(*agents, -1))

    return run(linears(sub.body) + [sub.head], actor_in), run(linears(sub.critic), critic_in)
