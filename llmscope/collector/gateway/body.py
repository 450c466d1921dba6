"""A gateway call's request body: JSON only, nested at most :data:`MAX_DEPTH` deep, encodable.

- **JSON content types only** (``application/json``, ``application/*+json``): a web page can
  make a browser send ``text/plain`` or form bodies to any address without asking (no CORS
  preflight), so with no keys configured a page could otherwise spend provider money through
  a collector on the user's machine. Anything else is a 415 before the body is read.
- **Depth**: every later step (masking, the journal, the store's JSON columns) walks the body,
  so a body nested deeper than any real request (a 100k-deep one made ``json.loads`` recurse
  out) is a 400 naming the limit.
- **NaN and Infinity** (which Python's parser accepts) are not JSON: a 400, never forwarded.
- **Lone surrogates** are replaced by U+FFFD (``llmscope.collector.ingest.encodable``), so the
  provider, the answer and the record all get the same, encodable text.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request

from llmscope.collector.ingest.encodable import might_hold_surrogates, replace_unencodable

__all__ = ["MAX_DEPTH", "BodyRefused", "is_json_type", "nested_deeper", "parse_json", "read_body"]

MAX_DEPTH = 64  # OpenAI requests nest < 15 (a tool's schema included); headroom for deep schemas


class BodyRefused(Exception):
    """A body the gateway will not take: ``status`` (400 or 415) and a one-line message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def is_json_type(content_type: str | None) -> bool:
    """Whether a ``Content-Type`` header names JSON (parameters such as charset allowed)."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def nested_deeper(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether objects and arrays in ``value`` nest deeper than ``limit`` (no recursion)."""
    if not isinstance(value, dict | list):
        return False
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        if depth > limit:
            return True
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return False


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")  # Python's parser accepts NaN and Infinity


def parse_json(raw: bytes | str, what: str, limit: int = MAX_DEPTH) -> Any:
    """``raw`` parsed, checked for depth and with lone surrogates replaced; BodyRefused (400)
    naming ``what`` when it is not JSON or nests too deep."""
    data = raw.encode() if isinstance(raw, str) else raw
    try:
        value = json.loads(data, parse_constant=_not_json)
    except RecursionError:
        value, too_deep = None, True
    except ValueError:
        raise BodyRefused(400, f"{what} is not valid JSON") from None
    else:
        # a document with fewer brackets than the limit cannot nest deeper: skip the walk
        brackets = data.count(b"[") + data.count(b"{")
        too_deep = (
            brackets > limit and isinstance(value, dict | list) and nested_deeper(value, limit)
        )
    if too_deep:
        raise BodyRefused(400, f"{what} is nested deeper than {limit} levels")
    return replace_unencodable(value) if might_hold_surrogates(data) else value


async def read_body(request: Request) -> dict[str, Any]:
    """The call's JSON object; BodyRefused (415 for another content type, else 400)."""
    if not is_json_type(request.headers.get("content-type")):
        raise BodyRefused(415, "Content-Type must be application/json")
    body = parse_json(await request.body(), "request body")
    if not isinstance(body, dict):
        raise BodyRefused(400, "request body must be a JSON object")
    return body
