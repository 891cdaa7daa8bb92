"""Leagues: matchmaking numerics, config errors, players, arena, store, resume after kill -9."""

from __future__ import annotations

import dataclasses
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from marl.cli.elo import main as elo_main
from marl.cli.league import main as league_main
from marl.core.config import ConfigError
from marl.league.arena import ArenaError, MatchJob, load_game, play_games, play_job
from marl.league.config import MatchmakerConfig, league_from_dict, load_league
from marl.league.kinds import make_player
from marl.league.matchmaking import (
    PoolMember,
    candidate_opponents,
    focal_players,
    pfsp_weights,
    schedule_matches,
    win_rates,
)
from marl.league.players import (
    MCTSPlayer,
    MCTSSpec,
    PlayerEntry,
    PlayerError,
    PolicyPlayer,
    RandomPlayer,
)
from marl.league.runner import run_league
from marl.league.store import (
    GameResult,
    LeagueRunningError,
    LeagueStore,
    ScheduledGame,
    StoreError,
    run_lock,
)

ROOT = Path(__file__).resolve().parents[1]


def _league(rounds: int = 2, workers: int = 0, **players: int) -> dict:
    """A small connect-four league dict: random plus one mcts player per keyword."""
    entries = [{"name": "random", "kind": "random"}]
    entries += [{"name": n, "kind": "mcts", "simulations": s} for n, s in players.items()]
    return {
        "league": {
            "name": "t",
            "rounds": rounds,
            "matches_per_round": 3,
            "games_per_match": 2,
            "workers": workers,
        },
        "matchmaker": {"kind": "pfsp", "weighting": "hard"},
        "players": entries,
    }


def _games(db: Path) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "SELECT round, slot, player_a, player_b, score_a, first, moves FROM games "
            "ORDER BY round, slot"
        ).fetchall()


def _scheduled(n: int, a_first: bool = True) -> list[ScheduledGame]:
    return [ScheduledGame(0, i, 0, "a", "b", a_first ^ (i % 2 == 1), 100 + i) for i in range(n)]


def test_pfsp_weights_hard_and_variance_exact():
    x = np.array([0.0, 0.5, 1.0, 0.25])
    assert pfsp_weights(x, "hard", 2.0) == pytest.approx(np.array([1, 0.25, 0, 0.5625]) / 1.8125)
    assert pfsp_weights(x, "hard", 1.0) == pytest.approx(np.array([1, 0.5, 0, 0.75]) / 2.25)
    assert pfsp_weights(x, "variance") == pytest.approx(np.array([0, 0.25, 0, 0.1875]) / 0.4375)
    assert pfsp_weights(np.ones(4), "hard") == pytest.approx([0.25] * 4)  # beats all: uniform
    with pytest.raises(ValueError, match="'hard' or 'variance'"):
        pfsp_weights(x, "soft")


def test_win_rates_are_smoothed_towards_half():
    score, count = np.array([[0.0, 3.0], [1.0, 0.0]]), np.array([[0.0, 4.0], [4.0, 0.0]])
    assert win_rates(score, count, 1.0) == pytest.approx(np.array([[0.5, 3.5 / 5], [1.5 / 5, 0.5]]))


def test_latest_vs_past_plays_own_snapshots_and_fixed_players():
    pool = [
        PoolMember("random"),
        PoolMember("az_0", "az", 0),
        PoolMember("az_2", "az", 2),
        PoolMember("az_1", "az", 1),
        PoolMember("ppo_0", "ppo", 0),
    ]
    assert focal_players(pool) == [2, 4]
    assert candidate_opponents(pool, 2, "latest_vs_past") == [0, 1, 3]
    assert candidate_opponents(pool, 2, "uniform") == [0, 1, 3, 4]
    assert focal_players(pool[:1] + [PoolMember("mcts")]) == [0, 1]  # no learners: all focal


def test_schedule_matches_is_seeded_and_follows_pfsp_weights():
    pool = [PoolMember(n) for n in "abcd"]
    rates = np.full((4, 4), 0.5)
    rates[0] = [0.5, 1.0, 0.0, 0.5]  # a always beats b, never beats c
    config = MatchmakerConfig(kind="pfsp", weighting="hard", p=2.0)
    pairs = [
        schedule_matches(pool, rates, 4, config, np.random.default_rng(s))[0] for s in range(200)
    ]
    opponents = np.bincount([b for _, b in pairs], minlength=4)
    assert opponents[1] == 0 and opponents[0] == 0  # never itself, never the beaten one
    assert 0.7 < opponents[2] / opponents[3] / 4.0 < 1.3  # weights 1 : 0.25
    rng = np.random.default_rng
    assert schedule_matches(pool, rates, 8, config, rng(3), 2) == schedule_matches(
        pool, rates, 8, config, rng(3), 2
    )
    assert [f for f, _ in schedule_matches(pool, rates, 6, config, rng(0), 2)] == [2, 3, 0, 1, 2, 3]


