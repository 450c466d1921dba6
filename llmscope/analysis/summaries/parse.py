"""What a usable LLM summary is: a JSON object with four non-empty strings, cut to length."""

from __future__ import annotations

import json

__all__ = ["FIELD_CHARS", "SUMMARY_KEYS", "SummaryError", "parse_summary"]

SUMMARY_KEYS = ("title", "summary", "root_cause", "suggested_fix")
FIELD_CHARS = {"title": 120, "summary": 2000, "root_cause": 1500, "suggested_fix": 1500}


class SummaryError(ValueError):
    """The LLM's answer is not a usable summary."""


def parse_summary(content: str | None) -> dict[str, str]:
    """The four summary fields from an LLM answer, or :class:`SummaryError` saying why not."""
    if not content or not content.strip():
        raise SummaryError("empty answer")
    text = content.strip()
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        # Models often wrap JSON in a code fence or a sentence: take the outermost object.
        start, end = text.find("{"), text.rfind("}")
        if start < 0 or end <= start:
            raise SummaryError("answer is not JSON") from None
        try:
            value = json.loads(text[start : end + 1])
        except json.JSONDecodeError as exc:
            raise SummaryError(f"answer is not JSON ({exc.msg})") from None
    if not isinstance(value, dict):
        raise SummaryError("answer is JSON but not an object")
    missing = [k for k in SUMMARY_KEYS if not isinstance(value.get(k), str) or not value[k].strip()]
    if missing:
        raise SummaryError(f"answer lacks non-empty string keys {missing}")
    return {k: value[k].strip()[: FIELD_CHARS[k]] for k in SUMMARY_KEYS}
