"""Every script in examples/ runs, and prints what it promises."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

# What each example's output must contain (an example without an entry fails this test).
EXPECTED = {
    "custom_env.py": ["parallel_api_test passed", "parallel_seed_test passed", "obs (4, 2, 1)"],
}


@pytest.mark.parametrize("script", sorted(p.name for p in EXAMPLES.glob("*.py")))
def test_example_runs(script: str, tmp_path: Path) -> None:
    assert script in EXPECTED, f"add the expected output of examples/{script} to EXPECTED"
    proc = subprocess.run([sys.executable, str(EXAMPLES / script)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    for piece in EXPECTED[script]:
        assert piece in proc.stdout, f"{piece!r} not in output:\n{proc.stdout[-2000:]}"


def test_plugin_package_declares_the_entry_point() -> None:
    import tomllib

    data = tomllib.loads((EXAMPLES / "plugin_package" / "pyproject.toml").read_text())
    assert "marl.envs" in data["project"]["entry-points"]
