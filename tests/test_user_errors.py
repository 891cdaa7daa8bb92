"""Issue 20: every user error is one clear line, nothing a user made is overwritten.

Each test names the item it covers; see docs/errors.md for the table of old and new behaviour.
(`marl play` and `marl league run` items live in test_play_cli.py and test_league.py, beside
the fixtures they share.)
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from marl.cli import main

ROOT = Path(__file__).resolve().parents[1]


def cli(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    """Run `marl ARGV` in this process: (status, stdout, stderr); never a traceback."""
    try:
        status = main(list(argv))
    except SystemExit as exit_:  # argparse refuses an option value this way
        status = int(exit_.code or 0)
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return status, out, err


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
