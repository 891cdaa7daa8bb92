"""Bradley-Terry/Elo ratings: hand-worked cases, recovery of known ratings, online Elo, CLI."""

from __future__ import annotations

import math

import numpy as np
import pytest

from marl.cli.elo import main as elo_main
from marl.league.games import GamesError, GameTable, game_table, read_games_csv
from marl.league.ratings import (
    ELO_SCALE,
    RatingConfig,
    RatingError,
    elo_update,
    expected_score,
    fit_ratings,
    online_elo,
)

MLE = RatingConfig(prior_std=None)


def _repeat(*records: tuple, times: int = 1) -> list[tuple]:
    return [r for r in records for _ in range(times)]


def _synthetic(seed: int, players: int = 30, games: int = 1500, first_adv: float = 0.0):
    """Games drawn from known ratings (std 150 Elo) under the Bradley-Terry model."""
    rng = np.random.default_rng(seed)
    true = rng.normal(0.0, 150.0, players)
    a = rng.integers(0, players, games)
    b = (a + rng.integers(1, players, games)) % players
    first = rng.choice([-1, 1], games).astype(np.int8)
    p_win = 1.0 / (1.0 + 10.0 ** (-(true[a] - true[b] + first * first_adv) / 400.0))
    score = (rng.random(games) < p_win).astype(np.float64)
    names = tuple(f"p{i:02d}" for i in range(players))
    return true, GameTable(names, a, b, score, first)


def test_three_of_four_gives_400_log10_3_and_hand_worked_stderr():
    table = game_table(_repeat(("A", "B", 1.0, None), times=3) + [("A", "B", 0.0, None)])
    fit = fit_ratings(table, MLE)
    assert fit.rating[0] - fit.rating[1] == pytest.approx(400 * math.log10(3), abs=1e-9)
    assert fit.rating.mean() == pytest.approx(1000.0)
    # Fisher information of the difference: n p (1-p) / s^2 = 0.75 / s^2; mean-anchored
    # ratings are +-diff/2, so their variance is s^2 / 3.
    assert fit.stderr == pytest.approx([ELO_SCALE / math.sqrt(3)] * 2, rel=1e-9)
    assert fit.upper[0] - fit.rating[0] == pytest.approx(1.959964 * ELO_SCALE / math.sqrt(3))


def test_draws_count_half_and_davidson_matches_empirical_frequencies():
    # 4 wins, 2 draws, 1 loss: as halves, A scores 5 of 7 -> diff = 400 log10(5/2).
    records = _repeat(("A", "B", 1.0, None), times=4) + _repeat(("A", "B", 0.5, None), times=2)
    table = game_table(records + [("B", "A", 1.0, None)])
    half = fit_ratings(table, MLE)
    assert half.rating[0] - half.rating[1] == pytest.approx(400 * math.log10(5 / 2), abs=1e-9)
    # Davidson is saturated for two players: diff = 400 log10(w/l), nu = d / sqrt(w l).
    dav = fit_ratings(table, RatingConfig(prior_std=None, draws="davidson"))
    assert dav.rating[0] - dav.rating[1] == pytest.approx(400 * math.log10(4), abs=1e-9)
    assert dav.draw_nu == pytest.approx(2 / math.sqrt(4), abs=1e-9)


def test_first_move_advantage_hand_case():
    # A first: A wins 3 of 4 -> (d + h) = s ln 3; B first: A wins 2 of 4 -> (d - h) = 0.
    records = _repeat(("A", "B", 1.0, "A"), times=3) + [("A", "B", 0.0, "A")]
    records += _repeat(("B", "A", 1.0, "B"), ("B", "A", 0.0, "B"), times=2)
    fit = fit_ratings(game_table(records), RatingConfig(prior_std=None, first_move=True))
    assert fit.rating[0] - fit.rating[1] == pytest.approx(200 * math.log10(3), abs=1e-9)
    assert fit.first_move_advantage == pytest.approx(200 * math.log10(3), abs=1e-9)


