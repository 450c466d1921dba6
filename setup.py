"""Packages ``llmscope`` from ``llmscope/``, where all of its code lives.

``llmscope/``'s folder list shows the data flow: ``collector/``, ``analysis/`` and ``dashboard/``
are the parts, ``app/`` the command and demo above them, ``db/`` the store they share, and the
modules beside them the base. Each is an ordinary package (no links, no import hook), so the
wheel holds what the checkout holds.

The build refuses to run when a part is missing or is not a package (a sparse or damaged
checkout): setuptools would otherwise build a wheel without it and call that a success.
"""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).resolve().parent
# Every folder of llmscope/ that must be a package of its own; the wheel is useless without one.
PARTS = ("collector", "analysis", "evaluate", "dashboard", "app", "db")
# Folders that are not packages but ship: Alembic loads its folders by path, Dash serves the
# assets folder. Listed by name (setuptools warns about, and will one day drop, a folder that
# only package data reaches), each with the files it holds besides Python modules.
DATA_FOLDERS = {
    "llmscope.db.migrations": ["script.py.mako"],
    "llmscope.db.migrations.versions": [],
    "llmscope.dashboard.assets": ["*.css", "*.js"],
}


def missing_parts(root: Path) -> list[str]:
    """The parts under ``root`` (the folder holding ``llmscope/``) that are not real packages."""
    missing = []
    for part in PARTS:
        folder = root / "llmscope" / part
        if folder.is_symlink() or not (folder / "__init__.py").is_file():
            missing.append(f"llmscope/{part}/__init__.py")
    for name in DATA_FOLDERS:
        folder = root.joinpath(*name.split("."))
        if not folder.is_dir() or not any(folder.iterdir()):
            missing.append(name.replace(".", "/") + "/")
    return missing


if __name__ == "__main__":
    if missing := missing_parts(HERE):
        raise SystemExit(
            "refusing to build llmscope: missing or not a real folder: " + ", ".join(missing)
        )
    setup(
        packages=[*find_packages(include=["llmscope", "llmscope.*"]), *DATA_FOLDERS],
        package_data={"llmscope": ["py.typed"], **DATA_FOLDERS},
    )
