"""PII masking: what must be masked is, and near-misses (order numbers, dates) are not."""

from __future__ import annotations

import time

import pytest

from llmscope.collector.ingest.redaction import luhn_ok, redact_row, redact_text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("write to jane.doe+billing@example.co.uk please", "write to [EMAIL] please"),
        ("card 4111 1111 1111 1111 was declined", "card [CARD] was declined"),
        ("card 4111-1111-1111-1111.", "card [CARD]."),
        ("amex 378282246310005 ok", "amex [CARD] ok"),
        ("call +44 20 7946 0958 today", "call [PHONE] today"),
        ("call (415) 555-2671 now", "call [PHONE] now"),
        ("my key is sk-proj-abcdefghijklmnopqrstuvwx123", "my key is [SECRET]"),
        ("anthropic sk-ant-api03-abcdefghijklmnopqrst", "anthropic [SECRET]"),
        ("Authorization: Bearer abcdefghijklmnop1234567890", "Authorization: [SECRET]"),
        ("token ghp_abcdefghijklmnopqrstuvwxyz0123456789", "token [SECRET]"),
        ("aws AKIAIOSFODNN7EXAMPLE here", "aws [SECRET] here"),
        (
            "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N",
            "jwt [SECRET]",
        ),
    ],
)
def test_sensitive_values_are_masked(text: str, expected: str) -> None:
    assert redact_text(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "order 4111 1111 1111 1112 has shipped",  # 16 digits, fails the Luhn check
        "order number 1234567890123 is late",  # 13 digits, fails Luhn
        "invoice 2026-11-21 for 3 items",
        "version 1.2.3 released",
        "room 101, floor 3",
        "price 1299.99 EUR",
        "the answer is 42",
        "skip-this-word is not a key",
        "contact us at support (at) example dot com",
    ],
)
def test_near_misses_are_left_alone(text: str) -> None:
    assert redact_text(text) == text


def test_luhn() -> None:
    assert luhn_ok("4111111111111111")
    assert luhn_ok("79927398713")
    assert not luhn_ok("4111111111111112")
    assert not luhn_ok("79927398710")


def test_row_content_fields_are_masked_recursively() -> None:
    row = {
        "id": "r1",
        "model": "gpt-4o-mini",
        "prompt": "I am bob@example.com",
        "messages": [{"role": "user", "content": "card 4111111111111111"}],
        "response": None,
        "template_variables": {"email": "bob@example.com", "n": 3},
        "tags": {"contact": "bob@example.com"},
    }
    out = redact_row(row)
    assert out["prompt"] == "I am [EMAIL]"
    assert out["messages"] == [{"role": "user", "content": "card [CARD]"}]
    assert out["template_variables"] == {"email": "[EMAIL]", "n": 3}
    assert out["tags"] == {"contact": "[EMAIL]"}
    assert out["model"] == "gpt-4o-mini" and out["id"] == "r1"
    assert row["prompt"] == "I am bob@example.com"  # the input is not modified


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("reply to --jane@example.com now", "reply to --[EMAIL] now"),
        (
            "token-eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N",
            "token-[SECRET]",
        ),  # noqa: E501
        (
            "a.b.eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N",
            "a.b.[SECRET]",
        ),  # noqa: E501
        ("call 415 555 2671, or 415 555 2672", "call [PHONE], or [PHONE]"),
    ],
)
def test_masks_found_where_runs_begin(text: str, expected: str) -> None:
    # the linear expressions start a match only where a run begins; these still mask
    assert redact_text(text) == expected


def test_a_long_text_is_masked_in_pieces_as_it_would_be_whole() -> None:
    line = "mail jane.doe@example.com or call +44 20 7946 0958, card 4111 1111 1111 1111; "
    text = line * 5_000  # ~400 KB: many pieces, cut between the masked values
    assert redact_text(text) == redact_text(line) * 5_000


# Each is quadratic (or worse) for some expression that scans it from every starting position.
ADVERSARIAL = ["a-", "a.", "1-", "eyJ-", "x@a-", "415 555 2671, ", "a@", "bearer ", "(12) "]


@pytest.mark.parametrize("unit", ADVERSARIAL)
def test_masking_is_linear_on_adversarial_text(unit: str) -> None:
    # A loose bound, so it holds on a loaded machine: linear masking takes ~0.3 s for 1 MB
    # here; the quadratic expressions took ~5 s for 40 KB of "a-" (minutes for 1 MB).
    text = (unit * (1 << 20))[: 1 << 20]
    started = time.perf_counter()
    redact_text(text)
    assert time.perf_counter() - started < 5.0
