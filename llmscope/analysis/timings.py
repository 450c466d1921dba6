"""Seconds per stage of an analysis run, for the run's ``params.timings``.

``job.py`` opens a :func:`recording` around a run; the stages (``load_s``, ``embed_s``,
``reduce_s``, ``cluster_s``, ``tests_s``, ``store_s``) add their time with :func:`stage`
wherever they run, without the pipeline passing a recorder around. Outside a recording,
:func:`stage` only runs its block.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

STAGES = ("load_s", "embed_s", "reduce_s", "cluster_s", "tests_s", "store_s")
_current: ContextVar[dict[str, float] | None] = ContextVar("llmscope_timings", default=None)


@contextmanager
def recording() -> Iterator[dict[str, float]]:
    """Collect the stages timed inside the block into the yielded dict (every stage present)."""
    timings = dict.fromkeys(STAGES, 0.0)
    token = _current.set(timings)
    try:
        yield timings
    finally:
        _current.reset(token)


@contextmanager
def stage(name: str) -> Iterator[None]:
    """Add the block's wall-clock seconds to stage ``name`` of the current recording."""
    started = time.perf_counter()
    try:
        yield
    finally:
        timings = _current.get()
        if timings is not None:
            timings[name] = timings.get(name, 0.0) + time.perf_counter() - started
