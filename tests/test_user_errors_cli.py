"""Issue 20, second part: checkpoints, run files, run folders, --resume, --import, Ctrl-C.

Each test names the item it covers (docs/errors.md has the table of old and new behaviour);
`test_every_command_names_the_bad_value` runs every `marl` subcommand on a list of bad inputs.
"""

from __future__ import annotations

import errno
import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import cli

from marl.cli import main
from marl.cli.train import last_returns
from marl.core import checkpoint as checkpoint_module
from marl.core.checkpoint import CheckpointError, atomic_write_bytes, load_checkpoint
from marl.core.dirlock import hold_dir
from marl.core.trainer import Trainer
from marl.run import loop
from marl.run.loop import CheckpointClock, RunSpec, train
from marl.run.metrics import curve_columns, read_metrics
from marl.run.progress import describe_returns

ROOT = Path(__file__).resolve().parents[1]
TWO_STEP = "matrix/two_step-v0"
TRAIN9 = ["train", "dqn", "--env", TWO_STEP, "--steps", "9"]  # refused before it trains
QUICK = ["--no-progress", "--set", "num_envs=2"]  # qlearning on two_step: about a second


class Evil:
    """Pickles to a call of `print`: a file that needs code execution to load."""

    def __reduce__(self):
        return (print, ("executed",))


