"""Who may import whom: the layers of the design, checked on every import statement.

    app (the command assembler, the demo)
      ├── collector   writes records        ─┐
      ├── analysis    reads records, writes runs   ├── each imports only the base
      └── dashboard   reads                  ─┘
    llmscope (base: settings, schema, store, run report, shared rules)

Lazy imports inside functions count the same as those at the top of a module. The base may not
import a part or the app; ``llmscope/__main__.py`` (``python -m llmscope``) is the one entry
point that starts the app.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PARTS = ("collector", "analysis", "dashboard")
# part -> the other parts (and the app) it must never import
FORBIDDEN: dict[str, set[str]] = {
    "collector": {"analysis", "dashboard", "app"},
    "analysis": {"dashboard", "collector", "app"},
    "dashboard": {"collector", "analysis", "app"},
    "base": {"collector", "analysis", "dashboard", "app"},
}
ENTRY_POINTS = {ROOT / "llmscope" / "__main__.py"}


def imported_modules(source: str) -> set[str]:
    """Every absolute module name a source file imports, wherever the statement stands."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            # `from llmscope import analysis` imports the part too
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def layer_of_import(module: str) -> str | None:
    """The layer an imported ``llmscope.*`` module belongs to (None: third party or the base)."""
    parts = module.split(".")
    if parts[0] != "llmscope" or len(parts) < 2:
        return None
    return parts[1] if parts[1] in (*PARTS, "app") else None


def files_of(layer: str) -> list[Path]:
    if layer == "base":
        base = ROOT / "llmscope"
        # the base is llmscope/ without the links to the parts and the app
        return [
            p
            for p in base.rglob("*.py")
            if p.relative_to(base).parts[0] not in (*PARTS, "app") and p not in ENTRY_POINTS
        ]
    return sorted((ROOT / layer).rglob("*.py"))


def violations(layer: str) -> list[str]:
    found = []
    for path in files_of(layer):
        for module in sorted(imported_modules(path.read_text(encoding="utf-8"))):
            if layer_of_import(module) in FORBIDDEN[layer]:
                found.append(f"{path.relative_to(ROOT)} imports {module}")
    return found


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_no_layer_imports_what_it_must_not(layer: str) -> None:
    assert files_of(layer), f"no source files found for {layer}"
    assert violations(layer) == []


def test_the_checker_sees_every_kind_of_import() -> None:
    source = (
        "import llmscope.analysis.stats\n"
        "from llmscope import dashboard\n"
        "def f():\n"
        "    from llmscope.collector.app import create_app\n"
    )
    layers = {layer_of_import(m) for m in imported_modules(source)}
    assert {"analysis", "dashboard", "collector"} <= layers
    assert layer_of_import("llmscope.config") is None
    assert layer_of_import("numpy") is None


def test_the_package_links_point_at_the_top_level_folders() -> None:
    for name in (*PARTS, "app"):
        link = ROOT / "llmscope" / name
        assert link.is_symlink(), f"llmscope/{name} should link to the top-level {name}/"
        assert link.resolve() == (ROOT / name).resolve()
