"""Windows: ISO 8601 intervals and the contract's defaults."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from llmscope.analysis.windows import Window, default_windows, parse_interval


def test_parse_interval() -> None:
    window = parse_interval("2026-11-01T00:00:00Z/2026-11-08T00:00:00+01:00")
    assert window.start == datetime(2026, 11, 1, tzinfo=UTC)
    assert window.end == datetime(2026, 11, 7, 23, tzinfo=UTC)
    assert str(window) == "2026-11-01T00:00:00Z/2026-11-07T23:00:00Z"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("2026-11-01", "not an ISO 8601 interval"),
        ("2026-11-01T00:00:00Z/", "not an ISO 8601 interval"),
        ("yesterday/2026-11-08T00:00:00Z", "start 'yesterday'"),
        ("2026-11-08T00:00:00Z/2026-11-01T00:00:00Z", "start must be before the end"),
    ],
)
def test_bad_intervals_name_the_problem(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_interval(text)


def test_default_windows_are_the_last_day_and_the_week_before() -> None:
    now = datetime(2026, 11, 20, 12, tzinfo=UTC)
    baseline, current = default_windows(now)
    assert current == Window(now - timedelta(days=1), now)
    assert baseline == Window(now - timedelta(days=8), now - timedelta(days=1))


def test_overlapping_windows_are_refused() -> None:
    now = datetime(2026, 11, 20, tzinfo=UTC)
    with pytest.raises(ValueError, match="overlap"):
        default_windows(
            now, Window(now - timedelta(days=3), now), Window(now - timedelta(days=1), now)
        )
