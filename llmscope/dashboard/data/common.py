"""What every read query shares: the filters, the latest feedback per record, time buckets.

The dashboard never computes statistics itself: these helpers only filter and bucket in SQL, so
the store does the counting whatever its size.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, String, and_, func, literal
from sqlalchemy.orm import aliased

from llmscope.dashboard.state import ViewState
from llmscope.db.models import Feedback, Record, analysable
from llmscope.db.queries import newest_feedback_id
from llmscope.text import conversation_text

LATEST_FEEDBACK = aliased(Feedback, name="latest_event")
THUMB = LATEST_FEEDBACK.thumb

TEMPLATE_KEY = (
    func.coalesce(Record.template_name, "(none)")
    + literal("@", String)
    + func.coalesce(Record.template_version, "-")
)


@dataclass(frozen=True)
class Filters:
    """Which records a view covers; ``until`` is exclusive."""

    since: datetime | None = None
    until: datetime | None = None
    endpoint: str | None = None
    model: str | None = None
    template: str | None = None  # "name@version"
    feedback: str | None = None  # down|up|rated|unrated

    @classmethod
    def from_state(
        cls, state: ViewState, since: datetime | None = None, until: datetime | None = None
    ) -> Filters:
        return cls(
            since=state.since or since,
            until=state.until or until,
            endpoint=state.endpoint,
            model=state.model,
            template=state.template,
            feedback=state.feedback,
        )

    def within(self, first: datetime | None, last: datetime | None) -> Filters:
        """The same filters without time bounds that already include every record between
        ``first`` and ``last``: the same rows, and SQLite then scans the table instead of
        walking the whole timestamp index (several times slower)."""
        since = (
            None
            if self.since is not None and first is not None and self.since <= first
            else self.since
        )
        until = (
            None
            if self.until is not None and last is not None and self.until > last
            else self.until
        )
        return replace(self, since=since, until=until)

    def conditions(self) -> list[ColumnElement[bool]]:
        out: list[ColumnElement[bool]] = [analysable()]
        if self.since is not None:
            out.append(Record.timestamp >= self.since)
        if self.until is not None:
            out.append(Record.timestamp < self.until)
        if self.endpoint:
            out.append(Record.endpoint == self.endpoint)
        if self.model:
            out.append(Record.model == self.model)
        if self.template:
            name, _, version = self.template.rpartition("@")
            if not name:  # no "@": a template name without a version
                out.append(Record.template_name == version)
            else:
                out.append(Record.template_name == name)
                out.append(
                    Record.template_version.is_(None)
                    if version in ("", "-")
                    else Record.template_version == version
                )
        if self.feedback == "down":
            out.append(THUMB == "down")
        elif self.feedback == "up":
            out.append(THUMB == "up")
        elif self.feedback == "rated":
            out.append(THUMB.is_not(None))
        elif self.feedback == "unrated":
            out.append(THUMB.is_(None))
        return out


def with_feedback(stmt: Select[Any], record_id: Any = Record.id) -> Select[Any]:
    """``stmt`` joined to each record's latest feedback event (``THUMB`` becomes usable): the
    one that counts (``llmscope.db.queries``), as the analysis job and the record page count it.

    The join is on ``record_id`` and only the few matching events are checked against their
    record's newest (one step down the ``(record_id, created_at, id)`` index), so the plan is a
    lookup per event whatever the planner knows: joining a grouped subquery instead became a
    nested loop over all feedback on a PostgreSQL store without statistics (autovacuum off, or
    not yet run after a bulk load).
    """
    newest = newest_feedback_id(LATEST_FEEDBACK.record_id, LATEST_FEEDBACK)
    return stmt.outerjoin(
        LATEST_FEEDBACK, and_(LATEST_FEEDBACK.record_id == record_id, LATEST_FEEDBACK.id == newest)
    )


def time_bucket(dialect: str, unit: str, column: Any = Record.timestamp) -> Any:
    """``column`` truncated to the ``unit`` (hour|day) as ISO text, in UTC, on either backend."""
    if dialect == "postgresql":
        return func.to_char(
            func.date_trunc(unit, func.timezone("UTC", column)), 'YYYY-MM-DD"T"HH24:00:00'
        )
    # SQLite holds UTCDateTime as naive UTC text, "YYYY-MM-DD HH:MM:SS.ffffff" (SQLAlchemy's
    # fixed format): cutting the text is the same bucket as strftime at a fraction of its cost.
    if unit == "hour":
        return func.substr(column, 1, 13) + literal(":00:00", String)
    return func.substr(column, 1, 10) + literal("T00:00:00", String)


def bucket_unit(since: datetime | None, until: datetime | None) -> str:
    """Hourly points for up to three days, daily beyond: enough calls per point to read."""
    if since is None or until is None:
        return "day"
    return "hour" if (until - since).total_seconds() <= 3 * 86400 else "day"


def parse_bucket(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


_CONTENT = re.compile(r'"content":\s*"((?:[^"\\]|\\.)*)')


def snippet(text: str | None, limit: int = 140) -> str:
    """A one-line preview of a prompt; chat messages (JSON) preview their last message."""
    if not text:
        return ""
    if text.startswith("["):
        found = _CONTENT.findall(text)
        if found:
            try:
                text = json.loads(f'"{found[-1]}"')
            except ValueError:
                text = found[-1]
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def record_text(prompt: str | None, messages: list[dict[str, Any]] | None) -> str:
    """What the user asked: the prompt, or the chat messages as ``role: content`` lines."""
    return conversation_text(prompt, messages)


def and_all(conditions: list[ColumnElement[bool]]) -> ColumnElement[bool]:
    return and_(*conditions) if conditions else literal(True)
