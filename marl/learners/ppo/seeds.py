"""`--seeds K`: K independent PPO / IPPO / MAPPO runs of one config as one batched computation.

Each seed's network is built as a run of its own would build it (same init stream), then the
K networks become one of grouped layers (`grouped`: weights `[K, out, in]`, one `baddbmm`
per layer; measured faster than `torch.func.vmap` over `functional_call`, docs/speed.md),
and every forward pass runs once for all seeds through the net's own code (its other ops
broadcast over a leading K axis; no second implementation).
The K env batches lie side by side in one vector env (block k seeded as run k's env), so a
step of the env, a forward pass, GAE and a gradient step each serve all K runs at once.

What keeps the runs independent: per-seed generators for actions (the carry holds K),
minibatch permutations (each run's LEARN stream) and env resets (per-block seeds); per-seed
value-norm moments; the loss is the sum of the K losses (no gradient crosses seeds);
gradient-norm clipping per seed; and one Adam over stacked parameters, which is elementwise
and so K Adams. The minibatch gradient is `analytic`'s closed form over the grouped layers
(its reductions per seed under vmap), or autograd of the summed losses with `gradients =
"autograd"`. Only the arithmetic of a batched matmul may differ in the last bits from a
single run's (docs/speed.md measures by how much).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import vmap

from marl.core.checkpoint import load_optimizer
from marl.core.config import ConfigError, config_to_dict
from marl.core.learner import across_seeds, check_seeds, mean_returns
from marl.core.seeding import torch_generator
from marl.core.spec import VecSpec
from marl.learners.ppo import analytic
from marl.learners.ppo import numerics as nx
from marl.learners.ppo.config import PPOConfig
from marl.learners.ppo.learner import Experience, PPOLearner
from marl.learners.ppo.loss import ppo_objective
from marl.learners.ppo.nets import (
    ActorCritic,
    ActorPolicy,
    DivergedError,
    GroupedLinear,
    MultiAgentActorCritic,
    categorical_log_prob,
    categorical_log_prob_entropy,
    exponential_like,
    gaussian_log_prob_entropy,
    mask_logits,
    race,
)
from marl.learners.ppo.rollout import (
    Batch,
    Carry,
    Rollout,
    collect,
    concat_rollouts,
    fresh_carry,
    gae_targets,
    per_group,
    rollout_to,
)


def grouped(nets: Sequence[MultiAgentActorCritic]) -> MultiAgentActorCritic:
    """A copy of `nets[0]` whose layers hold all K nets' weights: each `nn.Linear` becomes a
    `GroupedLinear` and each log-std a `[K, D]` parameter. The net's own code then runs
    all K on inputs with a leading K axis (its other ops broadcast over leading axes); the
    parameter names stay those of one net."""
    net = copy.deepcopy(nets[0])
    for name, module in nets[0].named_modules():
        parent, _, leaf = name.rpartition(".")
        if isinstance(module, nn.Linear):
            layers = [n.get_submodule(name) for n in nets]
            setattr(net.get_submodule(parent), leaf, GroupedLinear(layers))  # type: ignore[arg-type]
        elif isinstance(module, ActorCritic) and module.log_std is not None:
            stds = torch.stack([n.get_submodule(name).log_std.detach() for n in nets])
            net.get_submodule(name).log_std = nn.Parameter(stds)
    return net


class StackedNet:
    """K `MultiAgentActorCritic`s of one shape as one net of grouped layers (`grouped`).

    `act` and `values` take and return the K env blocks side by side (`[K*E, ...]`, as the
    vector env lays them out), so `rollout.collect` drives it as it drives one net; `loss`
    is each seed's `ppo_loss` on its own minibatch.
    """

    def __init__(self, nets: Sequence[MultiAgentActorCritic]):
        self.k = len(nets)
        self.net = grouped(nets)
        self.params = dict(self.net.named_parameters())

    def parameters(self) -> list[Tensor]:
        """The stacked parameters `[K, ...]` (what the optimizer steps)."""
        return list(self.params.values())

    def blocks(self, x: Tensor) -> Tensor:
        """`[K*E, ...] -> [K, E, ...]`."""
        return x.reshape(self.k, x.shape[0] // self.k, *x.shape[1:])

    def initial_hidden(self, num_envs: int) -> Tensor:
        """Zero GRU state `[K*E, N, H]`."""
        return self.net.initial_hidden(num_envs)

    def log_std(self) -> Tensor:
        """Each seed's per-agent log standard deviations `[K, N, D]` (continuous actors)."""
        groups = self.net.groups
        parts = [
            net.log_std[:, None].expand(-1, len(g), -1)
            for net, g in zip(self.net.nets, groups.groups)
        ]
        return groups.scatter(parts, dim=-2)

    def act(self, obs: Tensor, mask: Tensor, hidden: Tensor, starts: Tensor,
            generators: Sequence[torch.Generator], greedy: bool) -> tuple[Tensor, ...]:  # fmt: skip
        """`MultiAgentActorCritic.act` for the K blocks, block k drawing with generator k."""
        out, hidden = self.net.actor(
            self.blocks(obs)[:, None], self.blocks(hidden), self.blocks(starts)[:, None]
        )
        out, mask = out[:, 0], self.blocks(mask)
        if self.net.continuous:
            actions, env_actions, log_probs = self._gaussian(out, generators, greedy)
        else:
            logits = mask_logits(out, mask)
            actions = logits.argmax(-1) if greedy else _draw(logits, generators)
            env_actions, log_probs = actions, categorical_log_prob(logits, actions)
        return tuple(x.flatten(0, 1) for x in (actions, env_actions, log_probs, hidden))

    def _gaussian(self, mean: Tensor, generators: Sequence[torch.Generator],
                  greedy: bool) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
        log_std = self.log_std()[:, None]  # [K, 1, N, D]
        actions = mean
        if not greedy:
            noise = [torch.randn(m.shape, generator=g, device=m.device)
                     for m, g in zip(mean, generators)]  # fmt: skip
            actions = mean + log_std.exp() * torch.stack(noise)
        net = self.net
        env_actions = torch.clamp(actions, net.action_low, net.action_high)
        log_probs, _ = gaussian_log_prob_entropy(mean, log_std, actions, net.dim_mask)
        return actions, env_actions, log_probs

    def values(self, obs: Tensor, state: Tensor) -> Tensor:
        """Values `[K*E, ..., N]` of the K blocks' obs `[K*E, ..., N, O]` and states
        `[K*E, ..., S]` (a rollout's: `[K*E, T+1, ...]`)."""
        return self.net.values(self.blocks(obs), self.blocks(state)).flatten(0, 1)

    def loss(self, batch: Batch, cfg: PPOConfig) -> tuple[Tensor, dict[str, Tensor]]:
        """Each seed's `ppo_loss` `[K]` on its minibatch (`batch` fields `[K, 1, M, ...]`):
        the network runs once for all K; the reductions run per seed under `vmap`."""
        net = self.net
        out, _ = net.actor(batch.obs, batch.hidden, batch.starts)
        if net.continuous:
            log_std = self.log_std()[:, None, None]  # [K, 1, 1, N, D]
            log_probs, entropy = gaussian_log_prob_entropy(
                out, log_std, batch.actions, net.dim_mask
            )
        else:
            log_probs, entropy = categorical_log_prob_entropy(
                mask_logits(out, batch.action_mask), batch.actions
            )
        values = net.values(batch.obs, batch.state)

        def one(lp: Tensor, ent: Tensor, v: Tensor, b: Batch) -> tuple[Tensor, dict[str, Tensor]]:
            return ppo_objective(lp, ent, v, b, cfg)

        return vmap(one)(log_probs, entropy, values, batch)

    def load_into(self, nets: Sequence[nn.Module]) -> None:
        """Copy seed k's parameters into `nets[k]` (a run's own network)."""
        with torch.no_grad():
            for k, net in enumerate(nets):
                for name, p in net.named_parameters():
                    p.copy_(self.params[name][k])

    def load_from(self, nets: Sequence[nn.Module]) -> None:
        """Set seed k's parameters from `nets[k]`."""
        with torch.no_grad():
            for k, net in enumerate(nets):
                for name, p in net.named_parameters():
                    self.params[name][k].copy_(p)


