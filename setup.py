"""Maps the design's top-level folders onto the one import package ``llmscope``.

The repository shows the data flow in its folder list (collector/, analysis/, dashboard/, and
core/ for what all three share); installed, they are ``llmscope``, ``llmscope.collector``,
``llmscope.analysis`` and ``llmscope.dashboard``, so nothing generic lands in site-packages.
"""

from setuptools import find_namespace_packages, setup

PACKAGE_DIRS = {
    "llmscope": "core",
    "llmscope.collector": "collector",
    "llmscope.analysis": "analysis",
    "llmscope.dashboard": "dashboard",
}

packages = []
for package, folder in PACKAGE_DIRS.items():
    packages.append(package)
    # namespace discovery: Alembic's folders have no __init__.py but must ship
    subpackages = find_namespace_packages(folder, exclude=["*__pycache__*"])
    packages += [f"{package}.{sub}" for sub in subpackages]

setup(
    packages=packages,
    package_dir=PACKAGE_DIRS,
    package_data={
        "llmscope": ["py.typed", "db/migrations/script.py.mako"],
        "llmscope.dashboard.assets": ["*.css", "*.js"],
    },
)
