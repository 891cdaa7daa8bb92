"""Bradley-Terry maximum-likelihood ratings on the Elo scale, with intervals; online Elo.

Model: P(A beats B) = 1 / (1 + 10^(-(r_A - r_B + h*side) / 400)), where `side` is +1 when A
moved first, -1 when B did and 0 when unknown, and `h` is an optional first-move advantage.
Draws count as half a win and half a loss, or (draws="davidson") follow Davidson (1970):
P(win) : P(draw) : P(loss) = sqrt(pi_A/pi_B) : nu : sqrt(pi_B/pi_A) with pi = 10^(r/400).

Ratings are only defined up to a shift: by default the mean rating is fixed at 1000, or a
named player is pinned to a given rating. A weak Gaussian prior (ridge) of `prior_std` Elo
on every rating keeps undefeated players and disconnected groups finite (they get wide
intervals); `prior_std=None` gives the pure MLE and refuses data where it does not exist.
Intervals come from the inverse Hessian of the log-posterior (normal approximation), or
from a seeded bootstrap over games (percentile intervals).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Literal, NamedTuple

import numpy as np

from marl.core.bradley_terry import log_likelihood
from marl.league.games import GameTable

ELO_SCALE = 400.0 / math.log(10.0)
"""Elo points per nat of log-odds (about 173.7)."""
DRAW_PRIOR_STD = 5.0
NEWTON_STEPS = 200  # the fit gives up (RatingError) if the steps have not shrunk by then
"""Std (nats) of the weak prior on Davidson's log(nu) whenever `prior_std` is set."""


class RatingError(ValueError):
    """Games from which the asked-for ratings cannot be computed."""


@dataclass(frozen=True)
class RatingConfig:
    """How to fit ratings from a table of games."""

    draws: Literal["half", "davidson"] = "half"
    """Draws count as half a win and half a loss, or get Davidson's draw parameter nu."""
    first_move: bool = False
    """Also fit a first-move advantage (Elo points for the side that moved first)."""
    anchor: str | None = None
    """Player pinned to `anchor_rating`; None pins the mean of all ratings instead."""
    anchor_rating: float = 1000.0
    """The anchor player's rating, or the mean rating when `anchor` is None."""
    prior_std: float | None = 1000.0
    """Std (Elo) of a Gaussian ridge prior on each rating; None for the pure MLE."""
    confidence: float = 0.95
    """Coverage of the reported intervals."""
    intervals: Literal["hessian", "bootstrap"] = "hessian"
    """Intervals from the inverse Hessian, or percentile intervals of a bootstrap."""
    bootstrap_samples: int = 200
    """Number of bootstrap refits (intervals="bootstrap" only)."""
    seed: int = 0
    """Seed of the bootstrap's resampling."""

    def validate(self) -> None:
        """Refuse values outside their range."""
        if self.draws not in ("half", "davidson"):
            raise RatingError(f"draws={self.draws!r}: expected 'half' or 'davidson'")
        if self.intervals not in ("hessian", "bootstrap"):
            raise RatingError(f"intervals={self.intervals!r}: expected 'hessian' or 'bootstrap'")
        if not 0.0 < self.confidence < 1.0:
            raise RatingError(f"confidence={self.confidence}: expected a value in (0, 1)")
        if self.prior_std is not None and not (
            math.isfinite(self.prior_std) and self.prior_std > 0
        ):
            raise RatingError(
                f"prior_std={self.prior_std}: expected a positive finite number, or None"
            )
        if not math.isfinite(self.anchor_rating):
            raise RatingError(f"anchor_rating={self.anchor_rating}: expected a finite number")
        if self.seed < 0:
            raise RatingError(f"seed={self.seed}: expected a non-negative integer")
        if self.bootstrap_samples < 2:
            raise RatingError(f"bootstrap_samples={self.bootstrap_samples}: expected >= 2")


