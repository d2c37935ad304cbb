"""Lower layers never import higher ones (data -> models -> training -> detector ->
evaluation -> reporting -> experiment -> benchmark -> cli; config, errors and utils are usable
everywhere)."""

import ast
from pathlib import Path

import anomalia

ORDER = [
    "data",
    "models",
    "training",
    "detector",
    "evaluation",
    "reporting",
    "experiment",
    "benchmark",
    "cli",
]
SHARED = {"config", "errors", "utils", "__init__"}
ROOT = Path(anomalia.__file__).parent


def layer_of(module: str) -> str | None:
    part = module.split(".")[1] if module.startswith("anomalia.") else None
    return part if part in ORDER else None


def test_no_upward_imports():
    violations = []
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT)
        own = rel.parts[0].removesuffix(".py")
        if own in SHARED:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                target = layer_of(name)
                if target and ORDER.index(target) > ORDER.index(own):
                    violations.append(f"{rel} imports {name}")
    assert not violations


def test_the_check_would_catch_a_violation():
    assert layer_of("anomalia.cli") == "cli"
    assert ORDER.index(layer_of("anomalia.detector")) > ORDER.index("data")
