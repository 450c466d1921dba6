"""PII masking applied before anything is stored (``LLMSCOPE_REDACT_PII=true``).

Masks e-mail addresses, phone numbers, payment card numbers (only digit runs that pass the Luhn
check, so order numbers survive) and secret-looking tokens (API keys, bearer tokens, JWTs).
"""

from __future__ import annotations

import re
from typing import Any

_EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b")
_SECRET = re.compile(
    r"\b(?:sk|pk|rk)-(?:proj-|ant-|live-|test-)?[A-Za-z0-9_-]{16,}"  # OpenAI/Anthropic/Stripe
    r"|\bgh[pousr]_[A-Za-z0-9]{30,}"  # GitHub
    r"|\bAKIA[0-9A-Z]{16}\b"  # AWS access key id
    r"|\bxox[abprs]-[A-Za-z0-9-]{10,}"  # Slack
    r"|\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"  # JWT
    r"|(?i:\bbearer\s+)[A-Za-z0-9._~+/-]{16,}=*"
)
# 13-19 digits, optionally grouped by spaces or dashes.
_CARD = re.compile(r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])")
# International or North-American style numbers with separators; at least 9 digits in all.
_PHONE = re.compile(
    r"(?<![\w+])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{2,4}\)[\s.-]?|\d{2,4}[\s.-])\d{3,4}[\s.-]\d{3,4}\b"
)

MASKS = {"email": "[EMAIL]", "phone": "[PHONE]", "card": "[CARD]", "secret": "[SECRET]"}


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _card(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group())
    return MASKS["card"] if 13 <= len(digits) <= 19 and luhn_ok(digits) else match.group()


def _phone(match: re.Match[str]) -> str:
    text, (start, end) = match.string, match.span()
    # part of a longer run of digit groups (an order or card-like number): not a phone
    if re.match(r"[ .-]?\d", text[end : end + 2]) or re.search(r"\d[ .-]?$", text[:start]):
        return match.group()
    digits = re.sub(r"\D", "", match.group())
    return MASKS["phone"] if 9 <= len(digits) <= 15 else match.group()


def redact_text(text: str) -> str:
    """``text`` with e-mails, card numbers, phone numbers and secrets masked."""
    text = _SECRET.sub(MASKS["secret"], text)
    text = _EMAIL.sub(MASKS["email"], text)
    text = _CARD.sub(_card, text)
    return _PHONE.sub(_phone, text)


def redact_value(value: Any) -> Any:
    """Mask every string inside ``value`` (strings, lists and dicts, recursively)."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, list):
        return [redact_value(v) for v in value]
    if isinstance(value, dict):
        return {k: redact_value(v) for k, v in value.items()}
    return value


CONTENT_FIELDS = (
    "prompt",
    "messages",
    "response",
    "tool_calls",
    "choices",
    "template_text",
    "template_variables",
    "error",
    "tags",
    "user_id",
)


def redact_row(row: dict[str, Any]) -> dict[str, Any]:
    """A copy of a ``records`` row with every content field masked."""
    out = dict(row)
    for field in CONTENT_FIELDS:
        if out.get(field) is not None:
            out[field] = redact_value(out[field])
    return out
