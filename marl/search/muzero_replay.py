"""MuZero's trajectory replay: whole episodes, sampled as K-step unrolls from any position.

Episodes are kept whole (newest `capacity` positions), since an unroll from position t
needs the actions, rewards, policies and value targets of t..t+K. Value targets are the
n-step returns of `muzero_targets.n_step_values`, bootstrapped from each position's stored
value (the search's root value, or a "fresh" net value written by `set_values`); they are
recomputed whenever those values change (reanalyse, a new target net). After the last move
the bootstrap value is 0 when the episode terminated, and the net's value of the final
observation when a time limit cut it (`Episode.final_obs`, `final_value`), as in GAE.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor

from marl.search.muzero_targets import n_step_values

FIELDS = ("obs", "legal", "to_play", "actions", "rewards", "policies", "values")
ENDS = ("final_obs", "final_value")


class Episode(NamedTuple):
    """One finished episode of T moves."""

    obs: Tensor  # [T, *obs_shape] observation before each move (from the side to move)
    legal: Tensor  # [T, A] bool legal moves
    to_play: Tensor  # [T] long side to move
    actions: Tensor  # [T] long move made
    rewards: Tensor  # [T] reward of that move, from the mover's view
    policies: Tensor  # [T, A] search policy (the policy target)
    values: Tensor  # [T] bootstrap value of each position, from the side to move's view
    final_obs: Tensor | None = None  # [1, *obs_shape] when a time limit cut the episode
    final_value: Tensor | None = None  # [1] its bootstrap value; None or empty: terminated

    def with_ends(self) -> Episode:
        """This episode with empty (shape [0, ...]) `final_obs`/`final_value` for None."""
        if self.final_obs is not None:
            return self
        return self._replace(final_obs=self.obs[:0], final_value=self.values[:0])

    @property
    def cut(self) -> bool:
        """Whether a time limit cut the episode (its return bootstraps from `final_value`)."""
        return self.final_obs is not None and len(self.final_obs) > 0


class Unroll(NamedTuple):
    """A minibatch of M K-step unrolls; index k = 0..K along the second axis."""

    obs: Tensor  # [M, *obs_shape] the first position's observation
    actions: Tensor  # [M, K] moves (random past the episode's end)
    rewards: Tensor  # [M, K] reward targets of those moves (0 past the end)
    values: Tensor  # [M, K + 1] value targets (0 past the end: absorbing)
    policies: Tensor  # [M, K + 1, A] policy targets
    policy_mask: Tensor  # [M, K + 1] 1 where the position exists (policy loss counts)
    value_mask: Tensor  # [M, K + 1] 1 where the value loss counts: all but past a cut
    later_obs: Tensor | None = None  # [M, K, *obs_shape] after each move (first's past the end)


class TrajectoryReplay:
    """Whole episodes, the oldest dropped once more than `capacity` positions are held."""

    def __init__(self, capacity: int, td_steps: int, discount: float, two_player: bool):
        self.capacity, self.td_steps = capacity, td_steps
        self.discount, self.two_player = discount, two_player
        self.episodes: list[Episode] = []
        self.targets: list[Tensor] = []
        self._flat: dict[str, Tensor] | None = None
        self._size = 0  # positions held, kept as episodes come and go (a sum per add was quadratic)

    @property
    def size(self) -> int:
        """Positions held."""
        return self._size

    def _target(self, episode: Episode) -> Tensor:
        after = episode.final_value if episode.cut else episode.values.new_zeros(1)
        values = torch.cat([episode.values, after])  # after the end: 0, or V(final obs) on a cut
        return n_step_values(episode.rewards, values, self.td_steps, self.discount, self.two_player)

    def add(self, episode: Episode) -> None:
        """Store a finished episode (dropping the oldest ones beyond capacity)."""
        episode = Episode(*(t.detach().cpu() for t in episode.with_ends()))
        self.episodes.append(episode)
        self.targets.append(self._target(episode))
        self._size += len(episode.actions)
        while self._size > self.capacity and len(self.episodes) > 1:
            self._size -= len(self.episodes.pop(0).actions)
            self.targets.pop(0)
        self._flat = None

    def replace(self, index: int, **fields: Tensor) -> None:
        """Overwrite fields of episode `index` (reanalysed policies, fresh values; the
        episode's moves and length stay)."""
        if "actions" in fields:
            raise ValueError("replace() rewrites what an episode's positions hold, not its moves")
        episode = self.episodes[index]._replace(**{k: v.cpu() for k, v in fields.items()})
        self.episodes[index] = episode
        self.targets[index] = self._target(episode)
        self._flat = None

    def flat(self) -> dict[str, Tensor]:
        """All episodes concatenated, plus `end` (one past each position's episode end) and
        `cut` (whether its episode was cut by a time limit)."""
        if self._flat is None:
            flat = {name: torch.cat([getattr(e, name) for e in self.episodes]) for name in FIELDS}
            flat["targets"] = torch.cat(self.targets)
            lengths = torch.tensor([len(e.actions) for e in self.episodes])
            flat["end"] = torch.repeat_interleave(lengths.cumsum(0), lengths)
            cut = torch.tensor([e.cut for e in self.episodes])
            flat["cut"] = torch.repeat_interleave(cut, lengths)
            self._flat = flat
        return self._flat

    def sample(
        self, batch: int, unroll: int, gen: torch.Generator, later_obs: bool = False
    ) -> Unroll:
        """`batch` unrolls of `unroll` moves from positions drawn uniformly; with `later_obs`,
        also the observation after each move (the consistency loss's targets). Past the end
        of a terminated episode the value target is 0 (absorbing); past a time limit's cut
        the world went on, so no value target is set there (`value_mask` 0)."""
        flat = self.flat()
        total = len(flat["actions"])
        if total == 0:
            raise ValueError("cannot sample from an empty trajectory replay")
        start = torch.randint(0, total, (batch,), generator=gen)
        index = start[:, None] + torch.arange(unroll + 1)[None]  # [M, K + 1]
        inside = index < flat["end"][start][:, None]
        index = torch.where(inside, index, start[:, None])
        num_actions = flat["policies"].shape[1]
        random_moves = torch.randint(0, num_actions, (batch, unroll), generator=gen)
        actions = torch.where(inside[:, :-1], flat["actions"][index[:, :-1]], random_moves)
        return Unroll(
            obs=flat["obs"][start].float(),
            actions=actions,
            rewards=flat["rewards"][index[:, :-1]] * inside[:, :-1],
            values=flat["targets"][index] * inside,
            policies=flat["policies"][index] * inside[..., None],
            policy_mask=inside.float(),
            value_mask=(inside | ~flat["cut"][start][:, None]).float(),
            later_obs=flat["obs"][index[:, 1:]].float() if later_obs else None,
        )

    def state_dict(self) -> dict[str, Any]:
        """The episodes as lists of tensors (weights_only-safe)."""
        return {name: [getattr(e, name) for e in self.episodes] for name in FIELDS + ENDS}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` returned (a checkpoint from before `ENDS` were stored
        holds terminated episodes only)."""
        self.episodes, self.targets, self._size = [], [], 0
        count = len(state["actions"])
        ends = [state.get(name, [None] * count) for name in ENDS]
        for parts in zip(*(state[name] for name in FIELDS), *ends):
            self.add(Episode(*parts))
