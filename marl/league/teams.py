"""Team games: a multi-agent env with two teams as a two-player league game.

A game between players A and B is one episode of the env: one player controls every agent
of the first team (e.g. MPE simple_tag's `adversary` predators), the other every agent of
the second team (the `agent` prey). The win rule compares the first team's episode return
with a threshold: the first team wins when its per-agent mean return over the episode is
above `win_threshold`, otherwise the second team wins (no draws). In simple_tag a predator
earns +10 per step in which it touches the prey, so `win_threshold = 0` reads "the
predators win an episode if they catch the prey at least once".

Each game runs in its own one-copy env reset with the game's seed, so its result does not
depend on which games shared a batch; players act greedily on the stacked observations.
`TeamView` shows one team of a vector env to a learner and plays the other team with a
fixed opponent: the way a PPO learner trains against league snapshots.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from marl.league.store import GameResult, ScheduledGame


class TeamGameError(ValueError):
    """An env that is not a two-team game, or a player on the wrong team."""


class TeamPlayer(Protocol):
    """Acts for all agents of one team in G games at once."""

    team: str | None  # the team it was trained for, or None when it can play either

    def act(self, obs: np.ndarray, mask: np.ndarray, rngs: Sequence[np.random.Generator]) -> Any:
        """obs [G, n, O], mask [G, n, A] -> [G, n] actions; row g draws only from rngs[g]."""
        ...


@dataclass(frozen=True)
class TeamGame:
    """What the league knows of a two-team env."""

    env_id: str
    """Registered env id, e.g. mpe/simple_tag-v3."""
    kwargs: dict[str, Any] = field(default_factory=dict)
    """Env keyword arguments."""
    teams: tuple[str, ...] = ()
    """The two team names; the first team's return decides each game."""
    members: tuple[tuple[int, ...], ...] = ()
    """Agent indices of each team, in `teams` order."""
    win_threshold: float = 0.0
    """The first team wins when its per-agent mean episode return exceeds this."""

    def team_index(self, team: str) -> int:
        """Position of `team` in `teams`; a clear error naming the teams otherwise."""
        if team not in self.teams:
            from marl.core.config import closest

            near = closest(team, self.teams)
            hint = f"; did you mean {' or '.join(near)}?" if near else ""
            raise TeamGameError(
                f"{self.env_id} has no team {team!r}{hint} (teams: {', '.join(self.teams)})"
            )
        return self.teams.index(team)


def make_team_env(env_id: str, num_envs: int, kwargs: dict[str, Any], backend: str = "auto") -> Any:
    """A VecEnv of `env_id`: natively batched for the MPE ids that have it, else in-process."""
    from marl.envs.vector import make_vec

    return make_vec(env_id, num_envs, backend=backend, **kwargs)


def load_team_game(env_id: str, kwargs: dict[str, Any], win_threshold: float) -> TeamGame:
    """Probe `env_id` and check that it has exactly two teams."""
    try:
        env = make_team_env(env_id, 1, kwargs)
    except (ValueError, KeyError) as err:
        raise TeamGameError(f"league env {env_id!r} cannot be made: {err}") from None
    teams, discrete = dict(env.teams), env.num_actions > 0
    env.close()
    if not discrete:
        raise TeamGameError(f"{env_id}: team leagues play discrete actions only")
    if len(teams) != 2:
        raise TeamGameError(
            f"{env_id} has {len(teams)} team(s) ({', '.join(teams)}); a team league needs "
            "exactly two (one player per team), e.g. mpe/simple_tag-v3"
        )
    members = tuple(tuple(int(i) for i in m) for m in teams.values())
    return TeamGame(env_id, dict(kwargs), tuple(teams), members, win_threshold)


class RandomTeamPlayer:
    """Uniformly random legal actions for every agent of whichever team it is given."""

    team = None

    def act(self, obs: np.ndarray, mask: np.ndarray, rngs: Sequence[np.random.Generator]) -> Any:
        """[G, n] random legal actions; game g draws from rngs[g]."""
        return np.array(
            [[rng.choice(np.flatnonzero(m)) for m in game] for game, rng in zip(mask, rngs)],
            dtype=np.int64,
        ).reshape(mask.shape[:2])


class PolicyTeamPlayer:
    """A `marl.core.learner.Policy` trained for `team`, acting greedily (reproducible games)."""

    def __init__(self, policy: Any, team: str):
        """Wrap `policy` (obs [G, n, O], mask [G, n, A] -> [G, n])."""
        self.policy, self.team = policy, team

    def act(self, obs: np.ndarray, mask: np.ndarray, rngs: Sequence[np.random.Generator]) -> Any:
        """[G, n] greedy actions (rngs are not drawn from)."""
        return np.asarray(self.policy.act(obs, mask, greedy=True)).reshape(mask.shape[:2])


def _numpy(x: Any) -> np.ndarray:
    return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)


