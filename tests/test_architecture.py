"""Who may import whom: the layers of the design, checked on every import statement.

    app (the command assembler, the server, the demo)
      ├── evaluate    judges answers, tries fixes   imports the collector and the base
      ├── collector   writes records               ─┐
      ├── analysis    reads records, writes runs   ├── each imports only the base
      └── dashboard   reads                        ─┘
    llmscope (base: settings, schema, store, run report, shared rules)

Inside ``evaluate``, experiments use evaluations, never the reverse.

Lazy imports inside functions count the same as those at the top of a module, and a relative
import counts as the absolute name it resolves to. The base may not import a part or the app;
``llmscope/__main__.py`` (``python -m llmscope``) is the one entry point that starts the app.

Every part is a real folder of ``llmscope/`` and every import names it through the package:
a bare ``from analysis.stats import ...`` would load a second copy of each module (and of each
class in it) in a checkout, and fail once installed, where no top-level ``analysis`` exists.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "llmscope"
PARTS = ("collector", "analysis", "evaluate", "dashboard")
# part -> the other parts (and the app) it must never import
FORBIDDEN: dict[str, set[str]] = {
    "collector": {"analysis", "evaluate", "dashboard", "app"},
    "analysis": {"collector", "evaluate", "dashboard", "app"},
    # the judge-and-fix loop calls models through the collector's gateway and records through
    # its write path: it may import the collector, which never imports it
    "evaluate": {"analysis", "dashboard", "app"},
    "dashboard": {"collector", "analysis", "evaluate", "app"},
    "base": {"collector", "analysis", "evaluate", "dashboard", "app"},
}
ENTRY_POINTS = {PACKAGE / "__main__.py"}
# What llmscope/ holds (its folders and modules): none of these is a top-level name of its own.
PACKAGE_NAMES = {p.stem for p in PACKAGE.iterdir() if p.suffix == ".py" or p.is_dir()} - {
    "__init__",
    "__main__",
    "__pycache__",
}


def module_name(path: Path) -> str:
    """The dotted name of a source file under the repository (``llmscope.db.models``)."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, package: str = "") -> set[str]:
    """Every absolute module name a source file imports, wherever the statement stands.

    ``package`` is the importing file's package (``llmscope.collector.gateway``), against which
    a relative import resolves.
    """
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            relative = "." * node.level + (node.module or "")
            module = importlib.util.resolve_name(relative, package) if node.level else relative
            names.add(module)
            # `from llmscope import analysis` imports the part too
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def imports_of(path: Path) -> set[str]:
    package = module_name(path) if path.name == "__init__.py" else module_name(path.parent)
    return imported_modules(path.read_text(encoding="utf-8"), package)


def layer_of_import(module: str) -> str | None:
    """The layer an imported ``llmscope.*`` module belongs to (None: third party or the base)."""
    parts = module.split(".")
    if parts[0] != "llmscope" or len(parts) < 2:
        return None
    return parts[1] if parts[1] in (*PARTS, "app") else None


def files_of(layer: str) -> list[Path]:
    if layer == "base":
        # the base is llmscope/ without the parts and the app
        return [
            p
            for p in sorted(PACKAGE.rglob("*.py"))
            if p.relative_to(PACKAGE).parts[0] not in (*PARTS, "app") and p not in ENTRY_POINTS
        ]
    return sorted((PACKAGE / layer).rglob("*.py"))


def violations(layer: str) -> list[str]:
    found = []
    for path in files_of(layer):
        for module in sorted(imports_of(path)):
            if layer_of_import(module) in FORBIDDEN[layer]:
                found.append(f"{path.relative_to(ROOT)} imports {module}")
    return found


def bare(modules: set[str]) -> list[str]:
    """The modules named by a part's or base module's bare name (``analysis.stats``, ``config``)."""
    return sorted(m for m in modules if m.split(".")[0] in PACKAGE_NAMES)


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_no_layer_imports_what_it_must_not(layer: str) -> None:
    assert files_of(layer), f"no source files found for {layer}"
    assert violations(layer) == []


def test_evaluations_never_import_experiments() -> None:
    found = [
        f"{path.relative_to(ROOT)} imports {module}"
        for path in sorted((PACKAGE / "evaluate" / "evaluations").rglob("*.py"))
        for module in sorted(imports_of(path))
        if module.startswith("llmscope.evaluate.experiments")
    ]
    assert found == []


def test_the_checker_sees_every_kind_of_import() -> None:
    source = (
        "import llmscope.analysis.stats\n"
        "from llmscope import dashboard\n"
        "def f():\n"
        "    from llmscope.collector.gateway import Gateway\n"
        "    from llmscope.evaluate.experiments import runner\n"
    )
    layers = {layer_of_import(m) for m in imported_modules(source)}
    assert {"analysis", "dashboard", "collector", "evaluate"} <= layers
    assert layer_of_import("llmscope.config") is None
    assert layer_of_import("numpy") is None


def test_a_relative_import_counts_as_the_name_it_resolves_to() -> None:
    source = "from ...analysis import stats\nfrom . import forwarding\n"
    names = imported_modules(source, "llmscope.collector.gateway")
    assert {"llmscope.analysis.stats", "llmscope.collector.gateway.forwarding"} <= names
    assert layer_of_import("llmscope.analysis.stats") == "analysis"


def test_nothing_imports_a_part_of_the_package_by_its_bare_name() -> None:
    found = [
        f"{path.relative_to(ROOT)} imports {module}"
        for tree in ("llmscope", "tests", "benchmarks")
        for path in sorted((ROOT / tree).rglob("*.py"))
        for module in bare(imports_of(path))
    ]
    assert found == []


def test_the_bare_import_check_catches_each_kind() -> None:
    source = (
        "from analysis.stats import two_proportion\n"
        "import collector.gateway\n"
        "def f():\n"
        "    from dashboard import layout\n"
        "    import app.cli, db, config\n"
        "import llmscope.analysis.stats, numpy, tests.factories\n"
        "from . import pricing\n"
    )
    assert bare(imported_modules(source, "llmscope.collector")) == [
        "analysis.stats",
        "analysis.stats.two_proportion",
        "app.cli",
        "collector.gateway",
        "config",
        "dashboard",
        "dashboard.layout",
        "db",
    ]


@pytest.mark.parametrize("part", [*PARTS, "app", "db"])
def test_each_part_is_a_real_package_folder_and_nothing_is_left_outside_it(part: str) -> None:
    folder = PACKAGE / part
    assert not folder.is_symlink(), f"llmscope/{part} must be a folder, not a link"
    assert (folder / "__init__.py").is_file(), f"llmscope/{part}/__init__.py is missing"
    # A branch that added a file under the old top-level folder would leave code nothing imports.
    assert not list((ROOT / part).rglob("*.py")), f"{part}/ holds code outside llmscope/{part}/"