@dataclass(frozen=True)
class Ratings:
    """Fitted ratings of P players, with intervals and the fitted nuisance parameters."""

    players: tuple[str, ...]
    """Player names (the order of every array below)."""
    rating: np.ndarray
    """[P] ratings on the Elo scale, anchored as the config says."""
    stderr: np.ndarray
    """[P] standard errors (0 for the anchor player)."""
    lower: np.ndarray
    """[P] lower ends of the intervals."""
    upper: np.ndarray
    """[P] upper ends of the intervals."""
    games: np.ndarray
    """[P] games each player played."""
    mean_score: np.ndarray
    """[P] each player's average score."""
    first_move_advantage: float | None
    """Fitted first-move advantage in Elo (None when not fitted)."""
    first_move_stderr: float | None
    """Its standard error."""
    draw_nu: float | None
    """Davidson's nu (None for draws="half")."""
    log_likelihood: float
    """Log-likelihood of the games at the fit (without the prior)."""
    config: RatingConfig
    """The config of the fit."""

    def ranked(self) -> list[int]:
        """Player indices from the highest rating to the lowest (ties by name)."""
        return sorted(range(len(self.players)), key=lambda i: (-self.rating[i], self.players[i]))

    def describe(self) -> str:
        """One line saying how the ratings and intervals were computed."""
        cfg = self.config
        draws = (
            "draws as half" if cfg.draws == "half" else f"Davidson draws (nu={self.draw_nu:.3g})"
        )
        anchor = (
            f"{cfg.anchor}={cfg.anchor_rating:g}" if cfg.anchor else f"mean={cfg.anchor_rating:g}"
        )
        prior = f"ridge prior std {cfg.prior_std:g}" if cfg.prior_std else "no prior"
        how = (
            "inverse Hessian"
            if cfg.intervals == "hessian"
            else f"bootstrap of {cfg.bootstrap_samples} resamples"
        )
        text = f"Bradley-Terry MLE (Elo scale), {draws}, {prior}, anchor {anchor}; "
        text += f"{cfg.confidence:.0%} intervals from the {how}"
        if self.first_move_advantage is not None:
            text += f"; first-move advantage {self.first_move_advantage:+.1f}"
            text += f" +- {self.first_move_stderr:.1f}"
        return text


class _Groups(NamedTuple):
    """Games merged by (a, b, side) with a < b; sums of outcomes per group."""

    a: np.ndarray  # [K] int
    b: np.ndarray  # [K] int
    side: np.ndarray  # [K] float, +1 a moved first, -1 b did, 0 unknown
    n: np.ndarray  # [K] games
    score: np.ndarray  # [K] summed score of a
    wins: np.ndarray  # [K] games a won
    draws: np.ndarray  # [K] drawn games


def _group(table: GameTable) -> _Groups:
    swap = table.a > table.b
    a = np.where(swap, table.b, table.a)
    b = np.where(swap, table.a, table.b)
    score = np.where(swap, 1.0 - table.score, table.score)
    side = np.where(swap, -table.first, table.first).astype(np.int64)
    key = (a * table.num_players + b) * 3 + side + 1
    uniq, inv = np.unique(key, return_inverse=True)
    k = len(uniq)
    return _Groups(
        a=uniq // 3 // table.num_players,
        b=uniq // 3 % table.num_players,
        side=(uniq % 3 - 1).astype(np.float64),
        n=np.bincount(inv, minlength=k).astype(np.float64),
        score=np.bincount(inv, score, k),
        wins=np.bincount(inv, score == 1.0, k),
        draws=np.bincount(inv, score == 0.5, k),
    )


def _outcome_terms(u: np.ndarray, eta: float, g: _Groups, davidson: bool) -> tuple:
    """Per-group log-likelihood and its derivatives in (u, eta); u is the log-odds of a."""
    if not davidson:
        p = 1.0 / (1.0 + np.exp(-u))
        ll = log_likelihood(u, g.score, g.n)
        return ll, g.score - g.n * p, -g.n * p * (1.0 - p), None, None, None
    log_z = np.logaddexp(np.logaddexp(u / 2, -u / 2), eta)
    pw, pl, pd = np.exp(u / 2 - log_z), np.exp(-u / 2 - log_z), np.exp(eta - log_z)
    losses = g.n - g.wins - g.draws
    ll = (g.wins - losses) * u / 2 + g.draws * eta - g.n * log_z
    d_u = (g.wins - losses) / 2 - g.n * (pw - pl) / 2
    d_uu = -g.n * ((pw + pl) / 4 - ((pw - pl) / 2) ** 2)
    return ll, d_u, d_uu, g.draws - g.n * pd, -g.n * pd * (1 - pd), g.n * pd * (pw - pl) / 2


