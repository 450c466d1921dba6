"""The pages' short-lived read memo on SQLite and PostgreSQL: a repeated read is served from
memory, and new records, feedback or a run, or the time limit, make it read the store again."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, insert

from llmscope.dashboard import data
from llmscope.dashboard.data import cache
from llmscope.db.models import Feedback
from tests.dashboard.seed import NOW, add_rows, plain_record, seed_store


@pytest.fixture
def counted(engine: Engine) -> tuple[Any, list[data.Filters]]:
    """``totals`` memoised, and the list of the calls that really reached the store."""
    add_rows(engine, [plain_record("a", NOW), plain_record("b", NOW + timedelta(minutes=1))])
    reached: list[data.Filters] = []

    def totals(engine: Engine, filters: data.Filters) -> dict[str, Any]:
        reached.append(filters)
        return data.totals(engine, filters)

    cache.clear()
    return cache.cached(totals), reached


def test_a_repeated_read_is_served_from_memory(engine: Engine, counted: Any) -> None:
    totals, reached = counted
    first = totals(engine, data.Filters())
    assert totals(engine, data.Filters()) == first
    assert first["calls"] == 2
    assert len(reached) == 1
    totals(engine, data.Filters(endpoint="chat"))  # other filters: another entry
    assert len(reached) == 2


def test_new_records_and_feedback_are_read_at_once(engine: Engine, counted: Any) -> None:
    totals, reached = counted
    assert totals(engine, data.Filters())["calls"] == 2
    add_rows(engine, [plain_record("c", NOW + timedelta(minutes=2))])
    assert totals(engine, data.Filters())["calls"] == 3
    with engine.begin() as conn:  # feedback alone: the newest record stays the same
        conn.execute(
            insert(Feedback).values(record_id="a", created_at=NOW, thumb="down", source="user")
        )
    assert totals(engine, data.Filters())["down"] == 1
    assert len(reached) == 3


def test_a_new_run_is_read_at_once(engine: Engine) -> None:
    cache.clear()
    status = cache.cached(data.store_status)
    assert status(engine).runs == 0
    seed_store(engine, records=20, old_run=False)
    assert status(engine).runs == 1


def test_an_entry_expires_after_the_time_limit(
    engine: Engine, counted: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    totals, reached = counted
    totals(engine, data.Filters())
    # A back-filled record older than the newest one leaves the store version unchanged...
    add_rows(engine, [plain_record("old", NOW - timedelta(days=1))])
    assert totals(engine, data.Filters())["calls"] == 2
    # ...and is counted once the entry is older than the limit.
    monkeypatch.setattr(cache, "TTL_SECONDS", 0.0)
    assert totals(engine, data.Filters())["calls"] == 3
    assert len(reached) == 2


def test_an_entry_lives_from_when_its_answer_was_ready(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read slower than the time limit (a big map) is reused by the next render, not read
    again: the entry's age counts from the answer, not from the request."""
    add_rows(engine, [plain_record("a", NOW)])
    clock = [1000.0]
    monkeypatch.setattr(cache.time, "monotonic", lambda: clock[0])
    reached: list[int] = []

    def slow(engine: Engine, filters: data.Filters) -> dict[str, Any]:
        reached.append(1)
        clock[0] += cache.TTL_SECONDS + 1  # the read takes longer than the limit
        return data.totals(engine, filters)

    cache.clear()
    memo = cache.cached(slow)
    assert memo(engine, data.Filters())["calls"] == 1
    clock[0] += 1  # a second later
    assert memo(engine, data.Filters())["calls"] == 1
    assert len(reached) == 1
