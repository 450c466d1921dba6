"""A disk cache for UMAP's and pynndescent's numba-compiled functions.

Neither library asks numba to cache what it compiles, so every new process compiled UMAP's
layout optimisation and graph code again: several seconds of a small run's wall time
(``docs/benchmarks/analysis-speed.md``). ``enable()`` turns numba's on-disk cache on for their
compiled functions before the first fit, the same as ``cache=True`` in their decorators: a
later process loads the machine code instead of compiling it.

Left out: functions compiled with ``parallel=True`` (numba does not cache them safely) and
closures (their cache key pickles the captured values). The cache lives in
``NUMBA_CACHE_DIR`` when that is set, else in the user's cache directory
(``platformdirs.user_cache_dir("llmscope")/numba``). Numba keys each entry by the function's
bytecode, signature and CPU, so an upgraded library or another machine compiles afresh.
"""

from __future__ import annotations

import sys
from pathlib import Path

import platformdirs

__all__ = ["cache_dir", "enable"]

MODULE_PREFIXES = ("umap", "pynndescent")
_enabled: set[str] = set()


def cache_dir() -> Path:
    """Where compiled functions are kept: ``NUMBA_CACHE_DIR`` if set, else the user's cache."""
    chosen = _numba_cache_dir()
    if chosen:
        return Path(chosen)
    return Path(platformdirs.user_cache_dir("llmscope", appauthor=False)) / "numba"


def enable() -> int:
    """Cache the compiled functions of the loaded ``umap``/``pynndescent`` modules on disk.

    Call after importing ``umap`` and before fitting. Returns how many functions were newly
    set to cache (0 on later calls).
    """
    from numba.core import config
    from numba.core.dispatcher import Dispatcher

    if not _numba_cache_dir():
        # Numba reads NUMBA_CACHE_DIR once, at import; its locators read this at enable time.
        config.CACHE_DIR = str(cache_dir())  # type: ignore[attr-defined]
    count = 0
    for name, module in list(sys.modules.items()):
        if module is None or not name.startswith(MODULE_PREFIXES):
            continue
        for value in list(vars(module).values()):
            if not isinstance(value, Dispatcher) or not _cacheable(value):
                continue
            key = f"{value.py_func.__module__}.{value.py_func.__qualname__}"
            if key in _enabled:
                continue
            try:
                value.enable_caching()
            except RuntimeError:
                continue  # no place to write a cache for it (numba says which): compile as before
            _enabled.add(key)
            count += 1
    return count


def _numba_cache_dir() -> str:
    from numba.core import config

    return str(getattr(config, "CACHE_DIR", "") or "")


def _cacheable(dispatcher: object) -> bool:
    py_func = getattr(dispatcher, "py_func", None)
    options = getattr(dispatcher, "targetoptions", {})
    return (
        py_func is not None and py_func.__closure__ is None and not options.get("parallel", False)
    )