def _log_posterior(theta: np.ndarray, g: _Groups, p: int, cfg: RatingConfig) -> tuple:
    """(log-likelihood, log-posterior, gradient, Hessian) at theta = [r, (h), (log nu)]."""
    davidson = cfg.draws == "davidson"
    h = theta[p] if cfg.first_move else 0.0
    eta = theta[-1] if davidson else 0.0
    u = (theta[g.a] - theta[g.b] + g.side * h) / ELO_SCALE
    ll, d_u, d_uu, d_e, d_ee, d_ue = _outcome_terms(u, eta, g, davidson)
    jac = np.zeros((len(g.n), len(theta)))  # d u / d theta
    rows = np.arange(len(g.n))
    jac[rows, g.a] = 1.0 / ELO_SCALE
    jac[rows, g.b] = -1.0 / ELO_SCALE
    if cfg.first_move:
        jac[:, p] = g.side / ELO_SCALE
    grad = jac.T @ d_u
    hess = jac.T @ (d_uu[:, None] * jac)
    if davidson:
        grad[-1] = d_e.sum()
        cross = jac.T @ d_ue
        hess[:, -1] += cross
        hess[-1, :] += cross
        hess[-1, -1] = d_ee.sum()
    log_lik = float(ll.sum())
    if cfg.prior_std is None:
        return log_lik, log_lik, grad, hess
    precision = np.full(len(theta), 1.0 / cfg.prior_std**2)
    if davidson:
        precision[-1] = 1.0 / DRAW_PRIOR_STD**2
    log_post = log_lik - 0.5 * float(precision @ theta**2)
    return log_lik, log_post, grad - precision * theta, hess - np.diag(precision)


def _maximize(g: _Groups, p: int, cfg: RatingConfig) -> tuple[np.ndarray, float, np.ndarray]:
    """Newton's method with backtracking on the concave log-posterior."""
    size = p + int(cfg.first_move) + int(cfg.draws == "davidson")
    theta = np.zeros(size)
    log_lik, value, grad, hess = _log_posterior(theta, g, p, cfg)
    converged = False
    for _ in range(NEWTON_STEPS):
        step = np.linalg.lstsq(-hess, grad, rcond=None)[0]
        t = 1.0
        while True:
            new = _log_posterior(theta + t * step, g, p, cfg)
            if new[1] >= value - 1e-12 or t < 1e-10:
                break
            t /= 2
        theta = theta + t * step
        log_lik, value, grad, hess = new
        if np.max(np.abs(t * step)) < 1e-9:
            converged = True
            break
    if not converged or not np.all(np.isfinite(theta)) or np.max(np.abs(theta)) > 1e5:
        raise RatingError(
            f"the fit did not converge to finite ratings in {NEWTON_STEPS} Newton steps (the "
            "maximum-likelihood ratings are infinite, e.g. when who moved first decides every "
            "game); set prior_std (default 1000) for a finite fit"
        )
    return theta, log_lik, hess


def _reachable(adjacent: np.ndarray, start: int) -> np.ndarray:
    seen = np.zeros(len(adjacent), dtype=bool)
    seen[start] = True
    frontier = [start]
    while frontier:
        nxt = np.flatnonzero(adjacent[frontier].any(axis=0) & ~seen)
        seen[nxt] = True
        frontier = list(nxt)
    return seen


def _check_mle_exists(table: GameTable, cfg: RatingConfig) -> None:
    """Without a prior, the MLE exists only if every player scored against every other
    player through some chain of games (the 'scored against' graph is strongly connected)."""
    score, count = table.score_matrix()
    names = table.players
    if not _reachable(count > 0, 0).all():
        lone = [n for n, seen in zip(names, _reachable(count > 0, 0)) if not seen]
        raise RatingError(
            f"the players form disconnected groups (e.g. {lone[:3]} never met {names[0]!r} "
            "through any chain of games); set prior_std to rate them on one scale"
        )
    scored = score > 0
    if not (_reachable(scored, 0).all() and _reachable(scored.T, 0).all()):
        perfect = [n for n, s in zip(names, table.mean_score()) if s in (0.0, 1.0)]
        who = f" ({', '.join(perfect[:3])} won or lost every game)" if perfect else ""
        raise RatingError(
            f"the maximum-likelihood ratings are infinite: some players never scored against "
            f"others{who}; set prior_std (default 1000) for a finite fit"
        )
    if cfg.first_move and not table.first.any():
        raise RatingError("first_move=True but no game says who moved first")
    if cfg.draws == "davidson" and not (table.score == 0.5).any():
        raise RatingError("draws='davidson' needs at least one draw when prior_std is None")
    if cfg.draws == "davidson" and (table.score == 0.5).all():
        raise RatingError(
            "draws='davidson' needs at least one decisive game when prior_std is None (with "
            "only draws the draw parameter's estimate is infinite)"
        )


def _covariance(hess: np.ndarray, p: int, no_prior: bool) -> np.ndarray:
    """Inverse of the observed information; without a prior, the shift of all ratings is
    unidentified and the pseudo-inverse gives the covariance of mean-centred ratings."""
    info = -hess
    if not no_prior:
        return np.linalg.inv(info)
    shift = np.zeros(len(info))
    shift[:p] = 1.0 / math.sqrt(p)
    info = info + np.outer(shift, shift)
    eig = np.linalg.eigvalsh(info)
    if eig[0] <= 1e-9 * eig[-1]:
        raise RatingError(
            "ratings are not identifiable from these games (e.g. the first-move advantage is "
            "confounded with a rating difference); set prior_std"
        )
    return np.linalg.inv(info) - np.outer(shift, shift)