def _check_team(player: TeamPlayer, name: str, team: str) -> None:
    if player.team is not None and player.team != team:
        raise TeamGameError(f"player {name!r} plays team {player.team!r}, not {team!r}")


def play_team_games(
    game: TeamGame,
    players: tuple[TeamPlayer, TeamPlayer],
    names: tuple[str, str],
    games: list[ScheduledGame],
) -> list[GameResult]:
    """One episode per scheduled game; A controls the first team where `a_first`."""
    envs = [make_team_env(game.env_id, 1, game.kwargs) for _ in games]
    steps = [env.reset(seed=g.seed % 2**31) for env, g in zip(envs, games)]
    rngs = [np.random.default_rng(g.seed) for g in games]
    first_return = np.zeros(len(games))
    running, moves, start = list(range(len(games))), [0] * len(games), time.perf_counter()
    while running:
        actions = {i: np.zeros(len(game.members[0]) + len(game.members[1]), np.int64)
                   for i in running}  # fmt: skip
        for t, (team, members) in enumerate(zip(game.teams, game.members)):
            for who in (0, 1):  # 0: player A, 1: player B
                rows = [i for i in running if (games[i].a_first == (t == 0)) == (who == 0)]
                if not rows:
                    continue
                _check_team(players[who], names[who], team)
                obs = np.stack([_numpy(steps[i].obs)[0, list(members)] for i in rows])
                mask = np.stack([_numpy(steps[i].action_mask)[0, list(members)] for i in rows])
                chosen = players[who].act(obs, mask, [rngs[i] for i in rows])
                for row, i in enumerate(rows):
                    actions[i][list(members)] = chosen[row]
        for i in running:
            steps[i] = envs[i].step(actions[i][None])
            first_return[i] += float(_numpy(steps[i].reward)[0, list(game.members[0])].mean())
            moves[i] += 1
        running = [i for i in running if not bool(_numpy(steps[i].done)[0])]
    for env in envs:
        env.close()
    seconds = (time.perf_counter() - start) / len(games)
    first_won = first_return > game.win_threshold
    return [
        GameResult(g.round, g.slot, float(first_won[i] == g.a_first), moves[i], seconds)
        for i, g in enumerate(games)
    ]


class TeamView:
    """One team of a VecEnv, as a VecEnv: the other team is played by `opponent`.

    The learner sees its own agents' observations, masks, rewards and liveness, and the
    full global state; `step` completes its actions with the opponent's before stepping.
    """

    def __init__(self, env: Any, team: str, opponent: TeamPlayer | None = None, seed: int = 0):
        """View `team` of `env`; `seed` seeds the opponent's random draws."""
        if team not in env.teams:
            raise TeamGameError(f"env has no team {team!r} (teams: {', '.join(env.teams)})")
        self.env, self.team, self.opponent = env, team, opponent
        self.own = list(env.teams[team])
        self.other = [i for i in range(len(env.agents)) if i not in self.own]
        self.rng = np.random.default_rng(seed)
        self.num_envs = env.num_envs
        self.agents = [env.agents[i] for i in self.own]
        self.teams = {team: list(range(len(self.own)))}
        self.observation_spaces = [env.observation_spaces[i] for i in self.own]
        self.action_spaces = [env.action_spaces[i] for i in self.own]
        self.obs_dim, self.state_dim = env.obs_dim, env.state_dim
        self.num_actions, self.action_dim = env.num_actions, env.action_dim
        self._last: Any = None

    def _own(self, step: Any) -> Any:
        self._last = step
        own = self.own
        return step._replace(
            obs=step.obs[:, own], action_mask=step.action_mask[:, own],
            reward=step.reward[:, own], alive=step.alive[:, own], final_obs=step.final_obs[:, own],
        )  # fmt: skip

    def reset(self, seed: int | None = None) -> Any:
        """Reset the underlying env; the learner's team's arrays."""
        return self._own(self.env.reset(seed=seed))

    def step(self, actions: Any) -> Any:
        """Step with the learner's actions [B, n] and the opponent's for the other team."""
        if self.opponent is None:
            raise TeamGameError(f"TeamView({self.team!r}) has no opponent to play the other team")
        last, own, other = self._last, self.own, self.other
        theirs = self.opponent.act(
            _numpy(last.obs)[:, other], _numpy(last.action_mask)[:, other],
            [self.rng] * self.num_envs,
        )  # fmt: skip
        full = np.zeros((self.num_envs, len(self.env.agents)), dtype=np.int64)
        full[:, own] = _numpy(actions)
        full[:, other] = theirs
        step = self.env.step(full)
        reset = getattr(getattr(self.opponent, "policy", None), "reset", None)
        if reset is not None:  # a recurrent opponent starts afresh where episodes ended
            reset(_numpy(step.done))
        return self._own(step)

    def close(self) -> None:
        """Close the underlying env."""
        self.env.close()
