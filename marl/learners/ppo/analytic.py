"""PPO's minibatch gradient in closed form, for feedforward tanh-MLP actor-critics with
discrete actions: what autograd computes, without recording and replaying a graph.

At JaxMARL's settings a minibatch step is ~100 small tensor ops (1,536 rows through two
64-64 MLPs, a masked log-softmax, the clipped losses), and autograd's bookkeeping of each
costs about as much as its arithmetic. Here the loss's derivative with respect to the
logits and the values is written out (a few elementwise ops), and each MLP is differentiated
layer by layer (`mlp_backward`: two matrix products, a sum and a fused `tanh_backward` per
layer): one step costs 1.8 ms of CPU where autograd's took 2.7 (one thread; docs/speed.md).
The gradients equal autograd's up to float32 rounding (`tests/test_ppo.py` compares them
over masks, dead agents, per-agent networks, MAPPO critics and every loss option), so a run
is another sample of the same training, not the same bits as `gradients = "autograd"`.

Derivatives used (r = exp(log pi(a) - old log pi(a)), A the minibatch's advantages, w the
alive weights over their count, H the entropy, p the policy):
- policy loss -min(r A, clip(r) A): d/d log pi(a) = -w A r where r A <= clip(r) A, else 0;
- value loss 0.5 max((V - R)^2, (V_clip - R)^2): d/dV = w (V - R) where the first is the
  larger, else w (V_clip - R) where V moved less than the clip (0 where it was clipped);
- log pi(a) by logit j: [j = a] - p_j; entropy H by logit j: -p_j (log p_j + H).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from marl.learners.ppo import numerics as nx
from marl.learners.ppo.config import PPOConfig
from marl.learners.ppo.nets import ActorCritic, MultiAgentActorCritic, mask_logits
from marl.learners.ppo.rollout import Batch


def applies(net: MultiAgentActorCritic, cfg: PPOConfig) -> bool:
    """Whether `update` takes the closed-form gradient for `net` (else autograd)."""
    return cfg.gradients == "analytic" and not cfg.recurrent and not net.continuous


def linears(module: nn.Module) -> list[nn.Linear]:
    """The linear layers of an `mlp` (tanh between them), in order."""
    return [m for m in module.modules() if isinstance(m, nn.Linear)]


def mlp_forward(layers: list[nn.Linear], x: Tensor) -> list[Tensor]:
    """The input and every layer's output `[M, *]` of a tanh MLP (the last one linear)."""
    outputs = [x]
    for i, layer in enumerate(layers):
        h = torch.addmm(layer.bias, outputs[-1], layer.weight.t())
        outputs.append(h.tanh_() if i < len(layers) - 1 else h)
    return outputs


def mlp_backward(layers: list[nn.Linear], outputs: list[Tensor], grad: Tensor) -> None:
    """Set each layer's `.grad` from `grad` `[M, out]`, the loss's gradient at the MLP's
    output, back through the layers whose `outputs` `mlp_forward` gave."""
    for i in reversed(range(len(layers))):
        layer = layers[i]
        layer.weight.grad = grad.t() @ outputs[i]
        layer.bias.grad = grad.sum(0)
        if i:
            grad = torch.ops.aten.tanh_backward(grad @ layer.weight, outputs[i])


def log_softmax(logits: Tensor) -> Tensor:
    """`torch.log_softmax(logits, -1)` computed across rows: torch's CPU kernel over a short
    last axis (a few actions) is 6x slower than the one over a leading axis (94 against 15 us
    at 1,536 x 5, one thread). Not used where seeds must match across block sizes: that
    kernel's rounding depends on where a row sits in the tensor (vector body or tail)."""
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
    value_loss, grad_values = _value_loss_gradient(values, batch, cfg)
    terms = (-torch.minimum(unclipped, clipped), value_loss, entropy)
    stats = nx.ppo_stats(nx.alive_means(terms, alive), log_ratio, alive, cfg.clip)
    return grad_logits, grad_values * (cfg.vf_coef * weights), stats


def _value_loss_gradient(values: Tensor, batch: Batch, cfg: PPOConfig) -> tuple[Tensor, Tensor]:
    """`nx.value_loss` per sample, and its derivative by `values`."""
    error = values - batch.returns
    loss = error * error
    if not cfg.clip_value_loss:
        return 0.5 * loss, error
    moved = values - batch.values
    clipped_error = batch.values + moved.clamp(-cfg.clip, cfg.clip) - batch.returns
    clipped_loss = clipped_error * clipped_error
    grad = torch.where(loss >= clipped_loss, error, clipped_error * (moved.abs() <= cfg.clip))
    return 0.5 * torch.maximum(loss, clipped_loss), grad


def minibatch_gradients(
    net: MultiAgentActorCritic, batch: Batch, cfg: PPOConfig
) -> dict[str, Tensor]:
    """Set every parameter's `.grad` to the PPO loss's gradient on `batch` (a feedforward
    minibatch `[1, M, ...]`); returns the loss stats."""
    groups = net.groups
    with torch.no_grad():
        forward = [_group_forward(net, sub, batch, g) for g, sub in enumerate(net.nets)]
        logits = groups.scatter([actor[-1] for actor, _, _ in forward], dim=-2)
        values = groups.scatter([critic[-1].squeeze(-1) for _, critic, _ in forward], dim=-1)
        grad_logits, grad_values, stats = loss_gradients(logits, values, batch, cfg)
        for g, (actor, critic, shape) in enumerate(forward):
            sub = net.nets[g]
            rows = shape.numel()
            grad_actor = groups.gather(grad_logits, g).reshape(rows, -1)
            grad_critic = groups.gather(grad_values[..., None], g).reshape(rows, 1)
            mlp_backward(linears(sub.body) + [sub.head], actor, grad_actor)
            mlp_backward(linears(sub.critic), critic, grad_critic)
    return stats


def _group_forward(
    net: MultiAgentActorCritic, sub: ActorCritic, batch: Batch, g: int
) -> tuple[list[Tensor], list[Tensor], torch.Size]:
    """Group `g`'s actor and critic layer outputs on `batch`'s rows, shaped back to
    `[..., G, out]` at the last layer, and the rows' leading shape `[..., G]`."""
    actor_in = net.actor_inputs(batch.obs, g)
    shape = actor_in.shape[:-1]
    local = net.critic_input == "local"  # the actor's input: not composed twice
    critic_in = actor_in if local else net.critic_inputs(batch.obs, batch.state, g)
    actor = mlp_forward(linears(sub.body) + [sub.head], actor_in.reshape(-1, actor_in.shape[-1]))
    critic = mlp_forward(linears(sub.critic), critic_in.reshape(-1, critic_in.shape[-1]))
    actor[-1] = actor[-1].reshape(*shape, -1)
    critic[-1] = critic[-1].reshape(*shape, 1)
    return actor, critic, shape
