"""Learners in leagues: AlphaZero and PPO learners train between rounds, add snapshots, resume."""

from __future__ import annotations

import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tomli_w
import tomllib

from marl.cli.league import main as league_main
from marl.core.checkpoint import load_checkpoint
from marl.league.arena import load_game
from marl.league.config import league_from_dict
from marl.league.learned import SearchTurnPlayer
from marl.league.learners import mean_stats, snapshot_name
from marl.league.matchmaking import PoolMember, calibration_pairs, can_meet, candidate_opponents
from marl.league.runner import LIVE, a_first, run_league
from marl.league.store import LeagueStore, ScheduledGame
from marl.league.teams import RandomTeamPlayer, TeamGame, TeamView, make_team_env, play_team_games

ROOT = Path(__file__).resolve().parents[1]

TINY_AZ = {
    "num_games": 8, "search": {"simulations": 4}, "moves_per_iteration": 4, "train_steps": 2,
    "batch_size": 16, "min_buffer": 16, "buffer_size": 2000, "channels": 8, "blocks": 1,
}  # fmt: skip
TINY_PPO = {"num_envs": 4, "rollout_len": 25, "epochs": 1, "minibatches": 2, "hidden": [16]}


def _merged(table: dict, values: dict) -> dict:
    """`table` with `values` set in it, nested tables (`search`) merged key by key."""
    out = dict(table)
    for key, value in values.items():
        nested = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = _merged(out[key], value) if nested else value
    return out


def _shipped(name: str, rounds: int = 2, **learner: object) -> dict:
    """A shipped league, shrunk for tests: few rounds, no workers, tiny learners."""
    data = tomllib.loads((ROOT / "leagues" / name).read_text())
    data["league"] |= {"rounds": rounds, "workers": 0}
    for p in data["players"]:
        if p["kind"] in ("alphazero", "ppo"):
            tiny = TINY_AZ if p["kind"] == "alphazero" else TINY_PPO
            p |= {"iterations_per_round": 2, "snapshot_every": 2, **learner}
            p["config"] = _merged(p["config"], tiny)
            if p["kind"] == "alphazero":
                p["simulations"] = 4
        if p["kind"] == "mcts":
            p["simulations"] = min(p["simulations"], 50)
    return data


