"""A view's state as it lives in the URL's query string, so any view can be pasted as a link.

``parse`` reads ``?run=...&endpoint=...&color=feedback`` into a ``ViewState`` (unknown values
are dropped and reported, never guessed); ``ViewState.href`` writes a link back with only the
non-default parameters, so links stay short and stable.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode

COLORS = ("finding", "cluster", "window", "feedback")
SORTS = ("severity", "drift", "hotspot", "size", "down_rate")
GROUPINGS = ("none", "endpoint", "model", "template")
FEEDBACK = ("down", "up", "rated", "unrated")

# query-string name -> dataclass field name (``from`` is a Python keyword)
_ALIASES = {"from": "start", "to": "end"}
_CHOICES: dict[str, tuple[str, ...]] = {
    "color": COLORS,
    "sort": SORTS,
    "by": GROUPINGS,
    "feedback": FEEDBACK,
}


@dataclass(frozen=True)
class ViewState:
    """Everything a page needs to know about what to show; defaults are left out of links."""

    run: str | None = None
    start: str | None = None  # YYYY-MM-DD, inclusive
    end: str | None = None  # YYYY-MM-DD, inclusive
    endpoint: str | None = None
    model: str | None = None
    template: str | None = None  # "name@version"
    feedback: str | None = None
    color: str = "finding"
    sort: str = "severity"
    by: str = "none"  # overview: split the charts by endpoint|model|template
    problems: tuple[str, ...] = field(default=(), compare=False)

    def params(self, **changes: Any) -> dict[str, str]:
        """The query parameters of this state with ``changes`` applied, defaults omitted."""
        state = replace(self, **changes)
        out: dict[str, str] = {}
        for f in fields(self):
            if f.name == "problems":
                continue
            value = getattr(state, f.name)
            if value is None or value == "" or value == f.default:
                continue
            name = next((k for k, v in _ALIASES.items() if v == f.name), f.name)
            out[name] = str(value)
        return out

    def query(self, **changes: Any) -> str:
        params = self.params(**changes)
        return f"?{urlencode(params)}" if params else ""

    def href(self, path: str, **changes: Any) -> str:
        return f"{path}{self.query(**changes)}"

    @property
    def since(self) -> datetime | None:
        day = _parse_day(self.start)
        return datetime.combine(day, time(), tzinfo=UTC) if day else None

    @property
    def until(self) -> datetime | None:
        """Exclusive upper bound: the end day is included whole."""
        day = _parse_day(self.end)
        return datetime.combine(day + timedelta(days=1), time(), tzinfo=UTC) if day else None


def _parse_day(value: str | None) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


def parse(search: str | None) -> ViewState:
    """The state in a query string (with or without the leading ``?``)."""
    raw = parse_qs((search or "").lstrip("?"), keep_blank_values=False)
    values: dict[str, Any] = {}
    problems: list[str] = []
    known = {f.name for f in fields(ViewState)} - {"problems"}
    for name, found in raw.items():
        key = _ALIASES.get(name, name)
        value = found[-1].strip()
        if key not in known:
            problems.append(f"unknown parameter {name!r}")
            continue
        choices = _CHOICES.get(key)
        if choices and value not in choices:
            problems.append(f"{name}={value!r} is not one of {', '.join(choices)}")
            continue
        if key in ("start", "end") and _parse_day(value) is None:
            problems.append(f"{name}={value!r} is not a date (YYYY-MM-DD)")
            continue
        values[key] = value[:10] if key in ("start", "end") else value
    return ViewState(**values, problems=tuple(problems))
