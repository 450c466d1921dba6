"""A call the app traces itself and sends through the gateway is one record.

The app: the official ``openai`` client pointed at the gateway, traced by OpenTelemetry's
``opentelemetry-instrumentation-openai-v2`` exporting to the same collector, with W3C trace
context propagated on its HTTP requests (``traceparent``). The gateway records the call inside
the app's trace, under the app's span; the app's span arrives over OTLP; the two are one call:
the gateway's record (provider-level) survives, the app's span is its link, and ``/metrics``
counts the call once.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import openai
import pytest
from opentelemetry import propagate
from sqlalchemy import select
from sqlalchemy.orm import Session

from llmscope.config import Settings
from llmscope.db.models import Record, analysable
from llmscope.sdk import configure_tracing
from tests.collector.gateway.conftest import CONFIG, StartGateway, wait_for_records
from tests.collector.gateway.fake_provider import FakeProvider
from tests.collector.test_metrics import scrape, total


def _inject(request: httpx.Request) -> None:
    """What an app's HTTP instrumentation does: the current span's context on the request."""
    propagate.inject(request.headers)


def test_a_traced_app_call_through_the_gateway_is_one_record(
    settings: Settings,
    fake: tuple[FakeProvider, str],
    start_gateway: StartGateway,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "SPAN_ONLY")
    provider, fake_url = fake
    gw = start_gateway(settings, CONFIG.format(fake=fake_url))
    tracer_provider = configure_tracing(gw.url, service_name="support-app", set_global=False)
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider)
    try:
        client = openai.OpenAI(
            base_url=f"{gw.url}/v1",
            api_key="client-side-key",
            max_retries=0,
            http_client=httpx.Client(event_hooks={"request": [_inject]}),
        )
        raw = client.chat.completions.with_raw_response.create(
            model="chat",
            messages=[{"role": "user", "content": "How do I reset my password?"}],
            extra_headers={"X-LLMScope-User-Id": "u-42"},
        )
        gateway_id = raw.headers["x-llmscope-record-id"]
        # the gateway's record is stored before the app exports its span (the usual order;
        # the other one is tested in tests/collector/test_nesting.py)
        wait_for_records(gw.engine, 1)
    finally:
        instrumentor.uninstrument()
    assert tracer_provider.force_flush(20_000)
    tracer_provider.shutdown()

    records = {r.id: r for r in wait_for_records(gw.engine, 2)}
    app = next(r for r in records.values() if r.source == "otlp")
    call = records[gateway_id]
    assert call.source == "gateway" and call.trace_id == app.trace_id
    assert call.parent_span_id == app.span_id  # the gateway's call ran under the app's span
    assert call.links == [app.id] and call.merged_into is None
    assert app.merged_into == gateway_id
    assert call.user_id == "u-42" and call.provider == "openai"
    with Session(gw.engine) as session:
        assert session.scalars(select(Record.id).where(analysable())).all() == [gateway_id]

    listed = httpx.get(f"{gw.url}/api/v1/records", timeout=10).json()["records"]
    assert [r["id"] for r in listed] == [gateway_id]
    one = httpx.get(f"{gw.url}/api/v1/records/{gateway_id}", timeout=10).json()
    assert one["links"] == [app.id]

    samples = scrape(gw.url)
    assert total(samples, "llmscope_calls_total") == 1
    assert total(samples, "llmscope_calls_total", source="gateway", endpoint="chat") == 1
    assert total(samples, "llmscope_tokens_total", direction="input") == call.input_tokens

    # feedback the app gives by its own span id lands on the one record
    answer = httpx.post(
        f"{gw.url}/api/v1/records/{app.span_id}/feedback", json={"value": "down"}, timeout=10
    )
    assert answer.status_code == 201, answer.text
    assert httpx.get(f"{gw.url}/api/v1/records/{gateway_id}", timeout=10).json()["feedback"]


@pytest.mark.parametrize(
    "traceparent",
    [
        "not-a-traceparent",
        "00-" + "0" * 32 + "-" + "1" * 16 + "-01",  # the all-zero trace id is invalid
        "ff-" + "a" * 32 + "-" + "1" * 16 + "-01",  # version ff is invalid
        "00-" + "a" * 32 + "-" + "1" * 16 + "-01-extra",  # version 00 has no more fields
    ],
)
def test_a_malformed_traceparent_is_ignored(
    sqlite_settings: Settings,
    fake: tuple[FakeProvider, str],
    start_gateway: StartGateway,
    traceparent: str,
) -> None:
    _, fake_url = fake
    gw = start_gateway(sqlite_settings, CONFIG.format(fake=fake_url))
    answer = httpx.post(
        f"{gw.url}/v1/chat/completions",
        json={"model": "chat", "messages": [{"role": "user", "content": "Hi"}]},
        headers={"traceparent": traceparent},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    (record,) = wait_for_records(gw.engine, 1)
    assert (record.trace_id, record.span_id, record.parent_span_id) == (None, None, None)


def test_a_traced_call_is_counted_once_stored(
    sqlite_settings: Settings, fake: tuple[FakeProvider, str], start_gateway: StartGateway
) -> None:
    """Without the app's span, a call with a ``traceparent`` is still counted: once stored."""
    _, fake_url = fake
    gw = start_gateway(sqlite_settings, CONFIG.format(fake=fake_url))
    body: dict[str, Any] = {"model": "chat", "messages": [{"role": "user", "content": "Hi"}]}
    trace, parent = "c" * 32, "d" * 16
    answer = httpx.post(
        f"{gw.url}/v1/chat/completions",
        json=body,
        headers={"traceparent": f"00-{trace}-{parent}-01"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    (record,) = wait_for_records(gw.engine, 1)
    assert (record.trace_id, record.parent_span_id) == (trace, parent)
    assert record.span_id and len(record.span_id) == 16 and record.span_id != parent
    deadline = time.monotonic() + 5
    while total(scrape(gw.url), "llmscope_calls_total") < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert total(scrape(gw.url), "llmscope_calls_total") == 1