def test_league_config_errors_name_the_fix(tmp_path):
    data = _league(m40=40)
    data["players"][1]["simulation"] = 10
    with pytest.raises(ConfigError, match="did you mean simulations"):
        league_from_dict(data)
    with pytest.raises(ConfigError, match="did you mean mcts"):
        league_from_dict({**_league(), "players": [{"name": "x", "kind": "mtcs"}] * 2})
    with pytest.raises(ConfigError, match="repeated: random"):
        league_from_dict({**_league(), "players": [{"name": "random", "kind": "random"}] * 2})
    with pytest.raises(ConfigError, match="did you mean matchmaker"):
        league_from_dict({**_league(m40=40), "matchmaking": {}})
    with pytest.raises(ConfigError, match="matches_per_round=0"):
        league_from_dict({**_league(m40=40), "league": {"matches_per_round": 0}})
    snapshot_like = [{"name": "random", "kind": "random"}, {"name": "az@8", "kind": "random"}]
    with pytest.raises(ConfigError, match=r"\(az@8\): '@' is kept for snapshot names"):
        league_from_dict({**_league(), "players": snapshot_like})
    for key, value in [("prior_games", 0.0), ("p", -2.0)]:  # 0 prior games: 0/0 win rates
        with pytest.raises(ConfigError, match=f"{key}={value}: expected a positive number"):
            league_from_dict({**_league(m40=40), "matchmaker": {key: value}})


def test_learner_configs_are_checked_before_any_game(tmp_path, capsys):
    data = _league(m10=10)
    data["players"].append({"name": "az", "kind": "alphazero", "config": {"num_game": 8}})
    with pytest.raises(ConfigError, match=r"players\[2\] \(az\).*did you mean num_games"):
        league_from_dict(data)
    data["players"][-1] = {"name": "az", "kind": "alphazero", "checkpoint": "az.pt"}
    assert league_from_dict(data).players[-1].spec.checkpoint == "az.pt"
    with pytest.raises(PlayerError, match="no checkpoint at az.pt"):
        run_league(league_from_dict(data), tmp_path)
    data["players"][-1] = {"name": "p", "kind": "ppo"}
    with pytest.raises(ConfigError, match="needs team = "):
        league_from_dict(data)
    with pytest.raises(ConfigError, match="kind='snapshot' is unknown"):
        league_from_dict(
            {**data, "players": data["players"][:2] + [{"name": "s", "kind": "snapshot"}]}
        )
    path = tmp_path / "ppo.toml"
    path.write_text(
        '[[players]]\nname = "a"\nkind = "random"\n'
        '[[players]]\nname = "p"\nkind = "ppo"\nteam = "agent"\n'
    )
    assert league_main(["run", str(path), "--out", str(tmp_path / "out")]) == 2
    assert "kind 'ppo' cannot play OpenSpiel board games" in capsys.readouterr().err
    path.write_text(
        '[league]\nenv = "openspiel/kuhn_poker"\n[[players]]\nname = "a"\nkind = "random"\n'
        '[[players]]\nname = "az"\nkind = "alphazero"\n'
    )
    assert league_main(["run", str(path), "--out", str(tmp_path / "out")]) == 2
    assert "alphazero players need a deterministic two-player" in capsys.readouterr().err
    assert not (tmp_path / "league.db").exists() and not (tmp_path / "out").exists()


def test_load_game_refuses_unknown_and_non_turn_games():
    assert load_game("openspiel/tic_tac_toe").num_distinct_actions() == 9
    with pytest.raises(ArenaError, match="did you mean openspiel/connect_four"):
        load_game("openspiel/conect_four")
    with pytest.raises(ArenaError, match="two-player game with alternating"):
        load_game("openspiel/matrix_rps")
    with pytest.raises(ArenaError, match="did you mean openspiel/connect_four"):
        load_game("connect_four")
    with pytest.raises(ArenaError, match="needs exactly two"):
        load_game("mpe/simple_spread-v3")
    with pytest.raises(ArenaError, match="Unknown parameter 'rows'"):
        load_game("openspiel/tic_tac_toe", {"rows": 4})
    assert load_game("openspiel/hex", {"board_size": 4}).num_distinct_actions() == 16


