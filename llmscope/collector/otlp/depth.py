"""OTLP/JSON spans nested too deep to parse: cut out, so they alone are rejected.

A span's attributes may nest (``arrayValue`` and ``kvlistValue`` inside each other); nested far
enough, the document no longer parses (Python's JSON parser recurses out, protobuf's JSON
mapping stops at 100 messages) and the whole export would be refused for one span. When a JSON
export fails to parse, :func:`cut_deep_spans` scans it without recursion, removes each span
nested deeper than :data:`MAX_SPAN_DEPTH` levels, and the rest is parsed again: those spans are
reported in ``partial_success`` like any other rejected span. Only the failure path pays for
the scan.
"""

from __future__ import annotations

import re

__all__ = ["MAX_SPAN_DEPTH", "cut_deep_spans"]

MAX_SPAN_DEPTH = 64  # JSON levels below a span: about 20 levels of nested attribute values
# A string (a key when a colon follows) or a bracket; strings are skipped whole, escapes and all.
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"(\s*:)?|[\[\]{}]')
_SPAN_ID = re.compile(r'"span_?[iI]d"\s*:\s*"([0-9a-fA-F]{1,32})"')
_SPAN_LEVEL = 6  # containers open around a span: {resourceSpans[{scopeSpans[{spans[


def _deep_spans(text: str, limit: int) -> list[tuple[int, int]]:
    """``(start, end)`` of each span in ``text`` nested deeper than ``limit`` levels."""
    stack: list[tuple[str, str | None]] = []
    key: str | None = None
    start, deepest, found = -1, 0, []
    for match in _TOKEN.finditer(text):
        token = match.group()
        if token[0] == '"':
            key = token[: token.rindex('"') + 1] if match.group(1) else None
            continue
        if token in "[{":
            if token == "{" and len(stack) == _SPAN_LEVEL and stack[-1] == ("[", '"spans"'):
                start, deepest = match.start(), 0
            stack.append((token, key))
            deepest = max(deepest, len(stack) - _SPAN_LEVEL - 1)
        else:
            if not stack:
                return []  # not balanced: no JSON to cut from
            stack.pop()
            if len(stack) == _SPAN_LEVEL and start >= 0:
                if deepest > limit:
                    found.append((start, match.end()))
                start = -1
        key = None
    return found


def cut_deep_spans(data: bytes, limit: int = MAX_SPAN_DEPTH) -> tuple[bytes, list[str]]:
    """``data`` without its too-deep spans, and a line for each (``span ID: ...``)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return data, []
    spans = _deep_spans(text, limit)
    if not spans:
        return data, []
    pieces, errors, kept_from = [], [], 0
    for start, end in spans:
        found = _SPAN_ID.search(text, start, end)
        errors.append(
            f"span {found.group(1) if found else '?'}: attributes nested deeper than {limit} levels"
        )
        after = text[end:].lstrip()
        if after.startswith(","):  # drop the span and the comma after it
            end = len(text) - len(after) + 1
        else:  # the last span: drop the comma before it
            before = text[kept_from:start].rstrip()
            if before.endswith(","):
                start = kept_from + len(before) - 1
        pieces.append(text[kept_from:start])
        kept_from = end
    pieces.append(text[kept_from:])
    return "".join(pieces).encode("utf-8"), errors
