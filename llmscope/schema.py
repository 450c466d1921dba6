"""The public shapes of a record and of feedback, as the REST API and the SDK speak them.

``RecordIn`` is what a client may send (unknown fields are refused, token counts cannot be
negative, timestamps must parse); ``RecordOut`` is what the API answers. ``record_row`` turns an
accepted record into the column values of ``llmscope.db.models.Record``.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, NotRequired

from pydantic import BaseModel, ConfigDict, Field, Strict, StrictStr, field_validator, with_config
from typing_extensions import TypedDict

_ID_PATTERN = r"^[^\x00-\x20/?#%\x7f]+$"
NonNegativeInt = Annotated[int, Strict(), Field(ge=0)]
NonNegativeFloat = Annotated[float, Strict(), Field(ge=0)]
ShortStr = Annotated[StrictStr, Field(max_length=256)]


@with_config(ConfigDict(extra="allow"))
class Message(TypedDict):
    """One chat message. Extra keys (``name``, ``tool_calls``, ...) are kept as they came.

    A TypedDict rather than a model: validated messages are plain dicts, ready to store.
    """

    role: ShortStr
    content: NotRequired[StrictStr | list[dict[str, Any]] | None]


class Template(BaseModel):
    """The prompt template a call was rendered from."""

    model_config = ConfigDict(extra="forbid")

    name: ShortStr
    version: Annotated[StrictStr, Field(max_length=64)] | None = None
    text: StrictStr | None = None
    variables: dict[str, Any] | None = None


class RecordIn(BaseModel):
    """A record as a client sends it; every field is optional and unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")

    id: Annotated[StrictStr, Field(min_length=1, max_length=128, pattern=_ID_PATTERN)] | None = (
        Field(
            default=None,
            description="Client-given id (no spaces, control characters, '/', '?', '#' or '%', "
            "so it can stand in a URL path); a retry with the same id is stored once.",
        )
    )
    timestamp: datetime | None = Field(default=None, description="RFC 3339; default: now.")
    endpoint: ShortStr | None = None
    provider: Annotated[StrictStr, Field(max_length=64)] | None = None
    model: ShortStr | None = None
    prompt: StrictStr | None = None
    messages: list[Message] | None = None
    response: StrictStr | None = None
    template: Template | None = None
    input_tokens: NonNegativeInt | None = None
    output_tokens: NonNegativeInt | None = None
    latency_ms: NonNegativeFloat | None = None
    ttft_ms: NonNegativeFloat | None = None
    status: Literal["ok", "error"] = "ok"
    error: StrictStr | None = None
    user_id: ShortStr | None = None
    session_id: ShortStr | None = None
    tags: dict[str, Annotated[StrictStr, Field(max_length=1024)]] | None = None
    trace_id: Annotated[StrictStr, Field(pattern=r"^[0-9a-f]{32}$")] | None = Field(
        default=None, description="OpenTelemetry trace id (32 lowercase hex digits)."
    )
    span_id: Annotated[StrictStr, Field(pattern=r"^[0-9a-f]{16}$")] | None = Field(
        default=None, description="OpenTelemetry span id (16 lowercase hex digits)."
    )

    @field_validator("timestamp", mode="before")
    @classmethod
    def _timestamp_is_text(cls, value: Any) -> Any:
        # A bare number is ambiguous (seconds? milliseconds?): ask for RFC 3339 instead.
        if value is not None and not isinstance(value, str | datetime):
            raise ValueError("timestamp must be an RFC 3339 string")
        return value


class RecordBatch(BaseModel):
    """Several records in one request, stored all together or not at all."""

    model_config = ConfigDict(extra="forbid")

    records: list[RecordIn] = Field(min_length=1)


class FeedbackIn(BaseModel):
    """Feedback on a record: a thumb (``up``/``down``) or a number, with optional tags."""

    model_config = ConfigDict(extra="forbid")

    value: Literal["up", "down"] | Annotated[float, Strict()]
    tags: list[Annotated[StrictStr, Field(max_length=128)]] = Field(
        default_factory=list, max_length=64
    )
    comment: Annotated[StrictStr, Field(max_length=20_000)] | None = None
    source: Annotated[StrictStr, Field(min_length=1, max_length=64)] = "user"

    @field_validator("value", mode="before")
    @classmethod
    def _no_booleans(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("value must be 'up', 'down' or a number")
        return value


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