def test_games_do_not_depend_on_batching_and_chance_is_seeded():
    for env in ("openspiel/connect_four", "openspiel/kuhn_poker"):
        game = load_game(env)
        players = (RandomPlayer(), RandomPlayer())
        games = _scheduled(6)
        together = play_games(game, players, ("a", "b"), games)
        alone = [play_games(game, players, ("a", "b"), [g])[0] for g in games]
        assert [(r.score_a, r.moves) for r in together] == [(r.score_a, r.moves) for r in alone]
        assert len({r.moves for r in together}) > 1 or env.endswith("poker")


def test_mcts_beats_random_and_policy_adapter_sees_one_agent_arrays():
    game = load_game("openspiel/connect_four")
    mcts = MCTSPlayer(game, MCTSSpec(simulations=200))
    results = play_games(game, (mcts, RandomPlayer()), ("mcts", "random"), _scheduled(4))
    assert [r.score_a for r in results] == [1.0] * 4

    class LowestLegal:
        def act(self, obs, action_mask, *, greedy=True):
            assert obs.shape[1:] == (1, 126) and action_mask.shape[1:] == (1, 7) and greedy
            return np.argmax(action_mask, axis=-1)

    results = play_games(game, (PolicyPlayer(LowestLegal()), mcts), ("low", "mcts"), _scheduled(2))
    assert [r.score_a for r in results] == [0.0, 0.0]
    with pytest.raises(PlayerError, match="did you mean mcts"):
        make_player(game, PlayerEntry("x", "mtcs"))


def test_store_records_each_game_once_and_refuses_another_config(tmp_path):
    with LeagueStore(tmp_path / "league.db") as store:
        store.start_run({"league": {"rounds": 1, "seed": 0}, "players": []}, "v1")
        store.schedule(_scheduled(3))
        assert store.record(GameResult(0, 1, 1.0, 7, 0.1))
        assert not store.record(GameResult(0, 1, 0.0, 9, 0.1))  # already stored: ignored
        assert [g.slot for g in store.pending(0)] == [0, 2]
        assert store.game_rows()[0][2:6] == ("a", "b", 1.0, "b")  # slot 1: b moved first
        with pytest.raises(StoreError, match="never scheduled"):
            store.record(GameResult(5, 0, 1.0, 7, 0.1))
        store.start_run({"league": {"rounds": 4, "seed": 0}, "players": []}, "v2")  # extend: ok
        with pytest.raises(StoreError, match=r"changed: league\)"):
            store.start_run({"league": {"rounds": 4, "seed": 1}, "players": []}, "v2")