def test_mle_expected_scores_equal_actual_scores():
    _, table = _synthetic(3, players=8, games=400)
    fit = fit_ratings(table, MLE)
    r = fit.rating
    expected = 1.0 / (1.0 + 10.0 ** (-(r[table.a] - r[table.b]) / 400.0))
    p = table.num_players
    exp_total = np.bincount(table.a, expected, p) + np.bincount(table.b, 1 - expected, p)
    got_total = np.bincount(table.a, table.score, p) + np.bincount(table.b, 1 - table.score, p)
    assert exp_total == pytest.approx(got_total, abs=1e-7)


def test_fit_recovers_known_ratings_within_intervals_at_stated_rate():
    hits = []
    for seed in range(4):
        true, table = _synthetic(seed)
        fit = fit_ratings(table)
        centred = true - true.mean() + 1000.0
        hits.extend((fit.lower <= centred) & (centred <= fit.upper))
    coverage = float(np.mean(hits))
    assert 0.85 <= coverage <= 0.995, coverage


def test_first_move_advantage_is_recovered():
    _, table = _synthetic(7, games=3000, first_adv=60.0)
    fit = fit_ratings(table, RatingConfig(first_move=True))
    assert abs(fit.first_move_advantage - 60.0) < 2.5 * fit.first_move_stderr
    assert fit.first_move_stderr < 20.0


def test_order_of_games_does_not_matter():
    _, table = _synthetic(1, players=10, games=500)
    perm = np.random.default_rng(0).permutation(table.num_games)
    # also swap sides of half the games: (a, b, s, f) -> (b, a, 1 - s, -f)
    swap = np.arange(table.num_games) % 2 == 0
    shuffled = GameTable(
        table.players,
        np.where(swap, table.b, table.a)[perm],
        np.where(swap, table.a, table.b)[perm],
        np.where(swap, 1 - table.score, table.score)[perm],
        np.where(swap, -table.first, table.first)[perm].astype(np.int8),
    )
    for config in (RatingConfig(), RatingConfig(first_move=True, draws="davidson")):
        x, y = fit_ratings(table, config), fit_ratings(shuffled, config)
        assert x.rating == pytest.approx(y.rating, abs=1e-8)
        assert x.stderr == pytest.approx(y.stderr, abs=1e-8)


def test_anchor_player_is_pinned_and_differences_unchanged():
    _, table = _synthetic(2, players=6, games=300)
    mean = fit_ratings(table)
    pinned = fit_ratings(table, RatingConfig(anchor="p03", anchor_rating=0.0))
    assert pinned.rating[3] == 0.0 and pinned.stderr[3] == 0.0
    assert pinned.rating - pinned.rating[0] == pytest.approx(mean.rating - mean.rating[0])
    with pytest.raises(RatingError, match="did you mean p03"):
        fit_ratings(table, RatingConfig(anchor="p3"))


def test_all_wins_and_disconnected_groups_stay_finite_with_prior_and_error_without():
    unbeaten = game_table(_repeat(("A", "B", 1.0, None), ("B", "C", 0.5, None), times=5))
    fit = fit_ratings(unbeaten)
    assert np.all(np.isfinite(fit.rating)) and fit.rating[0] > fit.rating[1] + 300
    assert fit.stderr[0] > 300  # an undefeated record gets a wide interval
    with pytest.raises(RatingError, match="A won or lost every game"):
        fit_ratings(unbeaten, MLE)
    split = game_table(
        _repeat(("A", "B", 1.0, None), ("B", "A", 1.0, None), times=3)
        + [("C", "D", 1.0, None), ("D", "C", 0.0, None), ("D", "C", 1.0, None)]
    )
    fit = fit_ratings(split)
    assert fit.rating[:2].mean() == pytest.approx(1000.0, abs=1e-6)  # each group centred
    assert fit.rating[2:].mean() == pytest.approx(1000.0, abs=1e-6)
    with pytest.raises(RatingError, match="disconnected groups"):
        fit_ratings(split, MLE)


