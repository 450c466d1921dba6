"""A short-lived memo of the pages' heavy reads, so re-rendering a view (a control that only
changes the colouring, back and forward, a second person opening the same link) is instant.

An answer is reused only while the store looks the same: the key holds the newest record's
timestamp, the newest feedback event and the newest analysis run (three index lookups), so new
traffic, feedback or a run shows at once; anything else (a back-filled old record) shows within
``TTL_SECONDS``. The first render of a view never depends on it.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from sqlalchemy import Engine, func, select

from llmscope.db.models import AnalysisRun, Feedback, Record

TTL_SECONDS = 5.0
MAX_ENTRIES = 64

R = TypeVar("R")

_lock = threading.Lock()
_entries: weakref.WeakKeyDictionary[Engine, OrderedDict[Any, tuple[float, Any]]] = (
    weakref.WeakKeyDictionary()
)


def store_version(engine: Engine) -> tuple[Any, ...]:
    """What changes when the store gains a record, a feedback event or an analysis run."""
    with engine.connect() as conn:
        return tuple(
            conn.execute(
                select(
                    select(func.max(Record.timestamp)).scalar_subquery(),
                    select(func.max(Feedback.id)).scalar_subquery(),
                    select(func.max(AnalysisRun.created_at)).scalar_subquery(),
                )
            ).one()
        )


def clear() -> None:
    """Forget every memoised answer (the benchmark times cold renders this way)."""
    with _lock:
        _entries.clear()


def cached(read: Callable[..., R]) -> Callable[..., R]:
    """``read(engine, *args, **kwargs)`` memoised per engine for ``TTL_SECONDS`` while the store
    version stays the same; the arguments must be hashable (filters are frozen)."""

    @wraps(read)
    def wrapper(engine: Engine, *args: Any, **kwargs: Any) -> R:
        key = (read.__qualname__, args, tuple(sorted(kwargs.items())), store_version(engine))
        now = time.monotonic()
        with _lock:
            entries = _entries.setdefault(engine, OrderedDict())
            hit = entries.get(key)
            if hit is not None and now - hit[0] < TTL_SECONDS:
                entries.move_to_end(key)
                return hit[1]  # type: ignore[no-any-return]
        value = read(engine, *args, **kwargs)
        with _lock:
            entries = _entries.setdefault(engine, OrderedDict())
            # Stamped when the answer is ready: a read slower than the limit is still reused.
            entries[key] = (time.monotonic(), value)
            while len(entries) > MAX_ENTRIES:
                entries.popitem(last=False)
        return value

    return wrapper
