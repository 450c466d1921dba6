"""User-supplied regular expressions (the ``regex`` evaluator), matched in linear time by RE2.

A pattern comes from the gateway YAML and the text it runs on from a model's answer, so neither
is trusted. Python's ``re`` backtracks: ``^(\\w+\\s?)*$`` on a 28-character answer that does not
match took 17 s, doubling with each character, and held the GIL meanwhile. RE2 (``google-re2``)
runs in time linear in the text for every pattern it accepts; it refuses what needs
backtracking (lookarounds, backreferences, possessive quantifiers), and such a pattern is a
config error naming the reason, so the collector never starts (or reloads) with one.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import re2

__all__ = ["PatternError", "compile_pattern"]

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # the error goes into the config error, not to stderr


class PatternError(ValueError):
    """A pattern RE2 cannot compile; the message says why."""


@lru_cache(maxsize=256)
def compile_pattern(pattern: str) -> Any:
    """``pattern`` compiled by RE2 (cached); :class:`PatternError` when RE2 refuses it."""
    try:
        return re2.compile(pattern, options=_OPTIONS)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise PatternError(
            f"RE2 cannot compile it ({reason}); lookarounds, backreferences and possessive "
            "quantifiers are not supported, so matching stays linear in the answer's length"
        ) from None
