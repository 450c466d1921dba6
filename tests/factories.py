"""Test data as plain functions: records and feedback shaped as the API takes them."""

from __future__ import annotations

import itertools
from typing import Any

_counter = itertools.count()


def record(**overrides: Any) -> dict[str, Any]:
    n = next(_counter)
    body: dict[str, Any] = {
        "timestamp": "2026-11-20T12:00:00Z",
        "endpoint": "chat",
        "provider": "openai",
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": f"How do I reset my password? ({n})"}],
        "response": "Open Settings, then Security, then Reset password.",
        "template": {"name": "support", "version": "2", "variables": {"question": "reset"}},
        "input_tokens": 12,
        "output_tokens": 9,
        "latency_ms": 420.5,
        "ttft_ms": 80.0,
        "user_id": "u-1",
        "session_id": "s-1",
        "tags": {"team": "support"},
    }
    body.update(overrides)
    return body


def feedback(value: Any = "down", **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"value": value, "tags": ["incorrect"], "comment": "wrong steps"}
    body.update(overrides)
    return body
