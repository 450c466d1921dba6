"""The public shapes of a record and of feedback, as the REST API and the SDK speak them.

``RecordIn`` is what a client may send (unknown fields are refused, token counts cannot be
negative, timestamps must parse); ``RecordOut`` is what the API answers, with its feedback and
its evaluations (``EvaluationOut``, also read by the dashboard); ``RecordDetail`` adds, for one
record, what the latest analysis run found about its next turn. ``record_row`` turns an
accepted record into the column values of ``llmscope.db.models.Record``.

What a client sends (``RecordIn``, ``RecordBatch``, ``FeedbackIn``, ``Message``, ``Template``) is
defined once, in the SDK's ``llmscope_sdk.records``, and re-exported here: the SDK validates a
record with the very class the collector validates it with.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict, StrictBool, StrictStr, model_validator

from llmscope import limits
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
    "EvaluationIn",
    "EvaluationOut",
    "FeedbackIn",
    "FeedbackOut",
    "Message",
    "NonNegativeFloat",
    "NonNegativeInt",
    "RecordBatch",
    "RecordDetail",
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


class EvaluationOut(BaseModel):
    """One evaluator's verdict on a record (one row of ``evaluations``), as the API shows it."""

    model_config = ConfigDict(from_attributes=True)

    evaluator: str
    version: str = Field(
        description="Content hash of the evaluator's prompt, examples and "
        "threshold (or a built-in check's parameters); `external` for an evaluation "
        "computed elsewhere (REST or traces)."
    )
    status: Literal["pending", "done", "error"]
    score: float | None = Field(
        description="1..5 for a judge; 1 (pass) or 0 (fail) for a check; an external "
        "evaluation's score as it was given."
    )
    passed: bool | None
    label: str | None = Field(default=None, description="An external evaluation's label.")
    justification: str | None
    judge_model: str | None
    judge_record_id: str | None = Field(description="The judge's own (internal) call record.")
    input_tokens: int | None
    output_tokens: int | None
    latency_ms: float | None
    error: str | None
    created_at: datetime


class EvaluationIn(BaseModel):
    """An evaluation computed elsewhere (``POST /api/v1/records/{id}/evaluations``).

    Stored with the version ``external``; a second one of the same evaluator on the same record
    replaces the first. ``passed`` is what the analysis tests; without it, a pass/fail label
    (``pass``, ``correct``, ``fail``, ``hallucinated``...) decides it.
    """

    model_config = ConfigDict(extra="forbid")

    evaluator: StrictStr = Field(
        min_length=1,
        max_length=64,
        pattern=r"^[^@]+$",
        description="The evaluator's name (no '@'); the analysis shows NAME@external.",
    )
    score: Annotated[float, Strict(), Field(allow_inf_nan=False)] | None = None
    passed: StrictBool | None = None
    label: Annotated[StrictStr, Field(min_length=1, max_length=limits.NAME)] | None = None
    justification: Annotated[StrictStr, Field(max_length=20_000)] | None = None

    @model_validator(mode="after")
    def _says_something(self) -> EvaluationIn:
        if self.score is None and self.passed is None and self.label is None:
            raise ValueError("an evaluation needs a score, passed or a label")
        return self


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
    cost_usd: float | None = Field(default=None, description="US dollars; null when unpriced.")
    tool_calls: list[dict[str, Any]] | None = None
    tools: list[str] | None = None
    choices: list[dict[str, Any]] | None = None
    route: str | None = None
    response_id: str | None = Field(
        default=None, description="The provider's id of the answer (gen_ai.response.id)."
    )
    parent_span_id: str | None = Field(
        default=None, description="The span the call's span ran under (OTLP, or traceparent)."
    )
    links: list[str] | None = Field(
        default=None,
        description="Records of the same call traced at outer levels, merged into this one.",
    )
    merged_into: str | None = Field(
        default=None,
        description="Set on a record merged into another of the same call: that record's id.",
    )
    feedback: list[FeedbackOut] = Field(
        default_factory=list, description="The record's feedback history, oldest first."
    )
    latest_feedback: FeedbackOut | None = Field(
        default=None, description="The feedback that counts: the newest event."
    )
    evaluations: list[EvaluationOut] = Field(
        default_factory=list,
        description="Every evaluator's verdict on this record (each version), oldest first.",
    )


class RecordDetail(RecordOut):
    """One record as ``GET /api/v1/records/{id}`` answers: ``RecordOut`` plus what the latest
    analysis run found about its next turn."""

    rephrased: bool = Field(
        default=False,
        description="The latest analysis run found the record's next turn asking the same "
        "question in other words (its answer likely failed). False when no run analysed it.",
    )
    regenerated: bool = Field(
        default=False,
        description="The latest analysis run found the record's next turn sending the identical "
        "prompt again (a retry). False when no run analysed it.",
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
        "cost_usd": record.cost_usd,
        "tool_calls": [c.model_dump() for c in record.tool_calls] if record.tool_calls else None,
        "tools": record.tools,
        "choices": record.choices,
        "route": record.route,
        "response_id": None,
        "status": record.status,
        "error": record.error,
        "user_id": record.user_id,
        "session_id": record.session_id,
        "tags": record.tags,
        "trace_id": record.trace_id,
        "span_id": record.span_id,
        "internal": internal,
    }
