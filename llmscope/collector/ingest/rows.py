"""The last step before a ``records`` row is stored: column limits, ``log_content`` and PII masking.

:func:`finish_row` is the only code that changes a row's values on its way to the store; every
door (REST, OTLP, the gateway) reaches it through :class:`~llmscope.collector.ingest.RecordWriter`.

- **Limits**: every sized string column is cut to its length (``llmscope.limits``), and so are
  tag keys and values. A door that validates (REST, OTLP) has already refused what is too long;
  for the others this guarantees one odd call never makes a batch fail in the store.
- **log_content: false** (a gateway endpoint's option): the :data:`TEXT_COLUMNS` become null,
  so only metadata is kept.
- **Redaction** (``LLMSCOPE_REDACT_PII``): e-mail addresses, phone and card numbers and secrets
  are masked in the content columns (:data:`~llmscope.collector.ingest.redaction.CONTENT_FIELDS`).

A new column that holds what the user or the model wrote belongs in ``TEXT_COLUMNS`` and
``CONTENT_FIELDS``; a new sized string column in ``llmscope.limits.RECORD_COLUMNS``.
"""

from __future__ import annotations

from typing import Any

from llmscope import limits
from llmscope.collector.ingest.redaction import redact_row

__all__ = ["TEXT_COLUMNS", "finish_row"]

TEXT_COLUMNS = (
    "prompt",
    "messages",
    "response",
    "template_text",
    "template_variables",
    "choices",
)
"""What the call said: dropped when an endpoint has ``log_content: false``."""

_SIZED = tuple(limits.RECORD_COLUMNS.items())


def _fit_tags(tags: dict[str, Any]) -> dict[str, Any]:
    if all(len(k) <= limits.NAME and len(v) <= limits.TAG_VALUE for k, v in tags.items()):
        return tags  # the usual case: nothing to copy
    return {k[: limits.NAME]: v[: limits.TAG_VALUE] for k, v in tags.items()}


def finish_row(
    row: dict[str, Any], *, redact_pii: bool, log_content: bool = True
) -> dict[str, Any]:
    """``row`` cut to the column limits, without content if ``log_content`` is false, masked.

    ``row`` (a dict of ``records`` column values) is changed in place and returned; with
    ``redact_pii`` the result is a masked copy.
    """
    for name, limit in _SIZED:
        value = row.get(name)
        if isinstance(value, str) and len(value) > limit:
            row[name] = value[:limit]
    tags = row.get("tags")
    if tags:
        row["tags"] = _fit_tags(tags)
    if not log_content:
        for name in TEXT_COLUMNS:
            row[name] = None
        if row.get("tool_calls"):  # which tools were called is metadata; their arguments are not
            row["tool_calls"] = [{**c, "arguments": None} for c in row["tool_calls"]]
    return redact_row(row) if redact_pii else row