def _anchor_matrix(players: tuple[str, ...], cfg: RatingConfig) -> np.ndarray:
    """A with anchored ratings = A @ r + anchor_rating."""
    p = len(players)
    if cfg.anchor is None:
        return np.eye(p) - np.full((p, p), 1.0 / p)
    if cfg.anchor not in players:
        from marl.core.config import closest

        near = closest(cfg.anchor, players)
        hint = f"; did you mean {' or '.join(near)}?" if near else ""
        raise RatingError(f"anchor player {cfg.anchor!r} played no game{hint}")
    a = np.eye(p)
    a[:, players.index(cfg.anchor)] -= 1.0
    return a


def _point_fit(table: GameTable, cfg: RatingConfig) -> tuple[np.ndarray, float, np.ndarray]:
    if table.num_games == 0:
        raise RatingError("no games to rate")
    if cfg.draws == "davidson" and not np.isin(table.score, (0.0, 0.5, 1.0)).all():
        raise RatingError("draws='davidson' needs scores of exactly 0, 0.5 or 1")
    if cfg.prior_std is None:
        _check_mle_exists(table, cfg)
    return _maximize(_group(table), table.num_players, cfg)


def _bootstrap(table: GameTable, cfg: RatingConfig, anchor: np.ndarray) -> np.ndarray:
    """[S, P + first_move] anchored ratings (and h) of S refits on resampled games."""
    rng = np.random.default_rng(cfg.seed)
    p, out = table.num_players, []
    for i in range(cfg.bootstrap_samples):
        index = rng.integers(0, table.num_games, table.num_games)
        try:
            theta = _point_fit(table.take(index), cfg)[0]
        except RatingError as err:
            raise RatingError(f"bootstrap resample {i}: {err}") from None
        out.append(np.concatenate([anchor @ theta[:p], theta[p : p + int(cfg.first_move)]]))
    return np.array(out)


def fit_ratings(table: GameTable, config: RatingConfig | None = None) -> Ratings:
    """Fit Bradley-Terry ratings (Elo scale) with intervals to a table of games."""
    cfg = config or RatingConfig()
    cfg.validate()
    p = table.num_players
    anchor = _anchor_matrix(table.players, cfg)
    theta, log_lik, hess = _point_fit(table, cfg)
    z = NormalDist().inv_cdf(0.5 + cfg.confidence / 2)
    rating = anchor @ theta[:p] + cfg.anchor_rating
    h = float(theta[p]) if cfg.first_move else None
    if cfg.intervals == "hessian":
        cov = _covariance(hess, p, cfg.prior_std is None)
        stderr = np.sqrt(np.clip(np.diag(anchor @ cov[:p, :p] @ anchor.T), 0.0, None))
        lower, upper = rating - z * stderr, rating + z * stderr
        h_err = float(np.sqrt(cov[p, p])) if cfg.first_move else None
    else:
        samples = _bootstrap(table, cfg, anchor)
        tail = 100 * (1 - cfg.confidence) / 2
        shift = cfg.anchor_rating
        lower = np.percentile(samples[:, :p], tail, axis=0) + shift
        upper = np.percentile(samples[:, :p], 100 - tail, axis=0) + shift
        stderr = samples[:, :p].std(axis=0, ddof=1)
        h_err = float(samples[:, p].std(ddof=1)) if cfg.first_move else None
    nu = float(np.exp(theta[-1])) if cfg.draws == "davidson" else None
    return Ratings(
        table.players,
        rating,
        stderr,
        lower,
        upper,
        table.games_played(),
        table.mean_score(),
        h,
        h_err,
        nu,
        log_lik,
        cfg,
    )


def expected_score(rating_a: float, rating_b: float) -> float:
    """Elo's expected score of A against B: 1 / (1 + 10^((r_B - r_A) / 400))."""
    return 1.0 / (1.0 + 10.0 ** ((rating_b - rating_a) / 400.0))


def elo_update(
    rating_a: float, rating_b: float, score_a: float, k: float = 32.0
) -> tuple[float, float]:
    """Both ratings after one game under online Elo with K factor `k`."""
    delta = k * (score_a - expected_score(rating_a, rating_b))
    return rating_a + delta, rating_b - delta


def online_elo(table: GameTable, k: float = 32.0, initial: float = 1000.0) -> np.ndarray:
    """[P] ratings after applying `elo_update` to every game in the table's order."""
    ratings = np.full(table.num_players, float(initial))
    for a, b, score in zip(table.a, table.b, table.score):
        ratings[a], ratings[b] = elo_update(ratings[a], ratings[b], float(score), k)
    return ratings
