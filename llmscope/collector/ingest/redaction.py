"""PII masking applied before anything is stored (``LLMSCOPE_REDACT_PII=true``).

Masks e-mail addresses, phone numbers, payment card numbers (only digit runs that pass the Luhn
check, so order numbers survive) and secret-looking tokens (API keys, bearer tokens, JWTs).

Every expression runs in time linear in the text, whatever the text: a caller controls it, and
masking an expression that is quadratic on some input (40 KB of ``a-a-a-...`` took 5 s with the
first e-mail expression) would let one request stall the collector. The rule that keeps them
linear: a match may only start where a run of the characters it scans begins (a lookbehind
refuses the start inside the run), so no stretch of text is scanned once per starting position;
repetitions are bounded or end at a character outside their class. ``tests/collector/
test_redaction.py`` times each expression on adversarial input at two sizes.
"""

from __future__ import annotations

import re
from typing import Any

# ``lead``: the punctuation a run may start with, kept out of the mask (the address starts at
# the run's first letter, digit or underscore); possessive, so it is never split two ways.
_EMAIL = re.compile(
    r"(?<![A-Za-z0-9._%+-])(?P<lead>[.%+-]*+)[A-Za-z0-9_][A-Za-z0-9._%+-]*@[A-Za-z0-9.-]+"
    r"\.[A-Za-z]{2,}\b"
)
_SECRET = re.compile(
    r"\b(?:sk|pk|rk)-(?:proj-|ant-|live-|test-)?[A-Za-z0-9_-]{16,}"  # OpenAI/Anthropic/Stripe
    r"|\bgh[pousr]_[A-Za-z0-9]{30,}"  # GitHub
    r"|\bAKIA[0-9A-Z]{16}\b"  # AWS access key id
    r"|\bxox[abprs]-[A-Za-z0-9-]{10,}"  # Slack
    r"|(?i:\bbearer\s+)[A-Za-z0-9._~+/-]{16,}=*"
)
# A JWT: three dot-separated base64url segments, the first starting ``eyJ`` (``{"``) at the
# segment's start or after a dash. Dot-joined runs are found once and read by :func:`_jwt`: an
# expression starting at every ``eyJ`` would rescan the run after each (quadratic).
_DOTTED = re.compile(r"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]++(?:\.[A-Za-z0-9_-]++){2,}")
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


def _jwt(match: re.Match[str]) -> str:
    segments = match.group().split(".")
    out, i = [], 0
    while i < len(segments):
        segment = segments[i]
        # the earliest header start is the longest candidate: if it is too short, all are
        start = 0 if segment.startswith("eyJ") else segment.find("-eyJ") + 1
        if (
            (start or segment.startswith("eyJ"))
            and len(segment) - start >= 11
            and i + 2 < len(segments)
            and min(len(segments[i + 1]), len(segments[i + 2])) >= 8
        ):
            out.append(segment[:start] + MASKS["secret"])
            i += 3
        else:
            out.append(segment)
            i += 1
    return ".".join(out)


def _phone(match: re.Match[str]) -> str:
    text, (start, end) = match.string, match.span()
    # part of a longer run of digit groups (an order or card-like number): not a phone
    # (two characters either side are all this looks at: a slice of the whole text before each
    # match would make masking quadratic in the number of phone-like numbers)
    if re.match(r"[ .-]?\d", text[end : end + 2]) or re.search(
        r"\d[ .-]?$", text[max(0, start - 2) : start]
    ):
        return match.group()
    digits = re.sub(r"\D", "", match.group())
    return MASKS["phone"] if 9 <= len(digits) <= 15 else match.group()


# Masking runs off the event loop, but ``re`` holds the GIL for a whole ``sub``: a long text is
# masked in pieces of about ``PIECE`` characters, cut after a character no mask contains (or
# inside a run of whitespace), so the loop's thread waits at most one piece's expression.
# Without such a character within twice that, the cut is made anyway: nothing that long is an
# address, a number or a token.
PIECE = 16 * 1024
_CUT = re.compile(r"[,;:!?\"'<>\[\]{}|\\^`#*&$]|\s(?=\s)")


def _pieces(text: str) -> list[str]:
    pieces, start = [], 0
    while len(text) - start > 2 * PIECE:
        found = _CUT.search(text, start + PIECE, start + 2 * PIECE)
        cut = found.end() if found else start + 2 * PIECE
        pieces.append(text[start:cut])
        start = cut
    pieces.append(text[start:])
    return pieces


def redact_text(text: str) -> str:
    """``text`` with e-mails, card numbers, phone numbers and secrets masked."""
    if len(text) > 2 * PIECE:
        return "".join(_redact(piece) for piece in _pieces(text))
    return _redact(text)


def _redact(text: str) -> str:
    text = _SECRET.sub(MASKS["secret"], text)
    text = _DOTTED.sub(_jwt, text)
    text = _EMAIL.sub(r"\g<lead>" + MASKS["email"], text)
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