def test_league_runs_resumes_idempotently_and_reports(tmp_path, capsys):
    config = league_from_dict(_league(rounds=2, m10=10, m50=50))
    db = run_league(config, tmp_path)
    first = _games(db)
    assert config.planned_games == len(first) == 12 and len({(r, s) for r, s, *_ in first}) == 12
    assert run_league(config, tmp_path) == db and _games(db) == first  # nothing replayed
    longer = dataclasses.replace(config, league=dataclasses.replace(config.league, rounds=3))
    run_league(longer, tmp_path)
    assert _games(db)[:12] == first and len(_games(db)) == 18
    assert league_main(["status", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "18/18 games, 3/3 rounds, 3 run(s)" in out and "m50" in out
    assert league_main(["report", str(db), "--out", str(tmp_path / "r.html")]) == 0
    page = (tmp_path / "r.html").read_text()
    assert page.count("data:image/png;base64,") == 3 and "<td>m50</td>" in page
    assert league_main(["status", str(tmp_path / "nothing")]) == 2
    assert elo_main([str(tmp_path), "--no-plot", "--anchor", "random", "--anchor-rating", "0"]) == 0
    assert "random=0" in capsys.readouterr().out
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE x (a)").connection.commit()
    assert league_main(["report", str(other)]) == 2
    assert "not a league's" in capsys.readouterr().err


def test_shipped_example_league_parses_with_baselines_of_different_budgets():
    config = load_league(ROOT / "leagues" / "connect_four_baselines.toml")
    budgets = sorted(p.spec.simulations for p in config.players if p.kind == "mcts")
    assert [p.kind for p in config.players].count("random") == 1
    assert len(budgets) >= 3 and len(set(budgets)) == len(budgets)


def _count(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return conn.execute("SELECT COUNT(*) FROM games").fetchone()[0]
    except sqlite3.OperationalError:  # not created yet
        return 0


def test_kill_9_and_resume_loses_and_duplicates_nothing(tmp_path):
    toml = tmp_path / "kill.toml"
    toml.write_text(
        '[league]\nname = "kill"\nrounds = 4\nmatches_per_round = 6\ngames_per_match = 2\n'
        'workers = 2\n[matchmaker]\nkind = "uniform"\n'
        '[[players]]\nname = "random"\nkind = "random"\n'
        '[[players]]\nname = "m300"\nkind = "mcts"\nsimulations = 300\n'
        '[[players]]\nname = "m600"\nkind = "mcts"\nsimulations = 600\n'
    )
    out, db = tmp_path / "out", tmp_path / "out" / "league.db"
    cmd = [sys.executable, "-m", "marl.cli.league", "run", str(toml), "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 60
        while _count(db) < 4 and proc.poll() is None and time.time() < deadline:
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        before = _games(db)
        assert 4 <= len(before) < 48, "the run must be killed part-way"
        deadline = time.time() + 10  # orphaned workers notice and exit
        while time.time() < deadline:
            try:
                os.killpg(proc.pid, 0)
                time.sleep(0.1)
            except ProcessLookupError:
                break
        else:
            pytest.fail("arena workers outlived the killed league process")
        subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, check=True, timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    after = _games(db)
    assert len(after) == 48 and len({(r, s) for r, s, *_ in after}) == 48
    assert set(before) <= set(after)  # finished games were kept, not replayed
    # Games are reproducible from their seeds: replay a few and compare.
    config = load_league(toml)
    with LeagueStore(db) as store:
        schedule = store.conn.execute("SELECT * FROM schedule ORDER BY round, slot").fetchall()
    entries = {p.name: p for p in config.players}
    stored = {(r, s): (score, moves) for r, s, _, _, score, _, moves in after}
    for row in schedule[:: len(schedule) // 4]:
        g = ScheduledGame(row[0], row[1], row[2], row[3], row[4], bool(row[5]), row[6])
        job = MatchJob(config.league.env, entries[g.player_a], entries[g.player_b], (g,))
        (result,) = play_job(job)
        assert (result.score_a, result.moves) == stored[(g.round, g.slot)]


def test_scheduling_a_round_is_one_transaction_across_connections(tmp_path):
    """Two writers both scheduling round 0: the second is told so, not an IntegrityError."""
    db = tmp_path / "league.db"
    with LeagueStore(db) as one, LeagueStore(db) as two:
        assert not one.has_round(0) and not two.has_round(0)  # both decide to schedule it
        assert one.schedule(_scheduled(3))
        assert not two.schedule(_scheduled(3))
        assert [g.slot for g in two.scheduled(0)] == [0, 1, 2]


def test_a_second_league_run_says_who_is_running(tmp_path, capsys):
    """Another process holds the run lock: `league run` exits 2 naming its pid."""
    toml = tmp_path / "busy.toml"
    toml.write_text(
        '[league]\nname = "busy"\nrounds = 1\nmatches_per_round = 1\ngames_per_match = 1\n'
        '[matchmaker]\nkind = "uniform"\n[[players]]\nname = "random"\nkind = "random"\n'
        '[[players]]\nname = "m2"\nkind = "mcts"\nsimulations = 2\n'
    )
    out = tmp_path / "out"
    holder = (
        "import sys, time; from marl.league.store import run_lock\n"
        "with run_lock(sys.argv[1]):\n    print('locked', flush=True); time.sleep(60)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-c", holder, str(out / "league.db")]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        assert league_main(["run", str(toml), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert f"league already running (pid {proc.pid})" in err and "Traceback" not in err
    finally:
        proc.kill()
        proc.wait()
    assert league_main(["run", str(toml), "--out", str(out)]) == 0  # the holder died: runs


def test_run_lock_is_exclusive_and_a_stale_lock_file_does_not_block(tmp_path):
    db = tmp_path / "league.db"
    (tmp_path / "league.db.lock").write_text("999999999")  # left by a process long gone
    with run_lock(db):
        assert (tmp_path / "league.db.lock").read_text() == str(os.getpid())
        with pytest.raises(LeagueRunningError, match=f"pid {os.getpid()}"), run_lock(db):
            pass
    with run_lock(db):  # released on exit
        pass
