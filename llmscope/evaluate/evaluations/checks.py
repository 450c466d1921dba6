"""The built-in checks: pure functions of an answer (or a latency) to a verdict, no LLM.

A check's verdict has ``score`` 1 (pass) or 0 (fail), ``passed`` and a one-line
``justification`` saying what was found. ``refusal`` looks for the phrases assistants use to
decline; ``pii`` uses the same detectors as ``LLMSCOPE_REDACT_PII`` (e-mail, phone, Luhn-valid
card number, secret-looking token).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from llmscope.collector.gateway.evaluators import (
    Evaluator,
    JsonCheck,
    LatencyCheck,
    LengthCheck,
    PiiCheck,
    RefusalCheck,
    RegexCheck,
)
from llmscope.collector.gateway.patterns import compile_pattern
from llmscope.collector.ingest.redaction import MASKS, redact_text


@dataclass(frozen=True)
class Verdict:
    score: float | None
    passed: bool | None
    justification: str | None
    error: str | None = None


_REFUSAL = re.compile(
    r"\b(?:I(?:'|’)?m sorry,? but I (?:can(?:'|’)?t|cannot|won(?:'|’)?t|am unable to)"
    r"|I (?:can(?:'|’)?t|cannot|won(?:'|’)?t|am not able to|am unable to|must decline to)"
    r" (?:help|assist|provide|answer|comply|do that|share|discuss|fulfil)"
    r"|I(?:'|’)?m (?:not able|unable) to (?:help|assist|provide|answer|comply)"
    r"|(?:as an AI(?: language model)?,? I (?:can(?:'|’)?t|cannot|don(?:'|’)?t))"
    r"|I (?:can(?:'|’)?t|cannot) (?:help|assist) with (?:that|this))",
    re.IGNORECASE,
)
_FENCE = re.compile(r"^```(?:json)?\s*\n(.*)\n```$", re.DOTALL)


def _verdict(passed: bool, justification: str) -> Verdict:
    return Verdict(1.0 if passed else 0.0, passed, justification)


def refusal(answer: str) -> Verdict:
    match = _REFUSAL.search(answer)
    if match is None:
        return _verdict(True, "no refusal found")
    return _verdict(False, f"refusal: {match.group(0)!r}")


def valid_json(answer: str, schema: dict[str, Any] | None) -> Verdict:
    text = answer.strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1).strip()
    try:
        value = json.loads(text)
    except ValueError as exc:
        return _verdict(False, f"not JSON: {exc}")
    except RecursionError:  # an answer must not stop the checks of every record after it
        return _verdict(False, "not JSON this check can read: nested too deeply")
    if schema is None:
        return _verdict(True, "valid JSON")
    import jsonschema

    validator = jsonschema.validators.validator_for(schema)(schema)
    try:
        error = jsonschema.exceptions.best_match(validator.iter_errors(value))
    except RecursionError:
        return _verdict(False, "does not match the schema: nested too deeply to check")
    if error is None:
        return _verdict(True, "valid JSON, matches the schema")
    where = "/".join(str(p) for p in error.absolute_path) or "(root)"
    return _verdict(False, f"does not match the schema at {where}: {error.message}"[:1000])


def regex(answer: str, pattern: str, must_match: bool) -> Verdict:
    found = compile_pattern(pattern).search(answer) is not None  # RE2: linear in the answer
    if must_match:
        return _verdict(found, "matches" if found else f"does not match {pattern!r}")
    return _verdict(not found, f"matches {pattern!r}" if found else "does not match")


def length(answer: str, min_words: int | None, max_words: int | None) -> Verdict:
    words = len(answer.split())
    if min_words is not None and words < min_words:
        return _verdict(False, f"{words} words, fewer than {min_words}")
    if max_words is not None and words > max_words:
        return _verdict(False, f"{words} words, more than {max_words}")
    return _verdict(True, f"{words} words")


def pii(answer: str) -> Verdict:
    masked = redact_text(answer)
    found = [kind for kind, mask in MASKS.items() if masked.count(mask) > answer.count(mask)]
    if not found:
        return _verdict(True, "no personal data found")
    return _verdict(False, "the answer contains: " + ", ".join(found))


def latency(latency_ms: float, max_ms: float) -> Verdict:
    if latency_ms <= max_ms:
        return _verdict(True, f"{latency_ms:.0f} ms")
    return _verdict(False, f"{latency_ms:.0f} ms, over {max_ms:.0f} ms")


def run_check(
    evaluator: Evaluator, response: str | None, latency_ms: float | None
) -> Verdict | None:
    """The verdict of a built-in ``evaluator``; None when the record lacks what it needs."""
    if isinstance(evaluator, LatencyCheck):
        return None if latency_ms is None else latency(latency_ms, evaluator.max_ms)
    if response is None:
        return None
    if isinstance(evaluator, RefusalCheck):
        return refusal(response)
    if isinstance(evaluator, JsonCheck):
        return valid_json(response, evaluator.json_schema)
    if isinstance(evaluator, RegexCheck):
        return regex(response, evaluator.pattern, evaluator.must_match)
    if isinstance(evaluator, LengthCheck):
        return length(response, evaluator.min_words, evaluator.max_words)
    if isinstance(evaluator, PiiCheck):
        return pii(response)
    raise TypeError(f"not a built-in check: {type(evaluator).__name__}")