def test_fits_without_a_finite_maximum_are_refused_not_reported():
    """The first mover always won (the first-move advantage is infinite), or no game was
    decisive (Davidson's draw parameter is): no finite maximum-likelihood fit exists."""
    first_wins = game_table(_repeat(("A", "B", 1.0, "A"), ("B", "A", 1.0, "B"), times=30))
    for intervals in ("hessian", "bootstrap"):
        with pytest.raises(RatingError, match="did not converge to finite ratings"):
            fit_ratings(first_wins, RatingConfig(prior_std=None, first_move=True,
                                                 intervals=intervals))  # fmt: skip
    fit = fit_ratings(first_wins, RatingConfig(first_move=True))  # with the prior: finite
    assert fit.rating == pytest.approx([1000.0, 1000.0], abs=1e-6)
    draws = game_table(_repeat(("A", "B", 0.5, None), ("B", "C", 0.5, None), times=5))
    with pytest.raises(RatingError, match="at least one decisive game"):
        fit_ratings(draws, RatingConfig(prior_std=None, draws="davidson"))
    for bad, says in [({"prior_std": math.nan}, "prior_std=nan"),
                      ({"prior_std": math.inf}, "prior_std=inf"),
                      ({"anchor_rating": math.nan}, "anchor_rating=nan")]:  # fmt: skip
        with pytest.raises(RatingError, match=says):
            RatingConfig(**bad).validate()


def test_bootstrap_intervals_are_seeded_and_cover_the_estimate():
    _, table = _synthetic(4, players=6, games=400)
    config = RatingConfig(intervals="bootstrap", bootstrap_samples=60, seed=5)
    x, y = fit_ratings(table, config), fit_ratings(table, config)
    assert x.lower == pytest.approx(y.lower) and x.upper == pytest.approx(y.upper)
    assert np.all((x.lower < x.rating) & (x.rating < x.upper))
    hessian = fit_ratings(table)
    assert x.stderr == pytest.approx(hessian.stderr, rel=0.35)
    assert "bootstrap of 60 resamples" in x.describe()


def test_online_elo_hand_worked():
    assert expected_score(1000.0, 1000.0) == 0.5
    assert expected_score(1400.0, 1000.0) == pytest.approx(10 / 11)
    assert elo_update(1000.0, 1000.0, 1.0, k=32) == (1016.0, 984.0)
    table = game_table([("A", "B", 1.0, None), ("B", "A", 0.5, None)])
    a, b = online_elo(table, k=32)
    # game 2: B (984) draws A (1016): A expects 1/(1+10^(-32/400)) = 0.54592
    delta = 32 * (0.5 - 1 / (1 + 10 ** (-32 / 400)))
    assert (a, b) == pytest.approx((1016 + delta, 984 - delta))


def test_bad_games_are_refused_with_clear_messages(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("player_a,player_b,result\nA,B,1\n")
    with pytest.raises(GamesError, match="lacks column.*score_a"):
        read_games_csv(bad)
    bad.write_text("player_a,player_b,score_a\nA,B,2\n")
    with pytest.raises(GamesError, match="line 2: score_a=2.0 must be in"):
        read_games_csv(bad)
    bad.write_text("player_a,player_b,score_a,first\nA,B,1,C\n")
    with pytest.raises(GamesError, match="first='C'"):
        read_games_csv(bad)


def test_elo_cli_prints_ranked_table_and_writes_png(tmp_path, capsys):
    games = tmp_path / "games.csv"
    rows = ["strong,weak,1,strong", "weak,strong,0,weak", "strong,weak,0.5,weak", "mid,weak,1,"]
    games.write_text("player_a,player_b,score_a,first\n" + "\n".join(rows + ["weak,mid,1,"]) + "\n")
    assert elo_main([str(games), "--first-move"]) == 0
    out = capsys.readouterr().out
    assert out.index("strong") < out.index("mid") < out.index("weak")
    assert "first-move advantage" in out
    assert (tmp_path / "games.elo.png").read_bytes()[:4] == b"\x89PNG"
    assert elo_main([str(tmp_path / "missing.csv")]) == 2
    assert "games file" in capsys.readouterr().err


def test_the_plot_takes_an_interval_that_misses_its_estimate():
    """A bootstrap's percentile interval need not contain the estimate (tiny tables)."""
    import dataclasses

    from marl.league.plots import ratings_png

    fit = fit_ratings(game_table(_repeat(("A", "B", 1.0, None), ("B", "A", 1.0, None))))
    odd = dataclasses.replace(fit, lower=fit.rating + 2.0, upper=fit.rating + 5.0)
    assert ratings_png(odd).startswith(b"\x89PNG")