def _draw(logits: Tensor, generators: Sequence[torch.Generator]) -> Tensor:
    """One action per row of each block's logits `[K, E, N, A]`, block k drawn by generator
    k: `sample_categorical`'s draw, so block k gets the actions run k would."""
    probs = torch.softmax(logits, dim=-1)
    exponentials = [exponential_like(p, g) for p, g in zip(probs, generators)]
    return race(probs, torch.stack(exponentials))


def stack_moments(moments: Sequence[nx.Moments], dims: int) -> nx.Moments:
    """K runs' moments as one `Moments` of `[K, 1, ...]` fields (`dims` ones: they broadcast
    over a block's `[K, E, agents]` axes)."""
    shape = (len(moments),) + (1,) * dims
    return nx.Moments(*(torch.stack(xs).reshape(shape) for xs in zip(*moments)))


def seed_major(x: Tensor) -> Tensor:
    """A rollout field `[T, K, E, ...]` as each seed's flattened batch `[K, T*E, ...]` (a
    single run's `flatten_time` order, t-major)."""
    return x.transpose(0, 1).flatten(1, 2)


class SeedsLearner:
    """K PPO-family runs (seeds `seeds`) trained together (follows the Learner protocol).

    `runs[k]` is a `PPOLearner` for seed k: it holds what is not stacked (its LEARN
    generator, value-norm moments, counters) and is what a checkpoint saves per seed, so a
    seed's state is exactly the state of a single run.
    """

    def __init__(self, spec: VecSpec, config: PPOConfig, seeds: Sequence[int], device: Any = "cpu"):
        if config.recurrent:
            raise ConfigError(
                "--seeds trains feedforward PPO/IPPO/MAPPO; recurrent=true is not supported"
            )
        self.spec, self.config, self.seeds = spec, config, list(seeds)
        self.device = torch.device(device)
        self.runs = [PPOLearner(spec, config, s, device) for s in self.seeds]
        self.groups = self.runs[0].groups
        self.net = StackedNet([r.net for r in self.runs])
        self.optimizer = torch.optim.Adam(
            self.net.parameters(), lr=config.lr, eps=1e-5, foreach=True
        )
        self.env_steps = 0

    @property
    def k(self) -> int:
        """Number of seeds."""
        return len(self.seeds)

    # -- acting ---------------------------------------------------------------------------
    def start(self, env: Any, seeds: Sequence[int]) -> Carry:
        """Reset block k of `env` with `seeds[k]`; a generator seeded alike draws its actions."""
        generators = [torch_generator(s, self.device) for s in seeds]
        step = env.reset(seed=list(seeds))
        return fresh_carry(step, self.net, self.spec.n_agents, self.device, generators)

    def collect(self, env: Any, carry: Carry) -> tuple[Experience, Carry]:
        """`rollout_len` steps of all K blocks of envs with the sampled policies."""
        try:
            rollout, carry, finished = collect(self.net, env, carry, self.config.rollout_len)  # type: ignore[arg-type]
        except DivergedError:
            self._name_diverged()
            raise
        return Experience(rollout, finished), carry

    def _name_diverged(self) -> None:
        """Raise a `DivergedError` naming the seeds whose weights are not finite, if any."""
        finite = torch.stack(
            [torch.isfinite(p.detach().flatten(1)).all(1) for p in self.net.params.values()]
        ).all(0)
        bad = [s for s, ok in zip(self.seeds, finite.tolist()) if not ok]
        if bad:
            raise DivergedError(
                f"the policies of seed(s) {bad} have NaN or infinite weights: their training "
                "diverged (try a lower lr; the other seeds' runs were fine)"
            )

    def weights(self) -> dict[str, Tensor]:
        """The stacked parameters `[K, ...]`, on the CPU."""
        return {k: v.detach().cpu() for k, v in self.net.params.items()}

    def load_weights(self, weights: dict[str, Tensor]) -> None:
        """Act with `weights()` from now on."""
        with torch.no_grad():
            for name, p in self.net.params.items():
                p.copy_(weights[name])

    # -- learning -------------------------------------------------------------------------
    def learn(self, experience: Sequence[Experience]) -> dict[str, float]:
        """GAE targets per seed block, then K PPO updates as one."""
        cfg = self.config
        lr = self.runs[0]._set_learning_rate()
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        rollout = rollout_to(concat_rollouts([e.rollout for e in experience]), self.device)
        batch, seed_stats = self._batch(rollout)
        update_stats = seeds_update(self.net, self.optimizer, batch, cfg,
                                    [r.generator for r in self.runs])  # fmt: skip
        t, b = rollout.rewards.shape[:2]
        self.env_steps += t * b // self.k
        for run in self.runs:
            run.env_steps = self.env_steps
        per_seed = [s | u for s, u in zip(seed_stats, update_stats)]
        for stats, returns in zip(per_seed, self._episodes(rollout, experience)):
            stats |= {"episodes": float(returns.shape[0])} | mean_returns(returns, self.spec.teams)
        return {"lr": lr} | across_seeds(per_seed)

    def _moments(self) -> list[nx.Moments]:
        """Each group's value-norm moments of the K runs, stacked to broadcast per block."""
        groups = range(len(self.groups.groups))
        return [stack_moments([r.moments[g] for r in self.runs], 2) for g in groups]

    def _batch(self, rollout: Rollout) -> tuple[Batch, list[dict[str, float]]]:
        """Each seed's batch `[K, T*E, ...]` with GAE targets and its own value-norm moments."""
        blocked = _blocked(rollout, self.k)
        values, advantages, returns = gae_targets(
            blocked, self.config, self.groups, self._moments()
        )
        alive = blocked.batch.alive
        stats = [
            {"explained_variance": nx.explained_variance(values[:, i], returns[:, i], alive[:, i])}
            for i in range(self.k)
        ]
        if self.config.value_norm == "running":
            for i, run in enumerate(self.runs):
                run.moments = [
                    nx.update_moments(m, returns[:, i][..., idx][alive[:, i][..., idx]])
                    for m, idx in zip(run.moments, self.groups.groups)
                ]
            returns = per_group(self.groups, returns, nx.normalize, self._moments())
        batch = blocked.batch._replace(advantages=advantages, returns=returns)
        fields = {name: seed_major(x) for name, x in batch._asdict().items() if name != "hidden"}
        hidden = batch.hidden.new_zeros(self.k, fields["starts"].shape[1], *batch.hidden.shape[2:])
        return Batch(**fields, hidden=hidden), stats

    def _episodes(self, rollout: Rollout, experience: Sequence[Experience]) -> list[Tensor]:
        """The returns of the episodes each seed finished: finished rows come in (t, env)
        order of the rollout's episode ends, so each row's env tells its seed."""
        finished = torch.cat([e.finished for e in experience]).cpu()
        done = (rollout.terminated | rollout.truncated).cpu()
        seed_of = done.nonzero()[:, 1] // (done.shape[1] // self.k)
        return [finished[seed_of == i] for i in range(self.k)]

    # -- state ----------------------------------------------------------------------------
    def _unstack(self) -> None:
        """Write the stacked weights and Adam moments into each run's own net and Adam."""
        self.net.load_into([r.net for r in self.runs])
        state = self.optimizer.state_dict()
        for i, run in enumerate(self.runs):
            per_param = {
                p: {name: (x[i] if name != "step" else x).clone() for name, x in s.items()}
                for p, s in state["state"].items()
            }
            load_optimizer(
                run.optimizer, {"state": per_param, "param_groups": state["param_groups"]}
            )

    def state_dict(self) -> dict[str, Any]:
        """Each seed's state as a single run's `PPOLearner.state_dict()`, in `runs`."""
        self._unstack()
        return {
            "seeds": list(self.seeds),
            "runs": [r.state_dict() for r in self.runs],
            "env_steps": self.env_steps,
            "config": config_to_dict(self.config),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore `state_dict()`'s output."""
        check_seeds(state, self.seeds)
        for run, run_state in zip(self.runs, state["runs"]):
            run.load_state_dict(run_state)
        self.net.load_from([r.net for r in self.runs])
        states = [r.optimizer.state_dict() for r in self.runs]
        stacked = {
            p: {name: x if name == "step" else torch.stack([s["state"][p][name] for s in states])
                for name, x in first.items()}
            for p, first in states[0]["state"].items()
        }  # fmt: skip
        load_optimizer(
            self.optimizer, {"state": stacked, "param_groups": states[0]["param_groups"]}
        )
        self.env_steps = int(state["env_steps"])

    def policy(self) -> ActorPolicy:
        """The first seed's policy (`policies()` has them all)."""
        return self.policies()[0]

    def policies(self) -> list[ActorPolicy]:
        """Each seed's current policy (copies of the stacked weights)."""
        self.net.load_into([r.net for r in self.runs])
        return [r.policy() for r in self.runs]

    def close(self) -> None:
        """Nothing to free."""


def _blocked(rollout: Rollout, k: int) -> Rollout:
    """A rollout over K*E envs as `[T, K, E, ...]` (last values, hidden: `[K, E, ...]`)."""

    def split(x: Tensor, env_dim: int) -> Tensor:
        return x.reshape(*x.shape[:env_dim], k, x.shape[env_dim] // k, *x.shape[env_dim + 1 :])

    batch = Batch(
        *(split(x, 0 if n == "hidden" else 1) for n, x in rollout.batch._asdict().items())
    )
    rest = {
        n: split(getattr(rollout, n), 0 if n == "last_values" else 1) for n in Rollout._fields[1:]
    }
    return Rollout(batch=batch, **rest)


def seeds_update(
    net: StackedNet,
    optimizer: torch.optim.Optimizer,
    batch: Batch,
    cfg: PPOConfig,
    generators: Sequence[torch.Generator],
) -> list[dict[str, float]]:
    """`loss.update` for K seeds at once on each seed's batch `[K, T*E, ...]`: seed k's
    permutations from `generators[k]`, the summed loss (no gradient crosses seeds), and
    gradient-norm clipping per seed. Returns each seed's mean loss stats."""
    k, num = batch.starts.shape[:2]
    offsets = torch.arange(k, device=batch.starts.device)[:, None] * num
    params = list(net.params.values())
    gradients = _analytic if analytic.applies(net.net, cfg) else _autograd
    totals: dict[str, Tensor] = {}
    for _ in range(cfg.epochs):
        orders = torch.stack(
            [torch.randperm(num, generator=g, device=g.device) for g in generators]
        )
        for idx in torch.tensor_split(orders, cfg.minibatches, dim=1):
            rows = (offsets + idx).flatten()  # seed k's rows idx[k] of the [K*T*E] rows
            minibatch = Batch(
                *(_take(x, rows, k, name != "hidden") for name, x in batch._asdict().items())
            )
            stats = gradients(net, minibatch, cfg)
            stats["grad_norm"] = clip_per_seed(params, cfg.max_grad_norm)
            optimizer.step()
            for key, value in stats.items():
                totals[key] = totals[key] + value if key in totals else value
    steps = cfg.epochs * cfg.minibatches
    means = {key: (value / steps).tolist() for key, value in totals.items()}
    return [{key: values[i] for key, values in means.items()} for i in range(k)]


def _autograd(net: StackedNet, batch: Batch, cfg: PPOConfig) -> dict[str, Tensor]:
    """Each seed's `ppo_loss` gradient on its minibatch, by autograd of their sum."""
    loss, stats = net.loss(batch, cfg)
    net.net.zero_grad()
    loss.sum().backward()
    return stats


def _analytic(net: StackedNet, batch: Batch, cfg: PPOConfig) -> dict[str, Tensor]:
    """Each seed's `ppo_loss` gradient on its minibatch, in closed form (`analytic`)."""
    return analytic.minibatch_gradients(net.net, batch, cfg)


def _take(x: Tensor, rows: Tensor, k: int, time_axis: bool) -> Tensor:
    """Rows `rows` of `x` `[K, T*E, ...]` flattened over its first two axes, as `[K, M, ...]`
    (`[K, 1, M, ...]` with the time axis a feedforward minibatch has)."""
    taken = x.flatten(0, 1).index_select(0, rows)
    taken = taken.reshape(k, rows.shape[0] // k, *x.shape[2:])
    return taken[:, None] if time_axis else taken


def clip_per_seed(params: Sequence[Tensor], max_norm: float) -> Tensor:
    """`clip_grad_norm_` of each seed's gradients `[k]` apart; returns the K total norms."""
    grads = [p.grad for p in params if p.grad is not None]
    k = grads[0].shape[0]
    norms = torch.stack([
        torch.nn.utils.get_total_norm([g[i] for g in grads], foreach=True) for i in range(k)
    ])  # fmt: skip
    coef = torch.clamp(max_norm / (norms + 1e-6), max=1.0)
    for g in grads:
        g.mul_(coef.reshape(k, *([1] * (g.dim() - 1))))
    return norms


def make_seeds_learner(spec: VecSpec, config: PPOConfig, seeds: Sequence[int],
                       device: Any = "cpu") -> SeedsLearner:  # fmt: skip
    """K runs of `config` on `spec`, one per seed, trained as one batched computation."""
    return SeedsLearner(spec, config, seeds, device)
