"""Issue 20: every user error is one clear line, nothing a user made is overwritten.

Each test names the item it covers; see docs/errors.md for the table of old and new behaviour.
(`marl play` and `marl league run` items live in test_play_cli.py and test_league.py, beside
the fixtures they share.)
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import gymnasium
import numpy as np
import pytest
from conftest import cli

import marl
from marl.envs import registry
from marl.envs.actions import ActionError
from marl.envs.check import check_env
from marl.envs.families.matrix import TwoStepGame
from marl.envs.registry import EnvKwargError

ROOT = Path(__file__).resolve().parents[1]


# -- 1. make / make_vec name the bad argument ------------------------------------------------
@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: marl.make(None), "env_id=None: expected an env id string"),
        (lambda: marl.make("mpe/simple_spread-v3", N=0), "N=0: expected at least 1"),
        (lambda: marl.make("mpe/simple_spread-v3", N=2.5), "N=2.5: expected an integer"),
        (lambda: marl.make("mpe/simple_world_comm-v3", num_food=0), "num_food=0"),
        (lambda: marl.make("matrix/stag_hunt-v0", rounds="3"), "rounds='3': expected an int"),
        (lambda: marl.make_vec("matrix/two_step-v0", num_envs=2.5), "num_envs=2.5: expected"),
        (lambda: marl.make_vec("matrix/two_step-v0", num_envs=True), "num_envs=True"),
    ],
)
def test_make_names_the_bad_argument(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()


# -- 2. register refuses duplicates and bad entry points -------------------------------------
def test_register_refuses_a_duplicate_unless_override() -> None:
    with pytest.raises(registry.RegistrationError, match="already registered.*override=True"):
        marl.register("mpe/simple_spread-v3", TwoStepGame)  # a built-in id
    assert registry.registration("mpe/simple_spread-v3").source == "mpe2"  # untouched
    marl.register("test/dup-v0", TwoStepGame, override=True)
    with pytest.raises(registry.RegistrationError, match="test/dup-v0 is already registered"):
        marl.register("test/dup-v0", "marl.envs.families.matrix:MatrixGameEnv")
    marl.register("test/dup-v0", TwoStepGame)  # the very same registration again: a no-op
    marl.register("test/dup-v0", "marl.envs.families.matrix:MatrixGameEnv", override=True)
    assert marl.make("test/dup-v0").rounds == 10


@pytest.mark.parametrize("entry_point", [123, None, "no_colon", "a:b:c", ""])
def test_register_refuses_a_bad_entry_point(entry_point) -> None:
    with pytest.raises(ValueError, match=r"entry_point=.*'module:attr'"):
        marl.register("test/bad_entry-v0", entry_point)
    assert "test/bad_entry-v0" not in marl.list_envs()


# -- 3. ids without a version --------------------------------------------------------------
def test_unversioned_id_means_the_highest_version() -> None:
    assert marl.make("matrix/two_step").possible_agents == ["agent_0", "agent_1"]
    assert marl.env_spec("matrix/two_step").env_id == "matrix/two_step-v0"
    marl.register("test/versions-v1", TwoStepGame, override=True)
    marl.register("test/versions-v10", TwoStepGame, override=True)
    marl.register("test/versions-v2", TwoStepGame, override=True)
    assert registry.registration("test/versions").env_id == "test/versions-v10"
    with pytest.raises(marl.UnknownEnvError, match="test/versio'"):
        marl.make("test/versio")


# -- 4. listing envs does not import torch --------------------------------------------------
def test_listing_and_showing_envs_do_not_import_torch() -> None:
    code = (
        "import sys; from marl.cli import main; main(['envs', 'list', 'matrix/*']); "
        "main(['envs', 'show', 'matrix/two_step']); print('torch' in sys.modules)"
    )
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.rstrip().endswith("False")


def test_an_illegal_move_in_an_openspiel_game_names_the_legal_ones() -> None:
    env = marl.make("openspiel/tic_tac_toe")
    env.reset(seed=0)
    env.step(4)
    with pytest.raises(ActionError, match=r"action 4 of agent 'player_1' is illegal now.*"
                       r"legal actions: \[0, 1, 2, 3, 5, 6, 7, 8\]"):  # fmt: skip
        env.step(4)  # not a C++ SpielError from the occupied cell
    vec = marl.make_vec("openspiel/goofspiel", 2, seed=0, num_cards=4)
    vec.step(np.zeros((2, 2), int))
    with pytest.raises(ActionError, match=r"legal actions: \[1, 2, 3\]"):
        vec.step(np.zeros((2, 2), int))  # card 0 was played


# -- 5. envs show / envs check ---------------------------------------------------------------
def test_envs_show_prints_the_real_defaults(capsys) -> None:
    status, out, _ = cli(capsys, "envs", "show", "mpe/simple_spread-v3")
    assert status == 0 and "N=3" in out and "local_ratio=0.5" in out and "max_cycles=25" in out
    status, out, _ = cli(capsys, "envs", "show", "matrix/stag_hunt-v0")
    assert "kwargs (defaults): rounds=10\n" in out  # its game is the id, not an option
    with pytest.raises(EnvKwargError, match=r"fixes game='stag_hunt' \(it is part of the id"):
        marl.make("matrix/stag_hunt-v0", game="prisoners_dilemma")
    with pytest.raises(EnvKwargError, match="fixes gym_id='CartPole-v1'"):
        marl.make("gym/CartPole-v1", gym_id="Pendulum-v1")
    spec = marl.env_spec("openspiel/connect_four", rows=5)
    assert spec.default_kwargs["rows"] == 5 and spec.default_kwargs["columns"] == 7
    assert "x_in_row" in spec.valid_kwargs


class FreshSpaces(TwoStepGame):
    """Builds a new observation space on every call: PettingZoo's "exact same object" rule."""

    def observation_space(self, agent: str) -> gymnasium.Space:
        return gymnasium.spaces.Box(0.0, 1.0, (3,), np.float32)


