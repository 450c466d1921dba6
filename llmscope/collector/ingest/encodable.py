"""Text UTF-8 cannot encode (lone surrogates such as ``\\ud800``): found, named or replaced.

JSON may carry a lone surrogate as an escape (``"\\ud800"``) and Python decodes it into a
``str`` that no store, journal or JSON answer can encode. The doors treat it differently:

- the gateway has a call to forward and record, so :func:`replace_unencodable` swaps each lone
  surrogate for U+FFFD before the provider sees the body (and does the same to the provider's
  answer): the call goes on and is recorded, its text replaced, never dropped;
- the REST API refuses the record with a 422 naming the field (:func:`unencodable_location`);
- the recorder replaces what is left, as a last resort, rather than lose an answered call.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["REPLACEMENT", "might_hold_surrogates", "replace_unencodable", "unencodable_location"]

REPLACEMENT = "\ufffd"
# In a str, a pair decoded from JSON is one astral character: anything in this range is lone.
_SURROGATE = re.compile("[\ud800-\udfff]")
# A JSON escape of a surrogate (lone or paired), looked for before walking a parsed body.
_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def might_hold_surrogates(raw: bytes) -> bool:
    """Whether a JSON document (its bytes) may decode to a lone surrogate (a fast check)."""
    return _ESCAPE.search(raw) is not None


def replace_unencodable(value: Any) -> Any:
    """``value`` with every lone surrogate in its strings (keys too) replaced by U+FFFD."""
    if isinstance(value, str):
        return _SURROGATE.sub(REPLACEMENT, value)
    if isinstance(value, list):
        return [replace_unencodable(v) for v in value]
    if isinstance(value, dict):
        return {replace_unencodable(k): replace_unencodable(v) for k, v in value.items()}
    return value


def unencodable_location(value: Any) -> tuple[str | int, ...] | None:
    """Where the first lone surrogate in ``value`` is (``("messages", 0, "content")``; a key
    holding one is named itself), else None."""
    if isinstance(value, str):
        return () if _SURROGATE.search(value) else None
    if isinstance(value, list):
        items: Any = enumerate(value)
    elif isinstance(value, dict):
        items = value.items()
    else:
        return None
    for key, item in items:
        if isinstance(key, str) and _SURROGATE.search(key):
            return (_SURROGATE.sub(REPLACEMENT, key),)
        found = unencodable_location(item)
        if found is not None:
            return (key, *found)
    return None
