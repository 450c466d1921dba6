"""JSON in and out of the gateway: a call's request body (JSON only, nested at most
:data:`MAX_DEPTH` deep, encodable) and the JSON answers it writes.

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

Bodies are parsed once, by orjson (several times faster than ``json``); what orjson refuses
(invalid JSON, NaN, lone surrogates, integers past 64 bits, nesting past its own limit) is
parsed again by ``json``, so every refusal and every accepted oddity reads as before.
:func:`dump_json` and :func:`json_answer` write answers the same way (orjson, with ``json`` for
what orjson cannot write).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Protocol

import orjson
from starlette.responses import Response

from llmscope.collector.ingest.encodable import might_hold_surrogates, replace_unencodable

__all__ = [
    "MAX_DEPTH",
    "BodyRefused",
    "CallRequest",
    "dump_json",
    "is_json_type",
    "json_answer",
    "nested_deeper",
    "parse_json",
    "read_body",
]

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


_MISSING = object()
# Every digit made "0": 20 zeros in a row then mark 20 digits in a row, maybe an integer past
# 2**64 (20 digits). Two C passes over the bytes, 20 times faster than a regular expression
# with a look-behind (10 us of every provider answer, 3 ms for a 90 kB prompt); a long run of
# decimals matches too and is merely parsed by ``json`` (to the same value).
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_TWENTY_DIGITS = b"0" * 20


def _maybe_long_integer(data: bytes) -> bool:
    return _TWENTY_DIGITS in data.translate(_DIGITS_AS_ZERO)


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")  # Python's parser accepts NaN and Infinity


def parse_json(raw: bytes | str, what: str, limit: int = MAX_DEPTH) -> Any:
    """``raw`` parsed, checked for depth and with lone surrogates replaced; BodyRefused (400)
    naming ``what`` when it is not JSON or nests too deep."""
    data = raw.encode() if isinstance(raw, str) else raw
    try:
        # orjson reads an integer past 64 bits as a float: those documents go to json whole
        value = _MISSING if _maybe_long_integer(data) else orjson.loads(data)
    except orjson.JSONDecodeError:
        value = _MISSING  # json below says why, or takes what orjson refuses (surrogates)
    if value is not _MISSING:
        if (data.count(b"[") + data.count(b"{")) > limit and nested_deeper(value, limit):
            raise BodyRefused(400, f"{what} is nested deeper than {limit} levels")
        return value  # orjson refuses lone surrogates: nothing to replace
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


class CallRequest(Protocol):
    """What the gateway reads of a call's HTTP request: a Starlette ``Request`` (the FastAPI
    routes), or the fast path's lighter one (``fast.py``)."""

    @property
    def headers(self) -> Mapping[str, str]: ...

    async def body(self) -> bytes: ...


async def read_body(request: CallRequest) -> dict[str, Any]:
    """The call's JSON object; BodyRefused (415 for another content type, else 400)."""
    if not is_json_type(request.headers.get("content-type")):
        raise BodyRefused(415, "Content-Type must be application/json")
    body = parse_json(await request.body(), "request body")
    if not isinstance(body, dict):
        raise BodyRefused(400, "request body must be a JSON object")
    return body


def dump_json(value: Any) -> bytes:
    """``value`` as compact UTF-8 JSON (what ``JSONResponse`` writes), by orjson when it can."""
    try:
        return orjson.dumps(value)
    except (orjson.JSONEncodeError, TypeError):
        return json.dumps(
            value, ensure_ascii=False, allow_nan=False, separators=(",", ":")
        ).encode()


def json_answer(
    content: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """A JSON response (``content`` written by :func:`dump_json`)."""
    return Response(dump_json(content), status, headers, media_type="application/json")


def relayed_answer(raw: bytes, headers: Mapping[str, str] | None = None) -> Response:
    """A 200 carrying a provider's JSON answer as it sent it, byte for byte."""
    return Response(raw, 200, headers, media_type="application/json")