def test_envs_check_explains_the_same_space_object_failure() -> None:
    marl.register("test/fresh_spaces-v0", FreshSpaces, override=True)
    results = {r.rule: r for r in check_env("test/fresh_spaces-v0")}
    message = results["parallel_api_test"].message
    assert "exact same space object" in message and "built a new space on each call" in message
    assert "lies outside" not in message  # the old explanation matched any `observation_space`


# -- 6. marl elo -----------------------------------------------------------------------------
def test_elo_reads_a_csv_that_starts_with_a_bom(tmp_path, capsys) -> None:
    games = tmp_path / "games.csv"
    games.write_bytes("player_a,player_b,score_a\na,b,1\nb,a,0.5\na,b,0\n".encode("utf-8-sig"))
    status, out, _ = cli(capsys, "elo", str(games), "--no-plot")
    assert status == 0 and "│ a " in out and "│ b " in out  # the old error: lacks player_a


@pytest.mark.parametrize("value", ["-1", "1"])
def test_elo_refuses_a_bootstrap_of_fewer_than_two_resamples(tmp_path, capsys, value) -> None:
    games = tmp_path / "games.csv"
    games.write_text("player_a,player_b,score_a\na,b,1\n")
    status, _, err = cli(capsys, "elo", str(games), "--no-plot", f"--bootstrap={value}")
    assert status == 2 and f"--bootstrap: {value}: expected 0" in err


@pytest.mark.parametrize("command", [["elo"], ["league", "status"]])
def test_a_file_that_is_not_sqlite_is_one_line(tmp_path, capsys, command) -> None:
    bad = tmp_path / "league.db"
    bad.write_bytes(b"SQLite format 3\x00" + b"not really a database " * 100)
    status, _, err = cli(capsys, *command, str(bad))
    assert status == 2 and err.count("\n") == 1
    assert f"{bad} cannot be read as a league database: file is not a database" in err


def test_elo_names_a_binary_or_sqlite_file_given_as_csv(tmp_path, capsys) -> None:
    binary = tmp_path / "x.csv"
    binary.write_bytes(bytes(range(128, 256)))
    status, _, err = cli(capsys, "elo", str(binary))
    assert status == 2 and "is not a UTF-8 text CSV" in err


