"""The ``timestamp`` extension: replayed or backfilled calls keep the time they happened."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import openai
import pytest

from llmscope.config import Settings
from tests.collector.gateway.conftest import CONFIG, StartGateway, wait_for_records
from tests.collector.gateway.fake_provider import FakeProvider


def client_for(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key="client-side-key", max_retries=0)


def test_timestamp_from_body_or_header_becomes_the_record_time(
    settings: Settings, fake: tuple[FakeProvider, str], start_gateway: StartGateway
) -> None:
    _, fake_url = fake
    gw = start_gateway(settings, CONFIG.format(fake=fake_url))
    client = client_for(gw.url)
    question = [{"role": "user", "content": "Where is my parcel?"}]
    before = datetime.now(UTC)
    ids = [
        client.chat.completions.with_raw_response.create(
            model="demo",
            messages=question,
            extra_body={"llmscope": {"timestamp": "2026-03-02T09:15:00+02:00"}},
        ).headers["x-llmscope-record-id"],
        client.chat.completions.with_raw_response.create(
            model="demo",
            messages=question,
            extra_headers={"X-LLMScope-Timestamp": "2026-03-01T23:59:30Z"},
        ).headers["x-llmscope-record-id"],
        # The body wins over the header.
        client.chat.completions.with_raw_response.create(
            model="demo",
            messages=question,
            extra_body={"llmscope": {"timestamp": "2026-02-28T12:00:00Z"}},
            extra_headers={"X-LLMScope-Timestamp": "2026-03-05T12:00:00Z"},
        ).headers["x-llmscope-record-id"],
        # Without one, the record is stamped now.
        client.chat.completions.with_raw_response.create(model="demo", messages=question).headers[
            "x-llmscope-record-id"
        ],
    ]
    stamps = {r.id: r.timestamp for r in wait_for_records(gw.engine, 4)}
    assert stamps[ids[0]] == datetime(2026, 3, 2, 7, 15, tzinfo=UTC)
    assert stamps[ids[1]] == datetime(2026, 3, 1, 23, 59, 30, tzinfo=UTC)
    assert stamps[ids[2]] == datetime(2026, 2, 28, 12, tzinfo=UTC)
    assert before - timedelta(seconds=1) <= stamps[ids[3]] <= datetime.now(UTC)


@pytest.mark.parametrize(
    ("body", "headers", "message"),
    [
        ({"timestamp": "last tuesday"}, {}, "llmscope.timestamp: not an RFC 3339 timestamp"),
        ({"timestamp": 1767225600}, {}, "llmscope.timestamp: not an RFC 3339 timestamp"),
        ({}, {"X-LLMScope-Timestamp": "2026-13-01T00:00:00Z"}, "X-LLMScope-Timestamp: not an"),
    ],
)
def test_unparsable_timestamp_is_400_naming_the_field_and_nothing_reaches_the_provider(
    sqlite_settings: Settings,
    fake: tuple[FakeProvider, str],
    start_gateway: StartGateway,
    body: dict[str, object],
    headers: dict[str, str],
    message: str,
) -> None:
    provider, fake_url = fake
    gw = start_gateway(sqlite_settings, CONFIG.format(fake=fake_url))
    with pytest.raises(openai.BadRequestError, match=message):
        client_for(gw.url).chat.completions.create(
            model="chat",
            messages=[{"role": "user", "content": "x"}],
            extra_body={"llmscope": body},
            extra_headers=headers,
        )
    assert provider.requests == []
