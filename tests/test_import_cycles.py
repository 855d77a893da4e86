"""No two valle modules import each other, lazily or not (issue 7 named two such pairs)."""

from __future__ import annotations

import ast
from pathlib import Path

import valle

ROOT = Path(valle.__file__).parent


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """valle modules ``path`` imports anywhere in its body (top level or inside functions)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        found.update(n for n in names if n in modules)
    return found


def _graph() -> dict[str, set[str]]:
    paths = {_module_name(p): p for p in ROOT.rglob("*.py")}
    modules = set(paths)
    return {m: _imports(p, modules) - {m} for m, p in paths.items()}


def test_no_pair_of_modules_imports_each_other() -> None:
    graph = _graph()
    pairs = sorted(
        (a, b)
        for a, deps in graph.items()
        for b in deps
        if a < b
        and a in graph.get(b, set())
        and not (a.startswith(b + ".") or b.startswith(a + "."))
    )
    assert ("valle.ar.decoder", "valle.ar.generate") not in pairs
    assert ("valle.text.frontend", "valle.text.mandarin") not in pairs
    assert pairs == [], f"modules that import each other: {pairs}"
