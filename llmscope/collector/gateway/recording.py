"""What the gateway records about a call: one ``records`` row built from a :class:`Call`.

The row has ``llmscope.schema.record_row``'s column names and ``source="gateway"``; the write
path (``RecordWriter.submit``) finishes it: cuts strings to their column sizes, applies the
endpoint's ``log_content: false`` (:attr:`Call.log_content`: only metadata is kept, tool calls
keep their names only) and masks PII. Inline media in messages are stored
as references (``media.py``) unless the endpoint says ``log_media: true``. The answer's tool
calls, the tools offered, every choice of an ``n > 1`` call and the route are recorded too.
Offline calls carry ``provider: offline`` and the tag
``llmscope.offline: "true"``. The row's timestamp is the call's start, or the time the caller
gave in the ``llmscope`` extension (a replay of historical traffic). A call that came with a
``traceparent`` carries the caller's trace id, a span id of its own and the caller's span as
its parent.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from llmscope.collector.gateway.choices import ChoiceSummary
from llmscope.collector.gateway.extension import CallMeta
from llmscope.collector.gateway.media import media_references

OFFLINE_TAG = "llmscope.offline"


class _Ids:
    """Random (version 4) UUIDs as text, from the OS's random source read 4 kB at a time.

    ``str(uuid.uuid4())`` made one ``urandom`` call and built a ``UUID`` object per call, a few
    microseconds of every gateway call; the same 122 random bits per id come from one read per
    256 ids here (a third of the CPU)."""

    def __init__(self) -> None:
        self._pool = b""
        self._at = 0
        self._lock = threading.Lock()  # calls start in the event loop, tests in threads too

    def __call__(self) -> str:
        with self._lock:
            at = self._at
            if at >= len(self._pool):
                self._pool, at = os.urandom(4096), 0
            self._at = at + 16
            raw = self._pool[at : at + 16]
        h = raw.hex()
        # the version nibble is 4; the variant's two bits are 10 (RFC 4122): 8, 9, a or b
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[raw[8] >> 4 & 3]}{h[17:20]}-{h[20:]}"


new_id = _Ids()


@dataclass
class Call:
    """One gateway call, filled in as it goes."""

    endpoint: str
    kind: str  # chat | completions | embeddings
    body: dict[str, Any]
    meta: CallMeta
    provider: str | None = None
    model: str | None = None
    log_content: bool = True
    log_media: bool = False  # keep inline images/audio as sent, not as references
    offline: bool = False
    id: str = field(default_factory=new_id)
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    started: float = field(default_factory=time.perf_counter)
    response: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    ttft_ms: float | None = None
    status: str = "ok"
    error: str | None = None
    route: str | None = None  # the route the caller named, when it named one
    tools: list[str] | None = None  # names of the tools the request offered
    choices: list[ChoiceSummary] = field(default_factory=list)
    response_id: str | None = None  # the provider's id of the answer (chatcmpl-..., resp_...)

    def take_id(self, answer: Any) -> None:
        """The answer's (or a chunk's) ``id``, the first one given."""
        if self.response_id is None and isinstance(answer, dict):
            found = answer.get("id")
            self.response_id = found[:256] if isinstance(found, str) and found else None

    def take_choices(self, choices: list[ChoiceSummary]) -> None:
        """The answer's choices; the first one's text is the record's ``response``."""
        self.choices = choices
        self.response = choices[0].text if choices else None

    @property
    def tool_calls(self) -> list[dict[str, Any]] | None:
        """The first choice's tool calls (name, arguments as sent), None when there are none."""
        return (self.choices[0].tool_calls or None) if self.choices else None

    def take_usage(self, usage: Any) -> None:
        if isinstance(usage, dict):
            prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
            self.input_tokens = prompt if isinstance(prompt, int) else self.input_tokens
            self.output_tokens = completion if isinstance(completion, int) else self.output_tokens
            if self.kind == "embeddings" and self.output_tokens is None:
                self.output_tokens = 0

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000

    def fail(self, message: str) -> None:
        self.status = "error"
        self.error = message[:4000]

    def row(self) -> dict[str, Any]:
        """The ``records`` row for this call (latency measured up to now), not yet finished."""
        latency_ms = self.elapsed_ms()
        tags = dict(self.meta.tags)
        if self.offline:
            tags[OFFLINE_TAG] = "true"
        prompt, messages = _inputs(self.kind, self.body)
        if messages and not self.log_media:
            messages = media_references(messages)
        several = len(self.choices) > 1
        return {
            "id": self.id,
            "timestamp": self.meta.timestamp or self.started_at,
            "received_at": datetime.now(UTC),
            "source": "gateway",
            "endpoint": self.endpoint,
            "provider": self.provider,
            "model": self.model,
            "prompt": prompt,
            "messages": messages,
            "response": self.response,
            "template_name": self.meta.template,
            "template_version": self.meta.version,
            "template_text": self.meta.template_text,
            "template_variables": self.meta.variables,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "latency_ms": round(latency_ms, 3),
            "ttft_ms": None if self.ttft_ms is None else round(self.ttft_ms, 3),
            "status": self.status,
            "error": self.error,
            "user_id": self.meta.user_id,
            "session_id": self.meta.session_id,
            "tags": tags or None,
            "trace_id": self.meta.trace_id,
            # in the caller's trace, the call is a span of its own under the caller's span
            "span_id": self.id.replace("-", "")[:16] if self.meta.trace_id else None,
            "parent_span_id": self.meta.parent_span_id,
            "internal": self.meta.internal,
            "tool_calls": self.tool_calls,
            "tools": self.tools,
            "choices": [c.as_dict() for c in self.choices] if several else None,
            "route": self.route,
            "response_id": self.response_id,
        }


def _inputs(kind: str, body: dict[str, Any]) -> tuple[str | None, list[dict[str, Any]] | None]:
    if kind == "chat":
        messages = body.get("messages")
        if isinstance(messages, list):
            return None, [m for m in messages if isinstance(m, dict)]
        return None, None
    raw = body.get("prompt") if kind == "completions" else body.get("input", body.get("text"))
    if raw is None or isinstance(raw, str):
        return raw, None
    if isinstance(raw, list) and all(isinstance(t, str) for t in raw):
        return "\n".join(raw), None
    return json.dumps(raw), None  # token arrays: kept, as text
