"""Every shipped run file (envs/*.toml) names its algorithm, and its settings are accepted."""

from __future__ import annotations

from pathlib import Path

import pytest

import marl
from marl.algorithms import make_config
from marl.cli.train import RUN_FILE_KEYS, _algo
from marl.core.config import load_toml

RUN_FILES = sorted((Path(__file__).resolve().parent.parent / "envs").glob("*.toml"))


def test_there_are_run_files() -> None:
    names = {p.name for p in RUN_FILES}
    assert {"mappo_spread.toml", "mappo_spread_fast.toml", "mappo_spread_quick.toml"} <= names


@pytest.mark.parametrize("path", RUN_FILES, ids=lambda p: p.name)
def test_run_file_is_valid(path: Path) -> None:
    spec = load_toml(path)
    assert set(spec) <= set(RUN_FILE_KEYS), set(spec) - set(RUN_FILE_KEYS)
    algo = _algo(None, spec.get("algo"))
    make_config(algo, spec.get("config", {}))  # raises on an unknown key or a bad value
    assert spec["env"] in marl.list_envs() and int(spec["steps"]) > 0
    marl.make(spec["env"], **spec.get("env_kwargs", {})).close()  # kwargs the env takes


def test_run_file_and_command_line_must_agree() -> None:
    assert _algo("mappo", "mappo") == "mappo"
    with pytest.raises(ValueError, match="run file is for 'mappo'"):
        _algo("qmix", "mappo")
    with pytest.raises(ValueError, match="name an algorithm"):
        _algo(None, None)
