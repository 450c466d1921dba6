"""What users install: the wheel holds every module and runs outside the checkout.

The build refuses a tree that lacks a part (a sparse or damaged checkout) instead of shipping a
wheel without it. The wheel is built from a copy of the sources, installed into a fresh virtual
environment and run from a folder outside the repository, so nothing in the checkout (its
``llmscope/``, the editable install's finder, ``sdk/src`` on pytest's path) can stand in for it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from pathlib import Path
from types import ModuleType

import pytest
from alembic.script import ScriptDirectory

from llmscope.db import MIGRATIONS_DIR
from llmscope.db.models import Base

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "llmscope"
# What the build of llmscope reads (pyproject's readme included).
SOURCES = ("setup.py", "pyproject.toml", "README.md", "llmscope")
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "build", "*.egg-info")


def _setup_module() -> ModuleType:
    """setup.py as a module: its checks without running setup()."""
    spec = importlib.util.spec_from_file_location("llmscope_setup", ROOT / "setup.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _copy_sources(target: Path) -> Path:
    target.mkdir()
    for name in SOURCES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=IGNORED)
        else:
            shutil.copy2(source, target / name)
    return target


def _package_files() -> set[str]:
    """The files of llmscope/ a wheel must hold, as paths inside the wheel."""
    return {
        path.relative_to(ROOT).as_posix()
        for path in PACKAGE.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }


def _pip_wheel(source: Path, wheels: Path) -> subprocess.CompletedProcess[str]:
    """``pip wheel`` offline, with the test environment's setuptools (no build isolation)."""
    return subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index"]
        + ["--wheel-dir", str(wheels), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_checkout_has_every_part() -> None:
    assert _setup_module().missing_parts(ROOT) == []


def test_the_build_refuses_a_tree_without_a_part(tmp_path: Path) -> None:
    source = _copy_sources(tmp_path / "src")
    # what a clone without symbolic links made of the old links: a 12-byte file
    shutil.rmtree(source / "llmscope" / "analysis")
    (source / "llmscope" / "analysis").write_text("../analysis")
    (source / "llmscope" / "dashboard" / "__init__.py").unlink()
    shutil.rmtree(source / "llmscope" / "db" / "migrations" / "versions")

    assert _setup_module().missing_parts(source) == [
        "llmscope/analysis/__init__.py",
        "llmscope/dashboard/__init__.py",
        "llmscope/db/migrations/versions/",
    ]
    wheels = tmp_path / "wheels"
    built = _pip_wheel(source, wheels)
    assert built.returncode != 0
    assert "refusing to build llmscope: missing or not a real folder" in built.stdout + built.stderr
    assert "llmscope/analysis/__init__.py" in built.stdout + built.stderr
    assert not list(wheels.glob("*.whl"))


def _build_wheel(source: Path, wheels: Path, name: str) -> Path:
    built = _pip_wheel(source, wheels)
    assert built.returncode == 0, built.stderr
    (wheel,) = wheels.glob(f"{name}-*-py3-none-any.whl")
    return wheel


def _fresh_environment(venv: Path) -> Path:
    """A virtual environment that sees the test environment's third-party packages only.

    ``venv --system-site-packages`` would give the base interpreter's packages, not those of
    the environment the tests run in (itself a virtual environment in CI). A ``.pth`` file that
    lists its site-packages folders adds them after the fresh environment's own, without running
    the ``.pth`` files inside them: the editable install's finder, which maps ``llmscope`` to a
    checkout, never loads.
    """
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (Path(site) / "test-environment.pth").write_text("".join(f"{p}\n" for p in sorted(ours)))
    return python


# Run by the fresh environment's Python: where the packages come from, and every module imported.
_IMPORT_EVERYTHING = textwrap.dedent(
    """
    import importlib, json, pkgutil, sys
    import llmscope, llmscope_sdk

    failed = {}
    def record(name):
        failed[name] = repr(sys.exc_info()[1])

    names = [llmscope.__name__]
    for module in pkgutil.walk_packages(llmscope.__path__, "llmscope.", onerror=record):
        names.append(module.name)
    for name in names:
        if name == "llmscope.__main__":  # runs the command
            continue
        try:
            importlib.import_module(name)
        except Exception:
            record(name)
    print(json.dumps({
        "llmscope": llmscope.__file__,
        "llmscope_sdk": llmscope_sdk.__file__,
        "modules": sorted(names),
        "failed": failed,
    }))
    """
)


@pytest.mark.slow
def test_the_wheel_installed_elsewhere_imports_every_module_and_migrates_a_store(
    tmp_path: Path,
) -> None:
    wheels = tmp_path / "wheels"
    source = _copy_sources(tmp_path / "llmscope")
    wheel = _build_wheel(source, wheels, "llmscope")
    sdk = shutil.copytree(ROOT / "sdk", tmp_path / "sdk", ignore=IGNORED)
    sdk_wheel = _build_wheel(sdk, wheels, "llmscope_sdk")

    with zipfile.ZipFile(wheel) as archive:
        shipped = {n for n in archive.namelist() if not n.split("/")[0].endswith(".dist-info")}
    assert shipped == _package_files()
    modules = {n for n in shipped if n.endswith(".py")}
    assert len(modules) == len(list(PACKAGE.rglob("*.py"))) > 150

    venv = tmp_path / "venv"
    python = _fresh_environment(venv)
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet"]
        # --ignore-installed: the test environment (seen through the .pth) may hold llmscope
        # installed from the checkout, which pip would take as already satisfying the wheel
        + ["--no-deps", "--no-index", "--ignore-installed", str(sdk_wheel), str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert installed.returncode == 0, installed.stderr

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "LLMSCOPE_"))}
    env |= {"HF_HUB_OFFLINE": "1", "LLMSCOPE_DATA_DIR": str(outside / "data")}

    def run(*command: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(c) for c in command],
            cwd=outside,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )

    imported = run(python, "-c", _IMPORT_EVERYTHING)
    assert imported.returncode == 0, imported.stderr
    found = json.loads(imported.stdout.splitlines()[-1])
    assert Path(found["llmscope"]).is_relative_to(venv), found["llmscope"]
    assert Path(found["llmscope_sdk"]).is_relative_to(venv), found["llmscope_sdk"]
    assert found["failed"] == {}
    expected = {
        ".".join(Path(m).with_suffix("").parts).removesuffix(".__init__")
        for m in modules
        if "/migrations/" not in m
    }
    assert set(found["modules"]) == expected

    helped = run(venv / "bin" / "llmscope", "--help")
    assert helped.returncode == 0, helped.stderr
    assert all(command in helped.stdout for command in ("serve", "analyze", "dashboard", "db"))

    store = outside / "store.db"
    migrated = run(
        venv / "bin" / "llmscope", "db", "upgrade", "--database-url", f"sqlite:///{store}"
    )
    assert migrated.returncode == 0, migrated.stderr
    with sqlite3.connect(store) as conn:
        tables = {
            row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
        }
        (version,) = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    assert tables - {"sqlite_sequence"} == set(Base.metadata.tables) | {"alembic_version"}
    assert version == ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
