"""Packages ``llmscope`` from the repository's folders.

The repository shows the data flow in its folder list: ``collector/``, ``analysis/`` and
``dashboard/`` are the parts, ``app/`` the command and demo above them, and ``llmscope/`` the base
they share. ``llmscope/`` holds a symbolic link to each of the four other folders, so the
installed package, the type checker and an IDE all find ``llmscope.collector`` (and the rest) at
an ordinary path: no import hook, nothing generic in site-packages.
"""

from setuptools import find_namespace_packages, setup

# namespace discovery (follows the links): Alembic's folders have no __init__.py but must ship
packages = find_namespace_packages(include=["llmscope", "llmscope.*"], exclude=["*__pycache__*"])

setup(
    packages=packages,
    package_data={
        "llmscope": ["py.typed", "db/migrations/script.py.mako"],
        "llmscope.dashboard.assets": ["*.css", "*.js"],
    },
)
