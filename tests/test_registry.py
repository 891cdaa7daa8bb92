"""The registry: ids, kwargs, teams, specs, errors, and plugins from a real installed dist."""

from __future__ import annotations

import importlib.metadata
import sys
import textwrap
import warnings

import pytest
from pettingzoo import AECEnv, ParallelEnv

import marl
from marl.envs import registry


def test_families_present() -> None:
    ids = marl.list_envs()
    for env_id in ("mpe/simple_spread-v3", "mpe/simple_tag-v3", "mpe/simple_world_comm-v3",
                   "openspiel/connect_four", "openspiel/kuhn_poker", "openspiel/goofspiel",
                   "gym/CartPole-v1", "matrix/prisoners_dilemma-v0", "matrix/two_step-v0",
                   "matrix/stag_hunt-v0", "matrix/matching_pennies-v0",
                   "matrix/rock_paper_scissors-v0"):  # fmt: skip
        assert env_id in ids


def test_every_mpe2_scenario_registered() -> None:
    import pkgutil

    import mpe2

    modules = [m.name for m in pkgutil.iter_modules(mpe2.__path__) if m.name[-3:-1] == "_v"]
    assert len(modules) >= 9
    assert len(marl.list_envs("mpe/*")) == len(modules)


def test_make_kinds_and_parallel_conversion() -> None:
    assert isinstance(marl.make("mpe/simple_spread-v3"), ParallelEnv)
    assert isinstance(marl.make("openspiel/tic_tac_toe"), AECEnv)
    assert isinstance(marl.make("openspiel/goofspiel", parallel=True), ParallelEnv)


def test_kwargs_reach_the_env() -> None:
    env = marl.make("mpe/simple_spread-v3", N=4)
    assert len(env.possible_agents) == 4
    env = marl.make("openspiel/connect_four", rows=5, columns=5)
    env.reset(seed=0)
    assert env.observation_space("player_0").shape == (3, 5, 5)


def test_unknown_id_names_the_closest() -> None:
    with pytest.raises(marl.UnknownEnvError, match="did you mean mpe/simple_spread-v3"):
        marl.make("mpe/simple_sprad-v3")


def test_unknown_kwarg_names_the_valid_ones() -> None:
    with pytest.raises(TypeError, match="did you mean 'N'.*local_ratio"):
        marl.make("mpe/simple_spread-v3", NN=3)
    with pytest.raises(TypeError, match="rows"):
        marl.make("openspiel/connect_four", row=5)


def test_bad_id_format_rejected() -> None:
    with pytest.raises(ValueError, match="namespace/Name-vN"):
        marl.register("no_namespace", lambda: None)


def test_any_gymnasium_id_on_demand() -> None:
    import gymnasium

    gymnasium.register("MarlTestCartPole-v0", "gymnasium.envs.classic_control:CartPoleEnv")
    assert "gym/MarlTestCartPole-v0" not in marl.list_envs()
    env = marl.make("gym/MarlTestCartPole-v0")
    assert env.possible_agents == ["agent_0"]
    assert "gym/MarlTestCartPole-v0" in marl.list_envs()


def test_env_spec_teams_and_spaces() -> None:
    spec = marl.env_spec("mpe/simple_tag-v3")
    assert spec.teams == {"adversary": ("adversary_0", "adversary_1", "adversary_2"),
                          "agent": ("agent_0",)}  # fmt: skip
    assert spec.family == "mpe" and spec.source == "mpe2" and spec.kind == "parallel"
    assert spec.observation_spaces["agent_0"].shape == (14,)
    # competitive games: each player is its own team; cooperative two-step: one team
    assert marl.env_spec("openspiel/kuhn_poker").teams == {"player_0": ("player_0",),
                                                          "player_1": ("player_1",)}  # fmt: skip
    assert list(marl.env_spec("matrix/two_step-v0").teams) == ["team"]


def test_teams_overridable_at_register_time() -> None:
    marl.register("test/tag_one_team-v3", "mpe2.simple_tag_v3:parallel_env",
                  teams=lambda agent: "everyone")  # fmt: skip
    assert list(marl.env_spec("test/tag_one_team-v3").teams) == ["everyone"]
    marl.register("test/tag_by_dict-v3", "mpe2.simple_tag_v3:parallel_env",
                  teams={"adversary_0": "a", "adversary_1": "a", "adversary_2": "b",
                         "agent_0": "b"})  # fmt: skip
    assert marl.env_spec("test/tag_by_dict-v3").teams["b"] == ("adversary_2", "agent_0")


def test_registered_in_pettingzoo_registry_too() -> None:
    import pettingzoo

    marl.list_envs()
    assert "mpe/simple_spread-v3" in pettingzoo.parallel_registry
    assert "openspiel/kuhn_poker" in pettingzoo.aec_registry


def _install_fake_dist(tmp_path, name: str, entry: str, module_src: str) -> None:
    """A real distribution on sys.path: a package plus its *.dist-info with entry points."""
    pkg = tmp_path / name
    pkg.mkdir()
    (pkg / "__init__.py").write_text(textwrap.dedent(module_src))
    info = tmp_path / f"{name}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[marl.envs]\n{name} = {entry}\n")


def test_entry_point_plugin_and_broken_plugin(tmp_path, monkeypatch) -> None:
    good = """
        import marl
        def register_envs():
            marl.register("plugin/pd_long-v0", "marl.envs.families.matrix:MatrixGameEnv",
                          game="prisoners_dilemma", rounds=3)
    """
    _install_fake_dist(tmp_path, "marl_good_plugin", "marl_good_plugin:register_envs", good)
    _install_fake_dist(tmp_path, "marl_bad_plugin", "marl_bad_plugin:register_envs",
                       "def register_envs():\n    raise RuntimeError('boom')\n")  # fmt: skip
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    names = [ep.name for ep in importlib.metadata.entry_points(group="marl.envs")]
    assert {"marl_good_plugin", "marl_bad_plugin"} <= set(names)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = registry.load_plugins()
    assert "marl_good_plugin" in loaded and "marl_bad_plugin" not in loaded
    assert any("marl_bad_plugin" in str(w.message) and "boom" in str(w.message) for w in caught)
    env = marl.make("plugin/pd_long-v0")
    env.reset(seed=0)
    assert env.rounds == 3
    assert "marl.envs.families.matrix" in sys.modules  # other envs kept working


def test_lazy_plugin_loading_on_first_use(tmp_path, monkeypatch) -> None:
    src = """
        import marl
        def register_envs():
            marl.register("plugin/lazy-v0", "marl.envs.families.matrix:TwoStepGame")
    """
    _install_fake_dist(tmp_path, "marl_lazy_plugin", "marl_lazy_plugin:register_envs", src)
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    monkeypatch.setattr(registry, "_loaded", False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the built-in families register a second time
        assert "plugin/lazy-v0" in marl.list_envs("plugin/")


def test_turn_based_game_refuses_parallel_with_a_clear_error() -> None:
    with pytest.raises(ValueError, match="turn-based"):
        marl.make("openspiel/tic_tac_toe", parallel=True)
