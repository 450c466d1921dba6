"""OTLP/HTTP on the wire: content types, gzip, the body-size cap, hex ids in JSON, answers.

Requests are ``ExportTraceServiceRequest`` as protobuf (``application/x-protobuf``) or OTLP/JSON
(``application/json``, where trace and span ids are hex strings, not protobuf-JSON base64);
answers go back in the request's encoding: an ``ExportTraceServiceResponse`` on success and a
``google.rpc.Status`` for errors, as the OTLP specification asks.
"""

from __future__ import annotations

import base64
import json
import re
import zlib
from typing import Any, Literal

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

Encoding = Literal["protobuf", "json"]
MEDIA_TYPES: dict[str, Encoding] = {
    "application/x-protobuf": "protobuf",
    "application/json": "json",
}
CONTENT_TYPES: dict[Encoding, str] = {
    "protobuf": "application/x-protobuf",
    "json": "application/json",
}
# gRPC status codes carried in the error body, per HTTP status.
_GRPC_CODES = {400: 3, 413: 8, 415: 3, 429: 8, 503: 14}
_HEX = re.compile(r"^(?:[0-9a-fA-F]{2})*$")
_ID_KEYS = ("traceId", "trace_id", "spanId", "span_id", "parentSpanId", "parent_span_id")


class WireError(Exception):
    """A request the receiver cannot take; ``status`` is the HTTP status of the answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def encoding_of(content_type: str | None) -> Encoding:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media not in MEDIA_TYPES:
        raise WireError(
            415,
            f"unsupported content type {media or '(none)'!r}; "
            "send application/x-protobuf or application/json",
        )
    return MEDIA_TYPES[media]


def decompress(body: bytes, content_encoding: str | None, max_bytes: int) -> bytes:
    """``body`` decoded per ``Content-Encoding``; 413 when the result passes ``max_bytes``."""
    coding = (content_encoding or "identity").strip().lower()
    if coding == "identity" or not coding:
        data = body
    elif coding == "gzip":
        data = _gunzip(body, max_bytes)
    else:
        raise WireError(415, f"unsupported content encoding {coding!r}; send gzip or none")
    if len(data) > max_bytes:
        raise WireError(413, f"request body is larger than {max_bytes} bytes after decompression")
    return data


def _gunzip(body: bytes, max_bytes: int) -> bytes:
    out = bytearray()
    rest = body
    try:
        while rest:  # a gzip stream may hold several members, one after the other
            inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            # Never inflate more than one byte past the cap: a small bomb stays small.
            out += inflater.decompress(rest, max_bytes + 1 - len(out))
            if len(out) > max_bytes:
                return bytes(out)
            if not inflater.eof:
                raise WireError(400, "gzip body is truncated")
            rest = inflater.unused_data
    except zlib.error as exc:
        raise WireError(400, f"gzip body does not decompress: {exc}") from None
    return bytes(out)


def parse_request(data: bytes, encoding: Encoding) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    if encoding == "protobuf":
        try:
            request.ParseFromString(data)
        except DecodeError as exc:
            raise WireError(400, f"body is not an ExportTraceServiceRequest: {exc}") from None
        return request
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise WireError(400, "body is not valid JSON") from None
    except RecursionError:
        raise WireError(400, "body is nested too deeply to parse") from None
    if not isinstance(document, dict):
        raise WireError(400, "body is not an OTLP/JSON ExportTraceServiceRequest object")
    _hex_ids_to_base64(document)
    try:
        json_format.ParseDict(document, request, ignore_unknown_fields=True)
    except json_format.ParseError as exc:
        raise WireError(400, f"body is not an OTLP/JSON ExportTraceServiceRequest: {exc}") from None
    except RecursionError:
        raise WireError(400, "body is nested too deeply to parse") from None
    return request


def _items(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _get(obj: dict[str, Any], camel: str, snake: str) -> Any:
    return obj.get(camel, obj.get(snake))


def _rewrite_ids(obj: dict[str, Any]) -> None:
    for key in _ID_KEYS:
        value = obj.get(key)
        if isinstance(value, str) and _HEX.match(value):
            obj[key] = base64.b64encode(bytes.fromhex(value)).decode()


def _hex_ids_to_base64(document: dict[str, Any]) -> None:
    """OTLP/JSON writes ids as hex; protobuf's JSON mapping expects base64 for bytes fields."""
    for resource_spans in _items(_get(document, "resourceSpans", "resource_spans")):
        for scope_spans in _items(_get(resource_spans, "scopeSpans", "scope_spans")):
            for span in _items(scope_spans.get("spans")):
                _rewrite_ids(span)
                for link in _items(span.get("links")):
                    _rewrite_ids(link)


def _serialize(message: Message, encoding: Encoding) -> bytes:
    if encoding == "protobuf":
        return bytes(message.SerializeToString())
    return json.dumps(json_format.MessageToDict(message)).encode()


def export_response(encoding: Encoding, rejected: int, error_message: str) -> bytes:
    response = ExportTraceServiceResponse()
    if rejected or error_message:
        response.partial_success.rejected_spans = rejected
        response.partial_success.error_message = error_message
    return _serialize(response, encoding)


def error_body(encoding: Encoding, status: int, message: str) -> bytes:
    return _serialize(Status(code=_GRPC_CODES.get(status, 2), message=message), encoding)
