"""The public shapes of a record and of feedback, as the REST API and the SDK speak them.

``RecordIn`` is what a client may send (unknown fields are refused, token counts cannot be
negative, timestamps must parse); ``RecordOut`` is what the API answers. ``record_row`` turns an
accepted record into the column values of ``llmscope.db.models.Record``.

What a client sends (``RecordIn``, ``RecordBatch``, ``FeedbackIn``, ``Message``, ``Template``) is
defined once, in the SDK's ``llmscope_sdk.records``, and re-exported here: the SDK validates a
record with the very class the collector validates it with.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field

from llmscope_sdk.records import (
    FeedbackIn,
    Message,
    NonNegativeFloat,
    NonNegativeInt,
    RecordBatch,
    RecordIn,
    ShortStr,
    Template,
)

__all__ = [
    "FeedbackIn",
    "FeedbackOut",
    "Message",
    "NonNegativeFloat",
    "NonNegativeInt",
    "RecordBatch",
    "RecordIn",
    "RecordOut",
    "ShortStr",
    "Template",
    "new_record_id",
    "record_row",
]


class FeedbackOut(BaseModel):
    id: int
    record_id: str
    created_at: datetime
    value: str | float
    tags: list[str]
    comment: str | None
    source: str


class RecordOut(BaseModel):
    id: str
    timestamp: datetime
    received_at: datetime
    source: str
    endpoint: str | None
    provider: str | None
    model: str | None
    prompt: str | None
    messages: list[dict[str, Any]] | None
    response: str | None
    template: dict[str, Any] | None
    input_tokens: int | None
    output_tokens: int | None
    latency_ms: float | None
    ttft_ms: float | None
    status: str
    error: str | None
    user_id: str | None
    session_id: str | None
    tags: dict[str, str] | None
    trace_id: str | None
    span_id: str | None
    internal: bool
    feedback: list[FeedbackOut] = Field(
        default_factory=list, description="The record's feedback history, oldest first."
    )
    latest_feedback: FeedbackOut | None = Field(
        default=None, description="The feedback that counts: the newest event."
    )


def new_record_id() -> str:
    return str(uuid.uuid4())


def record_row(record: RecordIn, *, source: str = "api", internal: bool = False) -> dict[str, Any]:
    """Column values for a ``records`` row from an accepted record."""
    template = record.template
    now = datetime.now(UTC)
    return {
        "id": record.id or new_record_id(),
        "timestamp": record.timestamp or now,
        "received_at": now,
        "source": source,
        "endpoint": record.endpoint,
        "provider": record.provider,
        "model": record.model,
        "prompt": record.prompt,
        "messages": record.messages,
        "response": record.response,
        "template_name": template.name if template else None,
        "template_version": template.version if template else None,
        "template_text": template.text if template else None,
        "template_variables": template.variables if template else None,
        "input_tokens": record.input_tokens,
        "output_tokens": record.output_tokens,
        "latency_ms": record.latency_ms,
        "ttft_ms": record.ttft_ms,
        "status": record.status,
        "error": record.error,
        "user_id": record.user_id,
        "session_id": record.session_id,
        "tags": record.tags,
        "trace_id": record.trace_id,
        "span_id": record.span_id,
        "internal": internal,
    }
