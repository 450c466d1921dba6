"""How long each stored string may be: the one home of llmscope's length limits.

The wire shapes (``llmscope_sdk.records``, re-exported as ``llmscope.schema``) refuse longer
input with a 422; on the service side (``llmscope.limits`` re-exports this module) the store's
columns (``llmscope.db.models``) are sized from these numbers, the gateway answers 400, and the
collector's write path (``llmscope.collector.ingest``) cuts whatever else arrives (an OTLP
attribute, a provider's error text) to fit, so one odd call never makes a batch fail in the store.

They live in the SDK because the SDK cannot import llmscope while llmscope depends on the SDK:
one definition, so what the SDK accepts always fits the store. Plain constants, no imports.
"""

from __future__ import annotations

RECORD_ID = 128
"""A record id (client-given, a UUID, or derived from trace and span ids)."""
NAME = 256
"""Endpoint, model, template name, user id, session id, a tag's key, an OTLP service name."""
PROVIDER = 64
"""A provider name (``openai``, ``anthropic``, ``offline``, an OTLP ``gen_ai.provider.name``)."""
VERSION = 64
"""A template version."""
TAG_VALUE = 1024
"""A tag's value."""
SOURCE = 16
"""A record's ``source`` (``api``, ``gateway``, ``otlp``, ``sdk``)."""
STATUS = 16
"""A record's ``status`` (``ok`` or ``error``)."""
TRACE_ID = 32
"""An OpenTelemetry trace id in lowercase hex."""
SPAN_ID = 16
"""An OpenTelemetry span id in lowercase hex."""
ERROR_TEXT = 4000
"""The error text the gateway keeps of a failed call."""

FEEDBACK_TAG = 128
"""One feedback tag."""
FEEDBACK_TAGS = 64
"""How many tags one feedback event may carry."""
FEEDBACK_SOURCE = 64
"""Who gave the feedback (``user``, ``evaluator``, an annotator kind)."""
FEEDBACK_COMMENT = 20_000
"""A feedback comment."""
THUMB = 8
"""A feedback thumb (``up`` or ``down``)."""

RECORD_COLUMNS: dict[str, int] = {
    "id": RECORD_ID,
    "source": SOURCE,
    "endpoint": NAME,
    "provider": PROVIDER,
    "model": NAME,
    "template_name": NAME,
    "template_version": VERSION,
    "status": STATUS,
    "user_id": NAME,
    "session_id": NAME,
    "trace_id": TRACE_ID,
    "span_id": SPAN_ID,
    "route": NAME,
    "response_id": NAME,
    "parent_span_id": SPAN_ID,
    "merged_into": RECORD_ID,
}
"""Every sized string column of ``records``, by column name (a test holds the table to it)."""
