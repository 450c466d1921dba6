"""Media in chat messages stored as references, so a record's size stays bounded.

An image or audio part sent inline (a base64 data URL, OpenAI's ``input_audio``, Anthropic's
``base64`` source, a ``file`` with ``file_data``, as a data URL or bare base64) is recorded as
``{"type": "image"|"audio"|"file", "media_type", "bytes", "sha256"}``: what it was, how big, and
a digest to find the same image again, never the data. A part that points to its media by URL
is recorded as ``{"type", "url"}``. Text parts and everything else stay as they came. An
endpoint with ``log_media: true`` keeps the data instead.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import mimetypes
import re
from typing import Any

_DATA_URL = re.compile(r"^data:([\w/+.-]+)?(?:;[\w=.-]+)*;base64,(.*)$", re.DOTALL)


def _reference(kind: str, media_type: str | None, data: str) -> dict[str, Any]:
    try:
        raw = base64.b64decode(data, validate=False)
    except (binascii.Error, ValueError):
        raw = data.encode()
    return {
        "type": kind,
        "media_type": media_type,
        "bytes": len(raw),
        "sha256": hashlib.sha256(raw).hexdigest(),
    }


def _from_url(kind: str, url: Any) -> dict[str, Any] | None:
    if not isinstance(url, str):
        return None
    match = _DATA_URL.match(url)
    if match:
        return _reference(kind, match.group(1), match.group(2))
    return {"type": kind, "url": url}


def part_reference(part: Any) -> Any:
    """One content part, its inline media replaced by a reference (other parts unchanged)."""
    if not isinstance(part, dict):
        return part
    kind = part.get("type")
    found: dict[str, Any] | None = None
    if kind == "image_url":
        image = part.get("image_url")
        found = _from_url("image", image.get("url") if isinstance(image, dict) else image)
    elif kind == "input_image":  # the Responses API's part
        found = _from_url("image", part.get("image_url"))
    elif kind == "input_audio":
        audio = part.get("input_audio") or {}
        if isinstance(audio.get("data"), str):
            found = _reference("audio", f"audio/{audio.get('format', 'wav')}", audio["data"])
    elif kind in ("image", "document") and isinstance(part.get("source"), dict):
        source = part["source"]  # Anthropic's blocks
        if source.get("type") == "base64" and isinstance(source.get("data"), str):
            found = _reference(kind, source.get("media_type"), source["data"])
        elif source.get("type") == "url":
            found = {"type": kind, "url": source.get("url")}
    elif kind == "file" and isinstance(part.get("file"), dict):
        file = part["file"]
        data = file.get("file_data")
        if isinstance(data, str) and data.startswith("data:"):
            found = _from_url("file", data)
        elif isinstance(data, str):  # OpenAI also takes bare base64: never a URL to keep
            media_type = mimetypes.guess_type(str(file.get("filename") or ""))[0]
            found = _reference("file", media_type, data)
    return found if found is not None else part


def media_references(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``messages`` with every inline media part as a reference (a new list; input unchanged)."""
    out = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, list) and any(isinstance(p, dict) for p in content):
            message = {**message, "content": [part_reference(p) for p in content]}
        out.append(message)
    return out
