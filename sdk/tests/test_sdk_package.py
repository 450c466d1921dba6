"""The SDK stays light and apart: what it declares, what importing it loads, what its wheel holds.

Needs only the SDK, pytest and pip: no llmscope server, no store.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import textwrap
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import llmscope_sdk

SDK = Path(__file__).resolve().parents[1]
SOURCE = SDK / "src" / "llmscope_sdk"
# what an app that only sends records must not have to install (or import)
HEAVY = {"torch", "dash", "umap-learn", "scikit-learn", "fastapi"}
HEAVY_MODULES = {"torch", "dash", "umap", "sklearn", "fastapi"}


def _project() -> dict[str, Any]:
    project: dict[str, Any] = tomllib.loads((SDK / "pyproject.toml").read_text())["project"]
    return project


def _name(requirement: str) -> str:
    """The normalised distribution name of a PEP 508 requirement."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    assert match, requirement
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def test_the_distribution_is_llmscope_sdk_and_exports_the_client() -> None:
    project = _project()
    assert project["name"] == "llmscope-sdk"
    assert llmscope_sdk.__all__ == ["Client", "configure_tracing"]
    assert callable(llmscope_sdk.Client) and callable(llmscope_sdk.configure_tracing)


def test_no_heavy_dependency_is_declared() -> None:
    project = _project()
    required = {_name(r) for r in project["dependencies"]}
    assert required == {"httpx", "pydantic", "pydantic-settings", "typing-extensions"}
    for extra, requirements in project["optional-dependencies"].items():
        named = {_name(r) for r in requirements}
        assert not named & (HEAVY | {"llmscope"}), extra


def test_importing_the_sdk_loads_nothing_heavy() -> None:
    script = textwrap.dedent(
        """
        import sys
        import llmscope_sdk
        from llmscope_sdk import Client, configure_tracing
        print(" ".join(sorted({name.split(".")[0] for name in sys.modules})))
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SDK / "src"), os.getcwd()])}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=env
    )
    assert done.returncode == 0, done.stderr
    loaded = set(done.stdout.split())
    assert "llmscope_sdk" in loaded and "httpx" in loaded and "pydantic" in loaded
    assert not loaded & HEAVY_MODULES
    # neither the server package nor OpenTelemetry (loaded by configure_tracing, when called)
    assert not loaded & {"llmscope", "opentelemetry"}


def test_the_sdk_imports_nothing_of_the_server() -> None:
    for path in sorted(SOURCE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                assert top != "llmscope" and top not in HEAVY_MODULES, f"{path.name}: {name}"


def test_the_wheel_holds_the_package_and_declares_its_dependencies(tmp_path: Path) -> None:
    # built from a copy: an in-tree build would leave build/ and *.egg-info/ in sdk/
    source = tmp_path / "sdk"
    shutil.copytree(
        SDK, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "tests", "__pycache__")
    )
    wheels = tmp_path / "wheels"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index"]
        + ["--quiet", "--wheel-dir", str(wheels), str(source)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    (wheel,) = wheels.glob("*.whl")
    assert wheel.name.startswith(f"llmscope_sdk-{_project()['version']}-py3-none-any")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        (metadata,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        meta = archive.read(metadata).decode()
    package = sorted(n for n in names if not n.split("/")[0].endswith(".dist-info"))
    expected = [
        "__init__.py",
        "client.py",
        "limits.py",
        "py.typed",
        "records.py",
        "settings.py",
        "tracing.py",
    ]
    assert package == [f"llmscope_sdk/{name}" for name in expected]
    required = {
        _name(line.split(":", 1)[1]) for line in meta.splitlines() if "Requires-Dist" in line
    }
    assert "httpx" in required and not required & (HEAVY | {"llmscope"})
    assert "Provides-Extra: otel" in meta