# -- 8. actions are checked against the agent's space ----------------------------------------
@pytest.mark.parametrize(
    "action",
    [2.7, "3", True, np.float32(1.0), None, 7, -1, 10**5000],
    ids=["float", "str", "bool", "np_float", "none", "too_big", "negative", "5000_digits"],
)
def test_classic_env_refuses_an_action_outside_its_space(action) -> None:
    env = marl.make("classic/connect_four-v0")
    env.reset()
    with pytest.raises(ActionError, match=r"of agent 'player_0' is not in its .* Discrete\(7\)"):
        env.step(action)
    assert env.unwrapped.board.abs().sum() == 0  # nothing was played


def test_classic_env_unwrapped_refuses_a_float_too() -> None:
    from marl.games.aec import connect_four_env

    env = connect_four_env()
    env.reset()
    with pytest.raises(ActionError, match="action 2.7 of agent 'player_0'"):
        env.step(2.7)
    env.step(np.int64(3))  # numpy integers are integers
    assert env.agent_selection == "player_1"


def test_made_env_names_the_agent_the_action_and_the_space() -> None:
    env = marl.make("mpe/simple_spread-v3")
    env.reset(seed=0)
    with pytest.raises(
        ActionError, match=r"action 5 of agent 'agent_0' .* Discrete\(5\): .*0\.\.4"
    ):
        env.step({a: 5 for a in env.agents})
    with pytest.raises(ActionError, match=r"no action for agent 'agent_1' \(action space Disc"):
        env.step({"agent_0": 1, "agent_2": 1})
    with pytest.raises(ActionError, match="unknown agent"):
        env.step({**{a: 1 for a in env.agents}, "agent_9": 1})
    env.step({a: np.int64(1) for a in env.agents})
    box = marl.make("mpe/simple_spread-v3", continuous_actions=True)
    box.reset(seed=0)
    with pytest.raises(ActionError, match=r"expected shape \(5,\), got \(4,\)"):
        box.step({a: np.zeros(4) for a in box.agents})
    turn_based = marl.make("openspiel/goofspiel", parallel=True)
    turn_based.reset(seed=0)
    with pytest.raises(ActionError, match="no action for agent 'player_0'"):
        turn_based.step({})


def test_a_sync_vector_env_checks_actions_unless_a_learner_turns_it_off() -> None:
    """`make_vec` checks a user's actions on every backend; a learner's worker (its actions
    come from its own masked policy) steps the envs unchecked, with the same arrays."""
    from marl.envs.actions import CheckedParallel

    refusing = marl.make_vec("gym/FrozenLake-v1", 2, seed=0)
    with pytest.raises(ActionError, match=r"action 7 of agent .* Discrete\(4\)"):
        refusing.step(np.full((2, 1), 7))
    refusing.close()
    checked = marl.make_vec("gym/FrozenLake-v1", 2, seed=0)
    unchecked = marl.make_vec("gym/FrozenLake-v1", 2, seed=0, check_actions=False)
    assert not any(isinstance(env, CheckedParallel) for env in unchecked.envs)
    for action in (0, 1, 2, 1):
        a, b = (vec.step(np.full((2, 1), action)) for vec in (checked, unchecked))
        assert all(np.array_equal(x, y) for x, y in zip(a, b))
    checked.close()
    unchecked.close()
    pendulum = marl.make_vec("gym/Pendulum-v1", 2, seed=0, check_actions=False)
    actions = np.zeros((2, 1, 1), np.float32)
    actions[1, 0, 0] = np.nan
    with pytest.raises(ActionError, match=r"agent 'agent_0' \(env 1\) is not finite"):
        pendulum.step(actions)  # unchecked, a diverged policy still stops the run
    pendulum.close()


# -- 10. broken pipes and --help -------------------------------------------------------------
@pytest.mark.parametrize("argv", [["envs", "list"], ["envs", "check", "matrix/two_step-v0"]])
def test_a_closed_stdout_ends_quietly(argv) -> None:
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    proc = subprocess.Popen([sys.executable, "-m", "marl", *argv], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    proc.stdout.close()  # the reader is gone before the first write, as with `| head -0`
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 1
    assert err == ""


def test_help_describes_the_commands_for_a_user(capsys) -> None:
    status, out, _ = cli(capsys, "--help")
    assert status == 0 and "subcommand module" not in out
    for command in ("envs", "train", "eval", "elo", "league", "play"):
        assert f"marl {command} " in out  # an example of each
    assert "Train, evaluate and rate" in out
