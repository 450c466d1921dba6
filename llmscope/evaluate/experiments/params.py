"""A variant's request parameters (``param.NAME=VALUE``), checked before anything is called.

The values reach a paid provider in every replayed request, so what no provider accepts is
refused here, in one line naming the parameter, instead of being sent once per record: numbers
JSON cannot carry (``NaN``, ``Infinity``: ``json.dumps`` writes them bare, an invalid body),
and the usual sampling parameters outside the ranges OpenAI's API documents. Token limits are
whole numbers from 1 to :data:`MAX_TOKENS` (``1e308`` is no limit a provider will honour).
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["MAX_TOKENS", "check_params"]

MAX_TOKENS = 1_000_000  # above every model's output window today
_RANGES = {
    "temperature": (0.0, 2.0),
    "top_p": (0.0, 1.0),
    "presence_penalty": (-2.0, 2.0),
    "frequency_penalty": (-2.0, 2.0),
}
_TOKEN_LIMITS = ("max_tokens", "max_completion_tokens", "max_output_tokens")


def _finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(_finite(v) for v in value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    return True


def check_params(params: dict[str, Any]) -> str | None:
    """The problem with ``params`` in one phrase (``param.temperature: ...``), or None."""
    for name, value in params.items():
        where = f"param.{name}"
        if not _finite(value):
            return f"{where}: not a finite number (NaN and Infinity are not JSON)"
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if name in _RANGES:
            low, high = _RANGES[name]
            if not number or not low <= value <= high:
                return f"{where}: must be a number from {low:g} to {high:g}"
        if name in _TOKEN_LIMITS:
            whole = number and float(value).is_integer()
            if not whole or not 1 <= value <= MAX_TOKENS:
                return f"{where}: must be a whole number from 1 to {MAX_TOKENS:,}"
    return None
