"""The record and feedback shapes a client sends: the wire contract of the ingest API.

Owned here, in the SDK, because both sides speak it: ``Client`` validates what the app logs
before queueing it, and the collector (``llmscope.schema`` re-exports these classes) validates
the same shapes on ``POST /api/v1/records`` and ``POST /api/v1/records/{id}/feedback``. One
definition, so a record the SDK accepts is one the collector accepts.

``RecordIn``: every field optional, unknown fields refused, token counts and latencies never
negative, timestamps RFC 3339 text. ``RecordBatch``: several records, stored all or none.
``FeedbackIn``: a thumb (``up``/``down``) or a number, with optional tags and a comment.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, NotRequired

from pydantic import BaseModel, ConfigDict, Field, Strict, StrictStr, field_validator, with_config
from typing_extensions import TypedDict

from llmscope_sdk import limits

__all__ = [
    "FeedbackIn",
    "Message",
    "NonNegativeFloat",
    "NonNegativeInt",
    "RecordBatch",
    "RecordIn",
    "ShortStr",
    "Template",
    "ToolCall",
]

_ID_PATTERN = r"^[^\x00-\x20/?#%\x7f]+$"
# Token counts are stored as 32-bit integers (PostgreSQL INTEGER): a larger one is a 422.
MAX_COUNT = 2**31 - 1
NonNegativeInt = Annotated[int, Strict(), Field(ge=0, le=MAX_COUNT)]
NonNegativeFloat = Annotated[float, Strict(), Field(ge=0)]
ShortStr = Annotated[StrictStr, Field(max_length=limits.NAME)]


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
    version: Annotated[StrictStr, Field(max_length=limits.VERSION)] | None = None
    text: StrictStr | None = None
    variables: dict[str, Any] | None = None


class ToolCall(BaseModel):
    """A tool the model called: its name and the arguments as the model sent them (JSON text)."""

    model_config = ConfigDict(extra="forbid")

    id: Annotated[StrictStr, Field(max_length=limits.NAME)] | None = None
    name: ShortStr
    arguments: StrictStr | None = None


class RecordIn(BaseModel):
    """A record as a client sends it; every field is optional and unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")

    id: (
        Annotated[StrictStr, Field(min_length=1, max_length=limits.RECORD_ID, pattern=_ID_PATTERN)]
        | None
    ) = Field(
        default=None,
        description="Client-given id (no spaces, control characters, '/', '?', '#' or '%', "
        "so it can stand in a URL path); a retry with the same id is stored once.",
    )
    timestamp: datetime | None = Field(default=None, description="RFC 3339; default: now.")
    endpoint: ShortStr | None = None
    provider: Annotated[StrictStr, Field(max_length=limits.PROVIDER)] | None = None
    model: ShortStr | None = None
    prompt: StrictStr | None = None
    messages: list[Message] | None = None
    response: StrictStr | None = None
    template: Template | None = None
    input_tokens: NonNegativeInt | None = None
    output_tokens: NonNegativeInt | None = None
    latency_ms: NonNegativeFloat | None = None
    ttft_ms: NonNegativeFloat | None = None
    cost_usd: NonNegativeFloat | None = Field(
        default=None,
        description="What the call cost, US dollars; default: priced by the collector from the "
        "model's entry in the gateway's pricing: table (null when the model has none).",
    )
    tool_calls: list[ToolCall] | None = Field(
        default=None, description="The tools the answer called (its first choice), in order."
    )
    tools: list[ShortStr] | None = Field(
        default=None, description="The names of the tools the request offered."
    )
    choices: list[dict[str, Any]] | None = Field(
        default=None,
        description="Every choice when the call asked for several (n > 1): "
        "{index, text, tool_calls, finish_reason}; response is the first one's text.",
    )
    route: ShortStr | None = Field(
        default=None, description="The gateway route the call was sent to (endpoint: who answered)."
    )
    status: Literal["ok", "error"] = "ok"
    error: StrictStr | None = None
    user_id: ShortStr | None = None
    session_id: ShortStr | None = None
    tags: dict[str, Annotated[StrictStr, Field(max_length=limits.TAG_VALUE)]] | None = None
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
    tags: list[Annotated[StrictStr, Field(max_length=limits.FEEDBACK_TAG)]] = Field(
        default_factory=list, max_length=limits.FEEDBACK_TAGS
    )
    comment: Annotated[StrictStr, Field(max_length=limits.FEEDBACK_COMMENT)] | None = None
    source: Annotated[StrictStr, Field(min_length=1, max_length=limits.FEEDBACK_SOURCE)] = "user"

    @field_validator("value", mode="before")
    @classmethod
    def _no_booleans(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("value must be 'up', 'down' or a number")
        return value
