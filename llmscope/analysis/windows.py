"""The baseline and current windows of a run: ISO 8601 intervals and the contract's defaults."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta


@dataclass(frozen=True)
class Window:
    """A half-open time interval ``[start, end)``, in UTC."""

    start: datetime
    end: datetime

    def __str__(self) -> str:
        return f"{iso(self.start)}/{iso(self.end)}"


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_moment(text: str, what: str = "time") -> datetime:
    """An ISO 8601 date-time in UTC (no offset: read as UTC); ValueError naming ``what``."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{what} {text!r} is not an ISO 8601 date-time") from None
    # A time without an offset is read as UTC, as the records' timestamps are.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def parse_interval(text: str) -> Window:
    """``2026-11-01T00:00:00Z/2026-11-08T00:00:00Z`` → a Window; ValueError naming the problem."""
    parts = text.split("/")
    if len(parts) != 2 or not all(p.strip() for p in parts):
        raise ValueError(f"{text!r} is not an ISO 8601 interval START/END")
    start, end = parse_moment(parts[0], "start"), parse_moment(parts[1], "end")
    if start >= end:
        raise ValueError(f"{text!r}: the start must be before the end")
    return Window(start, end)


def default_windows(
    now: datetime | None = None,
    baseline: Window | None = None,
    current: Window | None = None,
) -> tuple[Window, Window]:
    """Fill in the defaults: current = the last 24 h, baseline = the 7 days before current."""
    now = now or datetime.now(UTC)
    current = current or Window(now - timedelta(days=1), now)
    baseline = baseline or Window(current.start - timedelta(days=7), current.start)
    if baseline.start < current.end and current.start < baseline.end:
        raise ValueError(f"the baseline {baseline} and the current window {current} overlap")
    return baseline, current
