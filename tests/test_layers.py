"""The import graph: no cycles, and lower layers never import higher ones.

data -> config -> evaluation -> models -> training -> methods -> detector -> export -> rundir
-> reporting -> experiment -> benchmark -> cluster -> serve -> cli; errors and utils are usable
everywhere.
Every import counts, at module level or inside a function, so a cycle cannot hide in a
function body.
"""

import ast
from pathlib import Path

import anomalia

ORDER = [
    "data",
    "config",
    "evaluation",
    "models",
    "training",
    "methods",
    "detector",
    "export",
    "rundir",
    "reporting",
    "experiment",
    "benchmark",
    "cluster",
    "serve",
    "cli",
]
SHARED = {"errors", "utils", "__init__"}
ROOT = Path(anomalia.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every anomalia module ``path`` imports (``from a.b import c`` names a.b.c if that is a
    module, else a.b)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return {name for name in found if name.startswith("anomalia.")}


def graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in ROOT.rglob("*.py")}
    return {name: imports(path) & set(files) for name, path in files.items()}


def layer_of(module: str) -> str | None:
    part = module.split(".")[1] if module.startswith("anomalia.") else None
    return part if part in ORDER else None


def test_layers_only_import_downward():
    violations = []
    for module, targets in graph().items():
        own = layer_of(module)
        for target in targets:
            other = layer_of(target)
            if own and other and ORDER.index(other) > ORDER.index(own):
                violations.append(f"{module} imports {target}")
    assert not violations


def test_every_module_has_a_layer():
    for module in graph():
        part = module.split(".")[1] if module.count(".") else "__init__"
        assert part in ORDER or part in SHARED, module


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """A cycle of ``edges`` as a list of nodes, or None. A package's ``__init__`` importing its
    own submodules is not an edge back from them."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt.startswith(node + "."):  # a package re-exporting its submodule
                continue
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycles():
    assert find_cycle(graph()) is None


def test_the_checks_would_catch_a_violation():
    assert layer_of("anomalia.cli") == "cli"
    assert ORDER.index(layer_of("anomalia.detector")) > ORDER.index("data")
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"p": {"p.x"}, "p.x": {"q"}}) is None
