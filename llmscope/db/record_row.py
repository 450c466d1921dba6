"""One typed row of a record as the readers select it: :class:`RecordRow` and its columns.

The analysis (``analysis/job.py``), the experiments' dataset, the evaluations' candidates and
the dashboard's cluster pages each read calls from ``records``; they select
:data:`RECORD_ROW` (plus what only they need, e.g. a run's ``window`` or the latest thumb) and
type what they get as :class:`RecordRow` (or a TypedDict extending it), so a column is named,
typed and added in this one place. The heavy columns nobody reads in bulk (``choices``,
``tool_calls``, ``template_text``) are not in it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypedDict, cast

from sqlalchemy import RowMapping
from sqlalchemy.orm import InstrumentedAttribute

from llmscope.db.models import Record

__all__ = ["RECORD_ROW", "RecordRow", "record_row"]


class RecordRow(TypedDict):
    """A call as the readers see it (the ``records`` columns of the same names)."""

    id: str
    timestamp: datetime
    received_at: datetime
    status: str
    endpoint: str | None
    model: str | None
    route: str | None
    prompt: str | None
    messages: list[dict[str, Any]] | None
    response: str | None
    template_name: str | None
    template_version: str | None
    template_variables: dict[str, Any] | None
    input_tokens: int | None
    output_tokens: int | None
    latency_ms: float | None
    cost_usd: float | None
    user_id: str | None
    session_id: str | None


# The columns of RecordRow, in its order: select(*RECORD_ROW, ...).
RECORD_ROW: tuple[InstrumentedAttribute[Any], ...] = tuple(
    getattr(Record, name) for name in RecordRow.__annotations__
)


def record_row(row: RowMapping) -> RecordRow:
    """The :class:`RecordRow` of a result row selected with :data:`RECORD_ROW` (its mapping;
    further selected columns are left out)."""
    return cast(RecordRow, {name: row[name] for name in RecordRow.__annotations__})