def _bad_checkpoints(folder: Path, good: Path) -> None:
    """One file per way a checkpoint can be wrong, named by that way."""
    data = good.read_bytes()
    (folder / "empty.pt").write_bytes(b"")
    (folder / "cut10.pt").write_bytes(data[: len(data) // 10])  # torch: OSError [Errno 22]
    (folder / "cut50.pt").write_bytes(data[: len(data) // 2])
    (folder / "text.pt").write_text("hello\n")  # torch: KeyError: 101
    torch.save({"x": Evil()}, folder / "evil.pt")
    record = torch.load(good, weights_only=True)
    torch.save({k: v for k, v in record.items() if k != "algo"}, folder / "noalgo.pt")
    torch.save({**record, "env_id": "matrix/stag_hunt-v0"}, folder / "otherenv.pt")
    for name in ("empty", "text", "noalgo", "otherenv"):  # run folders to --resume
        (folder / f"run_{name}").mkdir()
        (folder / f"run_{name}" / "checkpoint.pt").write_bytes((folder / f"{name}.pt").read_bytes())


LEAGUE = """[league]
env = "openspiel/tic_tac_toe"
rounds = 1
matches_per_round = 1
games_per_match = 1
workers = 0
[[players]]
name = "random"
kind = "random"
[[players]]
name = "az"
kind = "alphazero"
checkpoint = "{checkpoint}"
"""


def _bad_files(folder: Path) -> None:
    """Run files and league files with wrongly typed keys, and a folder of the user's own."""
    for name, text in {
        "config5": f'env = "{TWO_STEP}"\nsteps = 40\nconfig = 5\n',
        "env5": "env = 5\nsteps = 40\n",
        "kwargs_list": f'env = "{TWO_STEP}"\nsteps = 40\nenv_kwargs = [1, 2]\n',
        "steps_float": f'env = "{TWO_STEP}"\nsteps = 100.7\n',
        "seed_negative": f'env = "{TWO_STEP}"\nsteps = 40\nseed = -1\n',
    }.items():
        (folder / f"{name}.toml").write_text(text)
    np.savez(folder / "demos.npz", obs=np.zeros(3))  # a zip archive, not a torch one
    two = '[[players]]\nname = "a"\nkind = "random"\n[[players]]\nname = "b"\nkind = "random"\n'
    (folder / "players5.toml").write_text("players = 5\n")
    (folder / "league5.toml").write_text("league = 5\n" + two)
    (folder / "matchmaker5.toml").write_text("matchmaker = 5\n" + two)
    (folder / "league_env5.toml").write_text("[league]\nenv = 5\n" + two)
    for name in ("empty", "text", "cut50"):
        checkpoint = folder / f"{name}.pt"
        (folder / f"league_{name}.toml").write_text(LEAGUE.format(checkpoint=checkpoint))
    (folder / "mine").mkdir()
    (folder / "mine" / "metrics.csv").write_text("my,own\n1,2\n")
    (folder / "a_file").write_text("not a folder")
    (folder / "games.csv").write_text("player_a,player_b,score_a\na,b,1\n")
    (folder / "bad.db").write_bytes(b"SQLite format 3\x00" + b"not a database " * 100)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    """A finished dqn run on two_step (`run/`), and every bad file the tests hand to marl."""
    folder = tmp_path_factory.mktemp("world")
    argv = ["train", "dqn", "--env", TWO_STEP, "--steps", "40", "--out", str(folder / "run")]
    assert main([*argv, "--no-progress"]) == 0
    _bad_checkpoints(folder, folder / "run" / "checkpoint.pt")
    _bad_files(folder)
    return folder


# -- 1. checkpoints that are not valid marl checkpoints ---------------------------------------
@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("empty", "empty.pt is empty (0 bytes)"),
        ("cut10", "cut10.pt is truncated or corrupt"),
        ("cut50", "cut50.pt is truncated or corrupt"),
        ("text", "text.pt is not a marl checkpoint: it is not a torch archive"),
        ("evil", "evil.pt holds pickled Python objects that would run code"),
        ("noalgo", "noalgo.pt is a damaged marl checkpoint: 'algo' must be a str"),
    ],
)
def test_a_bad_checkpoint_is_one_line(world, capsys, name: str, message: str) -> None:
    with pytest.raises(CheckpointError) as raised:
        load_checkpoint(world / f"{name}.pt")
    assert message in str(raised.value)
    status, _, err = cli(capsys, "eval", str(world / f"{name}.pt"))
    assert status == 2 and err.count("\n") == 1 and message in err
    assert "weights_only" not in err  # torch's advice to run the file's code is not repeated


def test_an_unreadable_checkpoint_is_one_line(world, capsys, monkeypatch) -> None:
    def refuse(path, mode="r"):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(checkpoint_module, "open", refuse, raising=False)  # root reads all
    status, _, err = cli(capsys, "eval", str(world / "run"))
    assert status == 2 and "checkpoint.pt cannot be read: Permission denied" in err


def test_a_checkpoint_for_another_env_names_the_mismatch(world, capsys) -> None:
    status, _, err = cli(capsys, "eval", str(world / "otherenv.pt"), "--episodes", "1")
    assert status == 2 and err.count("\n") == 1
    assert "otherenv.pt does not fit dqn on matrix/stag_hunt-v0" in err and "size mismatch" in err
    status, _, err = cli(capsys, "train", "--resume", str(world / "run_otherenv"))
    assert status == 2 and "does not fit dqn on matrix/stag_hunt-v0" in err


def test_a_killed_write_leaves_no_temporary_behind(world, tmp_path) -> None:
    run = tmp_path / "run"
    (run).mkdir()
    for name in ("checkpoint.pt", "metrics.csv", "config.toml", "learning_curve.png"):
        shutil_copy(world / "run" / name, run / name)
    stale = [run / ".checkpoint.pt.k1ll3d.tmp", run / ".metrics.csv.abc.tmp"]
    for path in stale:
        path.write_bytes(b"half a write")
    (run / ".mine.tmp").write_bytes(b"the user's")
    loop.resume(run, progress=False, changes={"steps": 300})
    assert not any(p.exists() for p in stale) and (run / ".mine.tmp").exists()


def test_a_folder_a_running_process_writes_is_refused(world, tmp_path, capsys) -> None:
    """While a process trains in a folder (it holds the folder's lock), a second `train --out`
    there and a `--resume` of it are refused before either touches a file: the running
    process's half-written temporary survives. A process that dies drops the lock."""
    busy, in_flight = tmp_path / "busy", tmp_path / "busy" / ".checkpoint.pt.k1ll3d.tmp"
    busy.mkdir()
    in_flight.write_bytes(b"being written")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; "
         "from marl.core.dirlock import hold_dir\nwith hold_dir(Path(sys.argv[1])):\n"
         "    print('held', flush=True); time.sleep(60)", str(busy)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        argv = ["train", "qlearning", "--env", TWO_STEP, "--steps", "40", "--out", str(busy)]
        status, _, err = cli(capsys, *argv, *QUICK)
        assert status == 2 and f"{busy} is in use by another marl run" in err
        assert in_flight.read_bytes() == b"being written"
        with hold_dir(world / "run"):  # a run training there now, as --resume finds it
            status, _, err = cli(capsys, "train", "--resume", str(world / "run"))
        assert status == 2 and "is in use by another marl run" in err
    finally:
        holder.kill()
        holder.wait()
    status, _, _ = cli(capsys, *argv, *QUICK)  # the killed holder's lock went with it
    assert status == 0 and (busy / "checkpoint.pt").is_file()


def test_a_filesystem_that_cannot_lock_a_folder_warns_and_the_run_goes_on(tmp_path, monkeypatch):
    """NFS and some other filesystems refuse `flock` on a folder: a warning, no lock, no
    traceback; any other error from the lock is not swallowed."""
    from marl.core import dirlock

    def refuse(fd: int, operation: int, code: int = errno.ENOLCK) -> None:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(dirlock.fcntl, "flock", refuse)
    with pytest.warns(UserWarning, match="cannot lock a folder"), hold_dir(tmp_path):
        pass
    monkeypatch.setattr(dirlock.fcntl, "flock", lambda fd, op: refuse(fd, op, errno.EIO))
    with pytest.raises(OSError, match="Input/output error"), hold_dir(tmp_path):
        pass


def shutil_copy(source: Path, target: Path) -> None:
    """Copy a file through the atomic writer (as the run wrote it)."""
    atomic_write_bytes(target, source.read_bytes())


# -- 4, 5. run folders and --resume --------------------------------------------------------
def test_out_holding_the_users_files_is_refused_unless_forced(world, tmp_path, capsys) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "metrics.csv").write_text("my,own\n1,2\n")
    argv = ["train", "qlearning", "--env", TWO_STEP, "--steps", "40", "--out", str(mine), *QUICK]
    status, _, err = cli(capsys, *argv)
    assert status == 2 and f"--out {mine} is a folder that is not a marl run" in err
    assert (mine / "metrics.csv").read_text() == "my,own\n1,2\n"
    status, _, _ = cli(capsys, *argv, "--force")
    assert status == 0 and (mine / "checkpoint.pt").is_file()
    status, _, err = cli(capsys, *argv)  # now a run with a checkpoint: resume it instead
    assert status == 2 and f"resume it with --resume {mine}" in err


def test_resume_with_more_steps_extends_a_finished_run(tmp_path, capsys) -> None:
    out = tmp_path / "r"
    argv = ["train", "qlearning", "--env", TWO_STEP, "--steps", "40", "--out", str(out), *QUICK]
    assert cli(capsys, *argv)[0] == 0
    status, out_text, _ = cli(capsys, "train", "--resume", str(out), "--steps", "80")
    assert status == 0 and "steps: 80" in out_text
    assert read_metrics(out / "metrics.csv")[-1]["env_steps"] == 80
    assert load_checkpoint(out / "checkpoint.pt")["run"]["steps"] == 80
    assert "steps = 80" in (out / "config.toml").read_text()
    status, _, err = cli(capsys, "train", "--resume", str(out), "--steps", "60")
    assert status == 2 and "--steps 60: the run in" in err and "already done 80" in err


# -- 6. the checkpoint interval is capped by time --------------------------------------------
def test_a_huge_step_budget_still_checkpoints_every_ten_minutes(monkeypatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    clock = CheckpointClock(RunSpec("dqn", TWO_STEP, steps=10**23), env_steps=0)
    assert clock.every == 10**22 and not clock.due(10**6)
    now[0] += 599.0
    assert not clock.due(2 * 10**6)
    now[0] += 1.0
    assert clock.due(2 * 10**6)
    clock.saved(2 * 10**6)
    assert not clock.due(3 * 10**6)


# -- 7. the progress line and the closing summary --------------------------------------------
def test_progress_shows_each_team_and_self_play_outcomes() -> None:
    tag = {"return/adversary": 6.5, "return/agent": -8.84, "loss": 1.0}
    assert describe_returns(tag) == "return adversary 6.50, agent -8.84"  # not their mean
    selfplay = {"return/player_0": 0.3, "return/player_1": -0.3, "draw_rate": 0.1}
    assert describe_returns(selfplay) == "first player wins 60%, draws 10%"
    assert describe_returns({**selfplay, "eval/score": 0.25}).endswith("score vs baseline 25%")
    assert describe_returns({"loss": 1.0}) is None
    rows = [{"return/team": 5.0}, {"return/team": 7.0}, {"loss": 0.1}]  # last: no episode
    assert last_returns(rows) == "team 7.000" and last_returns([{}]).startswith("none")


# -- 8. the learning curve of a self-play run -------------------------------------------------
def test_self_play_curve_plots_losses_and_the_baseline_score() -> None:
    rows = [{"env_steps": 40.0, "return/player_0": 0.2, "return/player_1": -0.2,
             "draw_rate": 0.1, "loss": 2.0, "policy_loss": 1.5, "value_loss": 0.5}]  # fmt: skip
    assert curve_columns(rows) == (["loss", "policy_loss", "value_loss"], "training loss")
    team_rows = [{"env_steps": 1.0, "return/b": 1.0, "return/a": 0.0, "loss": 3.0}]
    assert curve_columns(team_rows)[0] == ["return/a", "return/b"]


@pytest.mark.skipif(importlib.util.find_spec("pyspiel") is None, reason="needs open_spiel")
def test_alphazero_run_logs_its_score_against_a_fixed_bot(tmp_path) -> None:
    # a real run's default: eval_games = 20 against MCTSBot(eval_bot_simulations = 200)
    config = {"num_games": 8, "channels": 8, "blocks": 1, "min_buffer": 8, "batch_size": 8,
              "search": {"simulations": 4}, "eval_simulations": 4, "eval_games": 3,
              "eval_bot_simulations": 4}  # fmt: skip
    spec = RunSpec("alphazero", "classic/tic_tac_toe-v0", steps=80, eval_every=2)
    run = train(spec, config, out=tmp_path / "az", progress=False)
    scores = [r["eval/score"] for r in run.rows if "eval/score" in r]
    assert len(scores) == len(run.rows) // 2 and all(0.0 <= s <= 1.0 for s in scores)
    evals = [r for r in run.rows if "eval/score" in r]
    assert all(r["eval/games"] == 3 and r["eval/wins"] in (0, 1, 2, 3) for r in evals)
    assert all(r["eval/wins"] == pytest.approx(3 * r["eval/win_rate"]) for r in evals)
    assert (tmp_path / "az" / "learning_curve.png").stat().st_size > 0
    with pytest.raises(ValueError, match="eval_every=2: qlearning has no fixed baseline"):
        train(RunSpec("qlearning", TWO_STEP, steps=8, eval_every=2), out=tmp_path / "q")


# -- 9. envs registered in code --------------------------------------------------------------
def test_import_makes_an_env_registered_in_code_usable(tmp_path, capsys, monkeypatch) -> None:
    (tmp_path / "my_envs_for_marl.py").write_text(
        "import marl\nfrom marl.envs.families.matrix import TwoStepGame\n"
        "marl.register('mine/two_step-v0', TwoStepGame, override=True)\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    status, _, err = cli(capsys, "envs", "show", "mine/two_step-v0")
    assert status == 2 and "--import MODULE" in err
    status, out, _ = cli(capsys, "envs", "show", "mine/two_step-v0", "--import", "my_envs_for_marl")
    assert status == 0 and "mine/two_step-v0" in out
    argv = ["train", "qlearning", "--env", "mine/two_step-v0", "--steps", "8", "--out", "r"]
    assert cli(capsys, *argv, "--import", "my_envs_for_marl", *QUICK)[0] == 0


# -- 10. Ctrl-C in marl train ----------------------------------------------------------------
def test_ctrl_c_says_how_to_resume_and_keeps_the_curve(tmp_path, capsys, monkeypatch) -> None:
    iterate = Trainer.iterate

    def interrupted_at_24_steps(self):
        if self.env_steps >= 24:
            raise KeyboardInterrupt
        return iterate(self)

    monkeypatch.setattr(Trainer, "iterate", interrupted_at_24_steps)
    out = tmp_path / "r"
    argv = ["train", "qlearning", "--env", TWO_STEP, "--steps", "40", "--out", str(out), *QUICK]
    status, _, err = cli(capsys, *argv, "--set", "num_envs=1")
    assert status == 130
    assert err == f"marl train: interrupted; resume with: marl train --resume {out}\n"
    assert (out / "learning_curve.png").is_file() and (out / "checkpoint.pt").is_file()


# -- 11. every subcommand, bad inputs ----------------------------------------------------------
BAD_INPUTS = [
    # checkpoints: marl eval, marl train --resume, a league player
    (["eval", "{w}/empty.pt"], "empty.pt is empty"),
    (["eval", "{w}/cut10.pt"], "cut10.pt is truncated"),
    (["eval", "{w}/text.pt"], "text.pt is not a marl checkpoint"),
    (["eval", "{w}/evil.pt"], "evil.pt holds pickled Python objects"),
    (["eval", "{w}/noalgo.pt"], "noalgo.pt is a damaged marl checkpoint: 'algo'"),
    (["eval", "{w}/nothing.pt"], "no checkpoint at {w}/nothing.pt"),
    (["eval", "{w}/demos.npz"], "demos.npz is not a marl checkpoint: a zip archive of other"),
    (["train", "--resume", "{w}/run_empty"], "run_empty/checkpoint.pt is empty"),
    (["train", "--resume", "{w}/run_text"], "run_text/checkpoint.pt is not a marl checkpoint"),
    (["train", "--resume", "{w}/run_noalgo"], "'algo' must be a str"),
    (["train", "--resume", "{w}/missing"], "no run directory at {w}/missing"),
    (["league", "run", "{w}/league_empty.toml", "--out", "{t}/l"], "empty.pt is empty"),
    (["league", "run", "{w}/league_text.toml", "--out", "{t}/l"], "text.pt is not a marl"),
    (["league", "run", "{w}/league_cut50.toml", "--out", "{t}/l"], "cut50.pt is truncated"),
    # run files and league files with wrongly typed keys
    (["train", "dqn", "--config", "{w}/config5.toml"], "config = 5: expected a table"),
    (["train", "dqn", "--config", "{w}/env5.toml"], "env = 5: expected a string"),
    (["train", "dqn", "--config", "{w}/kwargs_list.toml"], "env_kwargs = [1, 2]: expected"),
    (["train", "dqn", "--config", "{w}/steps_float.toml"], "steps = 100.7: expected a whole"),
    (["train", "dqn", "--config", "{w}/seed_negative.toml"], "seed = -1: expected a whole"),
    (["train", "dqn", "--config", "{w}/absent.toml"], "config file {w}/absent.toml does not"),
    (["league", "run", "{w}/players5.toml"], "players = 5: expected [[players]]"),
    (["league", "run", "{w}/league5.toml"], "league = 5: expected a table"),
    (["league", "run", "{w}/matchmaker5.toml"], "matchmaker = 5: expected a table"),
    (["league", "run", "{w}/league_env5.toml"], "LeagueSettings.env=5: expected str"),
    (["league", "run", "{w}/absent.toml"], "{w}/absent.toml does not exist"),
    # command-line values
    (["train", "dqn", "--env", TWO_STEP, "--steps", "0"], "--steps: 0: expected at least 1"),
    (["train", "dqn", "--env", TWO_STEP, "--steps", "1e3"], "--steps: '1e3': expected a whole"),
    ([*TRAIN9, "--seed", "-1"], "--seed: -1: expected"),
    ([*TRAIN9, "--threads", "0"], "--threads: 0: exp"),
    ([*TRAIN9, "--device", "mps"], "device 'mps' was asked for but torch sees no Apple GPU"),
    ([*TRAIN9, "--set", "hidden=(64,'a')"], "hidden=(64, 'a'): expected int values"),
    ([*TRAIN9, "--set", "batch_size=1e999"], "batch_size=inf: expected an int"),
    (["train", "--resume", "{w}/run", "--actors", "4"], "--actors only apply with --backend"),
    (
        ["rlhf", "sft", "--env", "gym/CartPole-v1", "--demos", "{w}/games.csv", "--out", "{t}/s"],
        "games.csv is not a demonstration file: not a NumPy .npz archive",
    ),
    (
        ["rlhf", "demos", "--env", "gym/CartPole-v1", "--epsilon", "2", "--out", "{t}/d.npz"],
        "--epsilon: 2: expected a probability in [0, 1]",
    ),  # fmt: skip
    (["train", "dqn", "--env", TWO_STEP], "give --env ID and --steps N"),
    (["train", "mapo", "--env", TWO_STEP], "invalid choice: 'mapo'"),
    ([*TRAIN9, "--set", "lr"], "override 'lr' is not"),
    ([*TRAIN9, "--set", "lrr=1"], "has no key 'lrr'"),
    (
        ["train", "dqn", "--env", "mpe/simple_sprad-v3", "--steps", "9", "--out", "{t}/u"],
        "unknown env id 'mpe/simple_sprad-v3'",
    ),  # fmt: skip
    (
        [
            "train",
            "qlearning",
            "--env",
            TWO_STEP,
            "--steps",
            "9",
            "--eval-every",
            "2",
            "--out",
            "{t}/e",
        ],
        "eval_every=2: qlearning has no fixed baseline",
    ),  # fmt: skip
    (["eval", "{w}/run", "--episodes", "0"], "--episodes: 0: expected at least 1"),
    (["eval", "{w}/run", "--render", "{t}/x.mp4"], "pip install 'marl[video]' (imageio-ffmpeg)"),
    (["eval", "{w}/run", "--render", "{t}/x.txt"], "--render {t}/x.txt: expected a .gif"),
    # run folders
    (
        [*TRAIN9, "--out", "{w}/mine"],
        "--out {w}/mine is a folder that is not a marl run (it holds metrics.csv)",
    ),
    ([*TRAIN9, "--out", "{w}/a_file/run"], "--out {w}/a_file/run: cannot write there"),
    (
        [*TRAIN9, "--out", "/sys/marl_run"],
        "--out /sys/marl_run: cannot write there: Operation not permitted",
    ),
    ([*TRAIN9, "--out", "{w}/run"], "{w}/run already holds a run; resume it with --resume {w}/run"),
    (["train", "--resume", "{w}/run", "--env", TWO_STEP], "--env cannot be given with --resume"),
    (["train", "--resume", "{w}/run", "--seed", "3"], "--seed cannot be given with --resume"),
    (["train", "--resume", "{w}/run", "--set", "lr=1"], "--set cannot be given with --resume"),
    (["train", "--resume", "{w}/run", "--out", "{t}/o"], "--out cannot be given with --resume"),
    (["train", "--resume", "{w}/run", "--steps", "8"], "--steps 8: the run in {w}/run has"),
    # --import and env ids
    (["envs", "show", "mine/nothing-v0"], "unknown env id 'mine/nothing-v0'"),
    (["envs", "list", "--import", "no_such_module_x"], "--import no_such_module_x: No module"),
    (["train", "dqn", "--import", "no_such_module_x"], "--import no_such_module_x"),
    (["eval", "{w}/run", "--import", "no_such_module_x"], "--import no_such_module_x"),
    (["league", "run", "{w}/players5.toml", "--import", "no_such_x"], "--import no_such_x"),
    (["envs", "list", "zzz*"], "no env id matches 'zzz*'"),
    # marl elo, league status, play (the first part's inputs)
    (["elo", "{w}/games.csv", "--bootstrap", "-1"], "--bootstrap: -1: expected 0"),
    (["elo", "{w}/bad.db"], "{w}/bad.db cannot be read as a league database"),
    (["elo", "{w}/evil.pt"], "evil.pt"),
    (["league", "status", "{w}/bad.db"], "{w}/bad.db cannot be read as a league database"),
    (["league", "status", "{w}/bad.db", "--top", "0"], "--top: 0: expected at least 1"),
    (["elo", "{w}/games.csv", "--seed", "-1"], "--seed: -1: expected at least 0"),
    (["elo", "{w}/games.csv", "--prior-std", "nan"], "prior_std=nan: expected a positive"),
    (["envs", "check", "matrix/two_step-v0", "--cycles", "0"], "--cycles: 0: expected at least"),
    (["play", "classic/tic_tac_toe-v0", "{w}/run", "--simulations", "0"], "--simulations 0"),
    (["play", "classic/tic_tac_toe-v0", "{w}/text.pt"], "text.pt is not a marl checkpoint"),
]


@pytest.mark.parametrize(
    ("argv", "message"), BAD_INPUTS, ids=lambda v: " ".join(v)[:60] if isinstance(v, list) else None
)
def test_every_command_names_the_bad_value(world, tmp_path, capsys, monkeypatch, argv, message):
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, *rest):  # as if imageio-ffmpeg were not installed
        return None if name == "imageio_ffmpeg" else real_find_spec(name, *rest)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    fill = {"w": str(world), "t": str(tmp_path)}
    status, _, err = cli(capsys, *(a.format(**fill) for a in argv))
    assert status != 0
    assert message.format(**fill) in err.splitlines()[-1]


def test_bad_inputs_are_one_line_through_the_marl_script(world) -> None:
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
    for argv, message in [
        (["eval", str(world / "cut10.pt")], "cut10.pt is truncated or corrupt"),
        ([*TRAIN9, "--threads", "0"], "--threads: 0"),
    ]:
        proc = subprocess.run([sys.executable, "-m", "marl", *argv], env=env,
                              capture_output=True, text=True, timeout=300)  # fmt: skip
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
        assert message in proc.stderr.splitlines()[-1]


def test_there_are_at_least_forty_bad_inputs() -> None:
    assert len(BAD_INPUTS) >= 40
    commands = {" ".join(argv[:2]) if argv[0] in ("envs", "league") else argv[0]
                for argv, _ in BAD_INPUTS}  # fmt: skip
    assert {"train", "eval", "elo", "play", "league run", "league status"} <= commands
    assert {"envs show", "envs list"} <= commands
