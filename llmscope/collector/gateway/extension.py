"""The ``llmscope`` body extension and ``X-LLMScope-*`` headers, and template rendering.

A call may say which template it was rendered from, who asked, and how to tag it, either in
an ``"llmscope": {...}`` object in the body (removed before the provider sees the body) or in
headers, for clients that cannot change the body. The body wins over headers, key by key.
``X-LLMScope-Internal: true`` (or the tag ``llmscope.internal: "true"``) marks llmscope's own
calls (the summary job's), which are recorded with ``internal=True`` and left out of analysis.
``"timestamp"`` (or ``X-LLMScope-Timestamp``), an RFC 3339 time, is recorded as the call's time
instead of now: for replaying or backfilling historical traffic (``llmscope demo`` uses it).
A W3C ``traceparent`` header puts the call in the caller's trace (its span runs under the
caller's span), so a call the app traces itself is one record (``collector/ingest/nesting.py``).

A template registered under ``prompts:`` is rendered here when the call names it and carries
no messages (chat) or prompt (completions) of its own: ``{{variable}}`` placeholders are filled
from the variables, and a missing one is a 400.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from llmscope import limits
from llmscope.collector.gateway.body import BodyRefused, parse_json
from llmscope.collector.gateway.config import GatewayConfig

EXTENSION_KEYS = {
    "template",
    "version",
    "variables",
    "user_id",
    "session_id",
    "tags",
    "internal",
    "timestamp",
}
INTERNAL_TAG = "llmscope.internal"
MAX_TAGS = 64  # a call's tags (header and body together); each tag is a column value to keep
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_.-]*)\s*\}\}")
_TRUE = {"1", "true", "yes", "on"}


class BadRequest(Exception):
    """A 400 for the client: ``str(exc)`` names the offending field."""


@dataclass
class CallMeta:
    """What the caller told llmscope about the call, beyond the provider request."""

    template: str | None = None
    version: str | None = None
    variables: dict[str, Any] | None = None
    template_text: str | None = None
    user_id: str | None = None
    session_id: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    internal: bool = False
    timestamp: datetime | None = None  # when the call happened, if not now (replay, backfill)
    # The caller's trace context (W3C ``traceparent``): the call joins the app's trace.
    trace_id: str | None = None
    parent_span_id: str | None = None


_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")


def trace_context(headers: Mapping[str, str]) -> tuple[str | None, str | None]:
    """``(trace id, parent span id)`` of a W3C ``traceparent`` header; ``(None, None)`` when
    there is none or it is malformed (ignored, as the W3C spec asks, never a 400)."""
    raw = headers.get("traceparent")
    match = _TRACEPARENT.fullmatch(raw.strip().lower()) if raw else None
    if match is None:
        return None, None
    version, trace_id, span_id, _, rest = match.groups()
    if version == "ff" or (version == "00" and rest) or set(trace_id) == {"0"}:
        return None, None
    if set(span_id) == {"0"}:
        return None, None
    return trace_id, span_id


def _timestamp(value: Any, where: str) -> datetime | None:
    if value is None:
        return None
    try:
        stamp = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        stamp = None
    if stamp is None:
        raise BadRequest(f"{where}: not an RFC 3339 timestamp")
    # Without an offset the time is taken as UTC, as the ingest API does.
    return stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)


def _short(value: Any, where: str, limit: int = limits.NAME) -> str | None:
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise BadRequest(f"{where}: must be a string")
    if len(value) > limit:
        raise BadRequest(f"{where}: longer than {limit} characters")
    return value


def _json_header(headers: Mapping[str, str], name: str) -> Any:
    raw = headers.get(name)
    if raw is None:
        return None
    shown = "X-LLMScope-" + "-".join(p.capitalize() for p in name.split("-")[2:])
    try:  # bounded like a body: a header nested 5k deep made the parser recurse out (a 500)
        return parse_json(raw, "header")
    except BodyRefused as exc:
        raise BadRequest(f"{shown}: {exc}") from None


def _tags(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequest(f"{where}: must be an object of strings")
    tags: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(item, str | int | float | bool):
            raise BadRequest(f"{where}.{key}: must be a string")
        text = str(item).lower() if isinstance(item, bool) else str(item)
        if len(key) > limits.NAME or len(text) > limits.TAG_VALUE:
            raise BadRequest(f"{where}.{key}: too long")
        tags[str(key)] = text
    return tags


def read_meta(body: dict[str, Any], headers: Mapping[str, str]) -> CallMeta:
    """The call's metadata from headers and the body's ``llmscope`` object (popped)."""
    ext = body.pop("llmscope", None)
    if ext is None:
        ext = {}
    if not isinstance(ext, dict):
        raise BadRequest("llmscope: must be an object")
    unknown = set(ext) - EXTENSION_KEYS
    if unknown:
        raise BadRequest(f"llmscope.{sorted(unknown)[0]}: unknown field")

    variables = ext.get("variables", _json_header(headers, "x-llmscope-variables"))
    if variables is not None and not isinstance(variables, dict):
        raise BadRequest("llmscope.variables: must be an object")
    tags = _tags(_json_header(headers, "x-llmscope-tags"), "X-LLMScope-Tags")
    tags.update(_tags(ext.get("tags"), "llmscope.tags"))
    if len(tags) > MAX_TAGS:
        raise BadRequest(f"llmscope.tags: at most {MAX_TAGS} tags (header and body together)")
    internal_flag = ext.get("internal", headers.get("x-llmscope-internal"))
    internal = str(internal_flag).lower() in _TRUE or tags.get(INTERNAL_TAG, "").lower() in _TRUE
    trace_id, parent_span_id = trace_context(headers)
    user = ext.get("user_id", headers.get("x-llmscope-user-id"))
    if user is None and isinstance(body.get("user"), str):
        user = body["user"]  # OpenAI's own end-user field
    return CallMeta(
        template=_short(
            ext.get("template", headers.get("x-llmscope-template")), "llmscope.template"
        ),
        version=_short(
            ext.get("version", headers.get("x-llmscope-template-version")),
            "llmscope.version",
            limits.VERSION,
        ),
        variables=variables,
        user_id=_short(user, "llmscope.user_id"),
        session_id=_short(
            ext.get("session_id", headers.get("x-llmscope-session-id")), "llmscope.session_id"
        ),
        tags=tags,
        internal=internal,
        timestamp=_timestamp(ext["timestamp"], "llmscope.timestamp")
        if "timestamp" in ext
        else _timestamp(headers.get("x-llmscope-timestamp"), "X-LLMScope-Timestamp"),
        trace_id=trace_id,
        parent_span_id=parent_span_id,
    )


def render(text: str, variables: Mapping[str, Any]) -> str:
    """``text`` with every ``{{name}}`` replaced; a missing variable is a BadRequest."""

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in variables:
            raise BadRequest(f"llmscope.variables.{name}: the template needs this variable")
        value = variables[name]
        return value if isinstance(value, str) else json.dumps(value)

    return _PLACEHOLDER.sub(fill, text)


def placeholders(text: str) -> set[str]:
    """The ``{{variable}}`` names ``text`` uses (none: a fixed text, e.g. a system prompt)."""
    return set(_PLACEHOLDER.findall(text))


def apply_template(meta: CallMeta, body: dict[str, Any], kind: str, config: GatewayConfig) -> None:
    """Fill ``meta.template_text`` and, for a registered template, render it into the body."""
    if meta.template is None:
        return
    prompt = config.prompt(meta.template, meta.version)
    has_input = bool(body.get("messages")) if kind == "chat" else body.get("prompt") is not None
    if prompt is None:
        if not has_input and kind != "embeddings":
            raise BadRequest(
                f"llmscope.template: no prompt {meta.template!r} in the gateway config"
            )
        return
    meta.version = prompt.version
    meta.template_text = prompt.text
    if has_input or kind == "embeddings":
        return  # the client rendered it already; record which template it was
    rendered = render(prompt.text, meta.variables or {})
    if kind == "chat":
        body["messages"] = [{"role": "user", "content": rendered}]
    else:
        body["prompt"] = rendered
