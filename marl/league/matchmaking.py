"""Matchmaking: who plays whom each round. Pure functions of the results so far and a rng.

Focal players take turns choosing an opponent. Focal players are the newest member of
each learner lineage; a league of fixed players only (no learners) makes every player
focal. In team envs a player fixed to one team only meets players of the other team (or
players that can take either team). Three ways to choose the opponent:

- `uniform`: any other player, uniformly.
- `latest_vs_past`: past snapshots and the fixed players (no learner's newest version),
  uniformly.
- `pfsp`: prioritized fictitious self-play (Vinyals et al. 2019, AlphaStar): opponent o is
  drawn with probability proportional to f(x), x = the focal player's win rate against o;
  f = (1 - x)^p ("hard": focus on opponents it loses to) or x (1 - x) ("variance": focus on
  even matches).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from marl.league.config import MatchmakerConfig


@dataclass(frozen=True)
class PoolMember:
    """What matchmaking knows of one player."""

    name: str
    """Player name."""
    lineage: str | None = None
    """The learner it is (a snapshot of), or None for a fixed player."""
    version: int = 0
    """Snapshot number within its lineage (higher is newer)."""
    team: str | None = None
    """Team envs: the team it plays (None: either team); it only meets other teams' players."""


def can_meet(a: PoolMember, b: PoolMember) -> bool:
    """Whether a game between a and b can be played: not both fixed to the same team."""
    return a.team is None or b.team is None or a.team != b.team


def win_rates(score: np.ndarray, count: np.ndarray, prior_games: float = 1.0) -> np.ndarray:
    """[P, P] smoothed win rates (score + prior/2) / (games + prior); 0.5 for unseen pairs."""
    return (score + prior_games / 2) / (count + prior_games)


def pfsp_weights(x: np.ndarray, weighting: str = "hard", p: float = 2.0) -> np.ndarray:
    """Probabilities of picking each opponent given the focal player's win rates `x`."""
    x = np.clip(np.asarray(x, dtype=np.float64), 0.0, 1.0)
    if weighting == "hard":
        w = (1.0 - x) ** p
    elif weighting == "variance":
        w = x * (1.0 - x)
    else:
        raise ValueError(f"pfsp weighting {weighting!r}: expected 'hard' or 'variance'")
    total = w.sum()
    return w / total if total > 0 else np.full(len(x), 1.0 / len(x))


def focal_players(pool: list[PoolMember]) -> list[int]:
    """Indices of the newest member of each lineage, or of everyone when no learners."""
    newest: dict[str, int] = {}
    for i, m in enumerate(pool):
        if m.lineage is not None and (
            m.lineage not in newest or m.version > pool[newest[m.lineage]].version
        ):
            newest[m.lineage] = i
    return sorted(newest.values()) if newest else list(range(len(pool)))


def candidate_opponents(pool: list[PoolMember], focal: int, kind: str) -> list[int]:
    """Indices the focal player may meet under matchmaker `kind`."""
    others = [i for i in range(len(pool)) if i != focal and can_meet(pool[focal], pool[i])]
    if not others:
        raise ValueError(f"player {pool[focal].name!r} has no opponent it can play")
    if kind != "latest_vs_past" or pool[focal].lineage is None:
        return others
    newest = set(focal_players(pool))
    past_or_fixed = [i for i in others if i not in newest]
    return past_or_fixed or others


def schedule_matches(
    pool: list[PoolMember],
    rates: np.ndarray,
    num_matches: int,
    config: MatchmakerConfig,
    rng: np.random.Generator,
    offset: int = 0,
) -> list[tuple[int, int]]:
    """`num_matches` (focal, opponent) index pairs; focal players rotate from `offset`."""
    if len(pool) < 2:
        raise ValueError(f"matchmaking needs at least two players, got {len(pool)}")
    focal = focal_players(pool)
    pairs = []
    for m in range(num_matches):
        f = focal[(offset + m) % len(focal)]
        options = candidate_opponents(pool, f, config.kind)
        if config.kind == "pfsp":
            probs = pfsp_weights(rates[f, options], config.weighting, config.p)
        else:
            probs = np.full(len(options), 1.0 / len(options))
        pairs.append((f, options[int(rng.choice(len(options), p=probs))]))
    return pairs


def calibration_pairs(
    pool: list[PoolMember], num_matches: int, rng: np.random.Generator, live: int
) -> list[tuple[int, int]]:
    """`num_matches` uniform pairs of frozen players (version below `live`) that can meet."""
    frozen = [i for i, m in enumerate(pool) if m.version < live]
    pairs = [(a, b) for a in frozen for b in frozen if a < b and can_meet(pool[a], pool[b])]
    if not pairs or num_matches == 0:
        return []
    return [pairs[int(k)] for k in rng.integers(0, len(pairs), num_matches)]
