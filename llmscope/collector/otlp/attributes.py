"""Reading span attributes: OTLP ``AnyValue`` to Python, typed getters, flattened lists.

Instrumentations disagree on shapes: OpenInference flattens lists into indexed keys
(``llm.input_messages.0.message.role``), the GenAI conventions send JSON strings or structured
values, and numbers sometimes arrive as strings. ``Attrs`` reads all of them one way and raises
``BadAttribute`` (naming the key) when a value cannot mean what the convention says it means.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Iterator
from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

_INDEX = re.compile(r"^(\d+)\.(.+)$")


class BadAttribute(ValueError):
    """An attribute whose value does not have the type its convention gives it."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key


def to_python(value: AnyValue) -> Any:
    """The Python value of an OTLP ``AnyValue`` (lists and key-value lists recursively)."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "int_value":
        return value.int_value
    if kind == "double_value":
        return value.double_value
    if kind == "array_value":
        return [to_python(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: to_python(kv.value) for kv in value.kvlist_value.values}
    if kind == "bytes_value":
        return value.bytes_value.hex()
    return None


def attributes_of(pairs: Iterable[KeyValue]) -> Attrs:
    return Attrs({kv.key: to_python(kv.value) for kv in pairs})


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    # Structured values ({"message": {"role": ...}}) read like their flattened form.
    if isinstance(value, dict):
        for key, inner in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), inner, out)
    else:
        out[prefix] = value


class Attrs:
    """A span's (or an event's) attributes with getters that check types."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values

    def __contains__(self, key: str) -> bool:
        return key in self.values

    def keys(self) -> Iterator[str]:
        return iter(self.values)

    def has_any(self, *keys: str) -> bool:
        return any(k in self.values for k in keys)

    def has_prefix(self, prefix: str) -> bool:
        return any(k.startswith(prefix) for k in self.values)

    def raw(self, key: str) -> Any:
        return self.values.get(key)

    def text(self, key: str) -> str | None:
        """A string; numbers are accepted as their decimal text, other types are refused."""
        value = self.values.get(key)
        if value is None or isinstance(value, str):
            return value or None
        if isinstance(value, bool):
            raise BadAttribute(key, "expected a string, got a boolean")
        if isinstance(value, int | float):
            return str(value)
        raise BadAttribute(key, f"expected a string, got {type(value).__name__}")

    def integer(self, key: str) -> int | None:
        """A non-negative integer; ``"12"`` and ``12.0`` are accepted, ``"many"`` is refused."""
        value = self.values.get(key)
        if value is None:
            return None
        if isinstance(value, bool):
            raise BadAttribute(key, "expected an integer, got a boolean")
        if isinstance(value, str):
            if not value.strip().isdigit():
                raise BadAttribute(key, f"expected an integer, got {value[:40]!r}")
            value = int(value)
        if isinstance(value, float):
            if not value.is_integer():
                raise BadAttribute(key, f"expected an integer, got {value}")
            value = int(value)
        if not isinstance(value, int):
            raise BadAttribute(key, f"expected an integer, got {type(value).__name__}")
        if value < 0:
            raise BadAttribute(key, f"must not be negative, got {value}")
        return value

    def number(self, key: str) -> float | None:
        value = self.values.get(key)
        if value is None:
            return None
        if isinstance(value, bool):
            raise BadAttribute(key, "expected a number, got a boolean")
        if isinstance(value, str):
            text = value
            try:
                value = float(text)
            except ValueError:
                raise BadAttribute(key, f"expected a number, got {text[:40]!r}") from None
        if not isinstance(value, int | float) or not math.isfinite(value):
            raise BadAttribute(key, f"expected a finite number, got {value!r}")
        return float(value)

    def structured(self, key: str) -> Any:
        """A JSON string decoded, or a structured (array / key-value list) value as it came."""
        value = self.values.get(key)
        if isinstance(value, str):
            if not value.strip():
                return None
            try:
                return json.loads(value)
            except ValueError:
                raise BadAttribute(key, "expected JSON, got text that does not parse") from None
        return value

    def mapping(self, key: str) -> dict[str, Any] | None:
        value = self.structured(key)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise BadAttribute(key, f"expected a JSON object, got {type(value).__name__}")
        return {str(k): v for k, v in value.items()}

    def under(self, prefix: str) -> dict[str, Any]:
        """``{rest: value}`` for every key ``prefix.rest``."""
        start = prefix + "."
        return {k[len(start) :]: v for k, v in self.values.items() if k.startswith(start)}

    def indexed(self, prefix: str, *, flat_only: bool = False) -> list[Attrs]:
        """The list stored under ``prefix``: flattened (``prefix.0.x``) or structured, in order."""
        items: dict[int, dict[str, Any]] = {}
        for rest, value in self.under(prefix).items():
            match = _INDEX.match(rest)
            if match:
                items.setdefault(int(match.group(1)), {})[match.group(2)] = value
        if items or flat_only:
            return [Attrs(items[i]) for i in sorted(items)]
        whole = self.structured(prefix)
        if whole is None:
            return []
        if not isinstance(whole, list):
            raise BadAttribute(prefix, f"expected a list, got {type(whole).__name__}")
        out = []
        for i, element in enumerate(whole):
            if not isinstance(element, dict):
                raise BadAttribute(f"{prefix}.{i}", "expected an object")
            flat: dict[str, Any] = {}
            _flatten("", element, flat)
            out.append(Attrs(flat))
        return out