def _rows(db: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
        return conn.execute(sql).fetchall()


def test_mean_stats_snapshot_names_and_roles_exact():
    stats = [{"a": 1.0, "b": math.nan}, {"a": 3.0}, {"a": 5.0, "c": 2.0}]
    out = mean_stats(stats)
    assert out["a"] == 3.0 and out["c"] == 2.0 and math.isnan(out["b"])
    assert snapshot_name("az", 40) == "az@40"
    game = TeamGame("mpe/simple_tag-v3", {}, ("adversary", "agent"), ((0, 1, 2), (3,)))
    pred, prey, anyone = (
        PoolMember("p", team="adversary"),
        PoolMember("q", team="agent"),
        PoolMember("r"),
    )
    assert [a_first(game, pred, prey, i) for i in (0, 1)] == [True, True]  # fixed roles
    assert [a_first(game, prey, pred, i) for i in (0, 1)] == [False, False]
    assert [a_first(game, anyone, prey, 0), a_first(game, anyone, pred, 0)] == [True, False]
    assert [a_first(game, anyone, anyone, i) for i in (0, 1)] == [True, False]  # alternate
    assert [a_first(None, pred, prey, i) for i in (0, 1)] == [True, False]  # board game
    assert not can_meet(pred, PoolMember("p2", team="adversary")) and can_meet(pred, anyone)


def test_team_matchmaking_pairs_only_opposite_teams():
    pool = [
        PoolMember("random"),
        PoolMember("pred", "pred", LIVE, "adversary"),
        PoolMember("pred@2", "pred", 2, "adversary"),
        PoolMember("prey", "prey", LIVE, "agent"),
        PoolMember("prey@2", "prey", 2, "agent"),
    ]
    assert candidate_opponents(pool, 1, "pfsp") == [0, 3, 4]
    assert candidate_opponents(pool, 3, "latest_vs_past") == [0, 2]  # the other side, past
    pairs = calibration_pairs(pool, 50, np.random.default_rng(0), LIVE)
    assert set(pairs) == {(0, 2), (0, 4), (2, 4)}  # frozen players only, opposite teams
    assert calibration_pairs(pool, 5, np.random.default_rng(1), LIVE) == calibration_pairs(
        pool, 5, np.random.default_rng(1), LIVE
    )
    with pytest.raises(ValueError, match="no opponent it can play"):
        candidate_opponents(pool[1:3], 0, "pfsp")


class _Still:
    """Always action 0 (no move) for every agent of its team."""

    def __init__(self, team=None):
        self.team = team

    def act(self, obs, mask, rngs):
        return np.zeros(mask.shape[:2], dtype=np.int64)


def test_team_games_follow_the_win_rule_roles_and_seeds():
    game = load_game("mpe/simple_tag-v3", {"max_cycles": 25})
    assert game.teams == ("adversary", "agent") and game.members == ((0, 1, 2), (3,))
    games = [ScheduledGame(0, i, 0, "a", "b", i % 2 == 0, 1000 + i) for i in range(8)]
    players = (RandomTeamPlayer(), RandomTeamPlayer())
    together = play_team_games(game, players, ("a", "b"), games)
    alone = [play_team_games(game, players, ("a", "b"), [g])[0] for g in games]
    assert [r.score_a for r in together] == [r.score_a for r in alone]
    assert {r.moves for r in together} == {25}
    never = TeamGame(game.env_id, game.kwargs, game.teams, game.members, win_threshold=1e9)
    results = play_team_games(never, players, ("a", "b"), games)
    assert [r.score_a for r in results] == [0.0, 1.0] * 4  # the first team never wins
    always = TeamGame(game.env_id, game.kwargs, game.teams, game.members, win_threshold=-1e9)
    assert [r.score_a for r in play_team_games(always, players, ("a", "b"), games)] == [1, 0] * 4
    with pytest.raises(ValueError, match="plays team 'agent', not 'adversary'"):
        play_team_games(game, (_Still("agent"), _Still()), ("a", "b"), games[:1])


def test_team_view_shows_one_team_and_plays_the_other():
    env = make_team_env("mpe/simple_tag-v3", 3, {"max_cycles": 5})
    view = TeamView(env, "agent", _Still("adversary"))
    step = view.reset(seed=0)
    assert view.agents == ["agent_0"] and view.teams == {"agent": [0]}
    assert tuple(step.obs.shape) == (3, 1, 16) and tuple(step.state.shape) == (3, 62)
    before = step.obs[:, 0, 2:4].clone()  # the prey's position
    for _ in range(5):
        step = view.step(np.ones((3, 1), dtype=np.int64))
    assert bool(step.truncated.all()) and tuple(step.reward.shape) == (3, 1)
    assert not np.allclose(step.final_obs[:, 0, 2:4], before)  # the prey moved
    with pytest.raises(ValueError, match="no team 'prey'"):
        TeamView(env, "prey")


def test_connect_four_league_trains_snapshots_and_rates_them(tmp_path, capsys):
    config = league_from_dict(_shipped("connect_four.toml"))
    db = run_league(config, tmp_path)
    snaps = _rows(db, "SELECT name, lineage, version, round, checkpoint FROM players")
    assert [s[:4] for s in snaps] == [("az@2", "az", 2, 0), ("az@4", "az", 4, 1)]
    for *_, path in snaps:
        record = load_checkpoint(tmp_path / path, env_id="classic/connect_four-v0")
        assert set(record["learner"]) == {"weights"}  # weights only
    training = _rows(db, "SELECT learner, round, updates, run FROM training")
    assert training == [("az", 0, 2, 1), ("az", 1, 4, 1)]
    state = load_checkpoint(tmp_path / "learners" / "az.pt")
    assert state["league"]["rounds_trained"] == 2 and state["learner"]["env_steps"] == 4 * 32
    games = _rows(db, "SELECT player_a, player_b FROM games")
    assert len(games) == config.planned_games == 2 * (6 + 3) * 2
    with LeagueStore(db, readonly=True) as store:
        players = store.game_table().players
    assert "az@2" in players and "az" in players  # snapshots are rated from round 1 on
    assert league_main(["status", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "learner az: 2 round(s) trained, 4 updates" in out and "2 snapshot(s)" in out


def test_alphazero_turn_player_rebuilds_boards_from_openspiel_history():
    import pyspiel

    from marl.games import CONNECT_FOUR

    class Fake:
        game = CONNECT_FOUR

    state = pyspiel.load_game("connect_four").new_initial_state()
    for move in (3, 3, 4, 0, 6):
        state.apply_action(move)
    board = SearchTurnPlayer(Fake()).boards(
        [state, pyspiel.load_game("connect_four").new_initial_state()]
    )
    assert board[0].view(6, 7)[5].tolist() == [-1, 0, 0, 1, 1, 0, 1]  # bottom row
    assert board[0].view(6, 7)[4].tolist() == [0, 0, 0, -1, 0, 0, 0]
    assert int(board[1].abs().sum()) == 0


def test_simple_tag_league_pairs_teams_and_trains_both_sides(tmp_path):
    config = league_from_dict(_shipped("simple_tag.toml"))
    db = run_league(config, tmp_path)
    snaps = _rows(db, "SELECT name, team FROM players ORDER BY name")
    assert snaps == [
        ("predators@2", "adversary"), ("predators@4", "adversary"),
        ("prey@2", "agent"), ("prey@4", "agent"),
    ]  # fmt: skip
    team = {"predators": "adversary", "prey": "agent", **dict(snaps), "random": None}
    for a, b, first in _rows(db, "SELECT player_a, player_b, first FROM games"):
        lineage = {n: n.split("@")[0] for n in (a, b)}
        assert team[a] != team[b] or team[a] is None  # never two players of one team
        assert team[first] in ("adversary", None)  # `first` controlled the predators
        assert lineage[a] != lineage[b]
    rows = _rows(db, "SELECT learner, round, updates FROM training ORDER BY learner, round")
    assert rows == [("predators", 0, 2), ("predators", 1, 4), ("prey", 0, 2), ("prey", 1, 4)]
    state = load_checkpoint(tmp_path / "learners" / "prey.pt", env_id="mpe/simple_tag-v3")
    assert state["learner"]["env_steps"] == 4 * 4 * 25 and state["league"]["team"] == "agent"
    with LeagueStore(db, readonly=True) as store:
        assert {"predators@2", "prey@2"} <= set(store.game_table().players)


def test_any_learner_on_the_protocol_can_learn_a_team_in_a_league(tmp_path):
    """The league builds learners through the one constructor: an IQL prey needs no code
    of its own (no PPO-specific branch), trains, and is snapshotted and played."""
    data = _shipped("simple_tag.toml")
    prey = next(p for p in data["players"] if p.get("team") == "agent")
    prey["algo"] = "iql"
    prey["config"] = {"num_envs": 4, "rollout_steps": 25, "learning_starts": 50,
                      "batch_size": 8, "buffer_size": 200, "hidden": [16]}  # fmt: skip
    db = run_league(league_from_dict(data), tmp_path)
    rows = _rows(db, "SELECT learner, round, updates FROM training ORDER BY learner, round")
    assert ("prey", 1, 4) in rows
    assert ("prey@4", "agent") in _rows(db, "SELECT name, team FROM players")
    state = load_checkpoint(tmp_path / "learners" / "prey.pt", env_id="mpe/simple_tag-v3")
    assert state["algo"] == "iql" and state["learner"]["env_steps"] == 4 * 4 * 25


def _wait_for(db: Path, sql: str, at_least: int, proc: subprocess.Popen, seconds: float) -> None:
    deadline = time.time() + seconds
    while proc.poll() is None and time.time() < deadline:
        try:
            if _rows(db, sql)[0][0] >= at_least:
                return
        except sqlite3.OperationalError:  # not created yet
            pass
        time.sleep(0.01)


def test_kill_9_learner_league_resumes_from_checkpoint(tmp_path):
    data = _shipped("connect_four.toml", rounds=5, iterations_per_round=3, snapshot_every=2)
    data["league"]["env"] = "openspiel/tic_tac_toe"
    data["matchmaker"]["calibration_matches"] = 1
    (tmp_path / "kill.toml").write_text(tomli_w.dumps(data))
    out, db = tmp_path / "out", tmp_path / "out" / "league.db"
    cmd = [sys.executable, "-m", "marl.cli.league", "run", str(tmp_path / "kill.toml"),
           "--out", str(out)]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait_for(db, "SELECT COUNT(*) FROM training", 2, proc, 90)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        before = _rows(db, "SELECT * FROM games")
        checkpoint = load_checkpoint(out / "learners" / "az.pt")["league"]
        trained = checkpoint["rounds_trained"]
        assert 2 <= trained < 5, "the run must be killed part-way"
        subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, check=True, timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    after = _rows(db, "SELECT * FROM games")
    planned = 5 * (6 + 1) * 2
    assert len(after) == planned and len({(r, s) for r, s, *_ in after}) == planned
    assert set(before) <= set(after)  # finished games kept, none replayed
    training = _rows(db, "SELECT round, updates, run FROM training ORDER BY round")
    assert [(r, u) for r, u, _ in training] == [(r, 3 * (r + 1)) for r in range(5)]
    assert [run for _, _, run in training] == [1] * trained + [2] * (5 - trained)
    snaps = _rows(db, "SELECT name FROM players ORDER BY version")
    assert [n for (n,) in snaps] == [f"az@{u}" for u in range(2, 16, 2)]
    assert all((out / "snapshots" / f"{n}.pt").is_file() for (n,) in snaps)
    assert load_checkpoint(out / "learners" / "az.pt")["league"]["updates"] == 15
