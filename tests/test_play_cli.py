"""`marl play ENV_ID CHECKPOINT`: a scripted human plays tic-tac-toe through the real CLI."""

from __future__ import annotations

import builtins
import itertools
import re

import pytest
import torch

from marl.cli import main
from marl.core.checkpoint import save_checkpoint
from marl.core.config import build_config, config_to_dict
from marl.envs import vec_spec
from marl.games import TIC_TAC_TOE
from marl.search.alphazero import AlphaZeroConfig, make_learner

TTT = "classic/tic_tac_toe-v0"
TINY = build_config(
    AlphaZeroConfig,
    {"num_games": 2, "search.simulations": 4, "channels": 4, "blocks": 1, "eval_simulations": 4},
)


@pytest.fixture
def run_dir(tmp_path):
    """A run directory holding an (untrained) tic-tac-toe alphazero checkpoint."""
    learner = make_learner(vec_spec(TTT), TINY, seed=0, device=torch.device("cpu"))
    save_checkpoint(
        tmp_path / "checkpoint.pt", algo="alphazero", env_id=TTT, config=config_to_dict(TINY),
        learner=learner.state_dict(),
    )  # fmt: skip
    return tmp_path


def scripted(monkeypatch, answers) -> list[str]:
    """Feed `answers` to `input()` (which echoes its prompt, as the real one does)."""
    prompts: list[str] = []
    supply = iter(answers)

    def fake_input(prompt: str = "") -> str:
        prompts.append(prompt)
        print(prompt, end="")
        return next(supply)

    monkeypatch.setattr(builtins, "input", fake_input)
    return prompts


def test_second_player_game_runs_to_a_result(run_dir, monkeypatch, capsys):
    prompts = scripted(monkeypatch, itertools.cycle("9012345678"))
    status = main(["play", TTT, str(run_dir), "--second", "--simulations", "4"])
    out = capsys.readouterr().out
    assert status == 0 and "you play O (second)" in out
    assert prompts and out.index("AlphaZero plays") < out.index("your move")  # it moved first
    assert out.rstrip().splitlines()[-1] in ("You win!", "Draw.", "AlphaZero wins.")
    assert "'9' is not a legal move" in out  # 9 is never a cell; the game went on after it


def test_reported_result_matches_the_game_played(run_dir, monkeypatch, capsys):
    """The human takes the first legal cell of a fixed order; replay the game and compare."""
    order = [4, 0, 2, 6, 8, 1, 3, 5, 7]
    played: list[int] = []

    def human(prompt: str = "") -> str:
        legal = [int(c) for c in re.search(r"\[(.*)\]", prompt).group(1).split(", ")]
        played.append(next(c for c in order if c in legal))
        return str(played[-1])

    monkeypatch.setattr(builtins, "input", human)
    assert main(["play", TTT, str(run_dir / "checkpoint.pt"), "--simulations", "2"]) == 0
    out = capsys.readouterr().out
    replies = [int(m) for m in re.findall(r"AlphaZero plays (\d)", out)]
    board = TIC_TAC_TOE.initial(1)
    for i in range(len(played) + len(replies)):
        move = played[i // 2] if i % 2 == 0 else replies[i // 2]
        board = TIC_TAC_TOE.play(board, torch.tensor([move]))
    terminal, returns = TIC_TAC_TOE.outcome(board)
    assert bool(terminal[0])
    expected = {1: "You win!", 0: "Draw.", -1: "AlphaZero wins."}[int(returns[0, 0])]
    assert out.rstrip().splitlines()[-1] == expected


def test_quitting_exits_with_130(run_dir, monkeypatch, capsys):
    scripted(monkeypatch, ["q"])
    assert main(["play", TTT, str(run_dir)]) == 130
    assert "marl play: interrupted" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["classic/connect_four-v0", "RUN"], "trained with env_id='classic/tic_tac_toe-v0'"),
        ([TTT, "RUN/missing.pt"], "no checkpoint at"),
        ([TTT, "RUN", "--simulations", "0"], "--simulations 0: expected at least 1"),
    ],
)
def test_bad_input_is_one_clear_line(run_dir, capsys, argv, message):
    argv = [a.replace("RUN", str(run_dir)) for a in argv]
    assert main(["play", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("marl play: error:") and message in err


def test_end_of_input_ends_the_game_politely(run_dir, monkeypatch, capsys):
    """Ctrl-D (EOFError from input) leaves the game as `q` does: no traceback."""

    def closed_input(prompt: str = "") -> str:
        raise EOFError

    monkeypatch.setattr(builtins, "input", closed_input)
    assert main(["play", TTT, str(run_dir)]) == 130
    out, err = capsys.readouterr()
    assert "end of input; game abandoned" in out
    assert "Traceback" not in err and "marl play: interrupted" in err


def test_odd_numbers_ask_again(run_dir, monkeypatch, capsys):
    """'²' passes str.isdigit and a 5,000-digit number fails int(): both used to end the game."""
    scripted(monkeypatch, ["²", "9" * 5000, "-1", "q"])
    assert main(["play", TTT, str(run_dir)]) == 130
    out = capsys.readouterr().out
    assert "'²' is not a legal move" in out
    assert "'99999999999999999999'... (5000 characters) is not a legal move" in out
    assert "'-1' is not a legal move" in out
