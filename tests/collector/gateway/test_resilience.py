"""Limits, provider errors, retries, secrets and hot reload of the gateway."""

from __future__ import annotations

import logging
import time

import httpx
import openai
import pytest
from sqlalchemy import text

from llmscope.config import Settings
from tests.collector.gateway.conftest import CONFIG, StartGateway, wait_for_records
from tests.collector.gateway.fake_provider import ANTHROPIC_KEY, OPENAI_KEY, FakeProvider
from tests.conftest import free_port

CHAT = {"messages": [{"role": "user", "content": "hello"}]}


def test_rate_limit_answers_429_with_retry_after(
    sqlite_settings: Settings, fake: tuple[FakeProvider, str], start_gateway: StartGateway
) -> None:
    _, fake_url = fake
    gw = start_gateway(sqlite_settings, CONFIG.format(fake=fake_url))
    url = f"{gw.url}/endpoints/limited/invocations"
    statuses = [httpx.post(url, json=CHAT).status_code for _ in range(2)]
    refused = httpx.post(url, json=CHAT)
    assert statuses == [200, 200]
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert "rate limit" in refused.json()["detail"]
    other = httpx.post(f"{gw.url}/endpoints/demo/invocations", json=CHAT)
    assert other.status_code == 200  # limits are per endpoint
    records = wait_for_records(gw.engine, 4)
    refused_record = next(r for r in records if r.id == refused.headers["x-llmscope-record-id"])
    assert refused_record.status == "error" and "rate limit" in (refused_record.error or "")


@pytest.mark.slow
def test_provider_error_passes_through_and_is_recorded(
    settings: Settings, fake: tuple[FakeProvider, str], start_gateway: StartGateway
) -> None:
    provider, fake_url = fake
    gw = start_gateway(settings, CONFIG.format(fake=fake_url))
    error = {
        "error": {
            "message": "This model's maximum context length is 8 tokens",
            "type": "invalid_request_error",
            "code": "context_length_exceeded",
        }
    }
    provider.fail_next(400, error)
    client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key="x", max_retries=0)
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 400
    assert caught.value.body == error["error"]  # the provider's own body, untouched
    assert len(provider.requests) == 1  # a 400 is not retried

    provider.fail_next(404, {"error": {"message": "no such model"}})
    mlflow_style = httpx.post(f"{gw.url}/endpoints/chat/invocations", json=CHAT)
    assert mlflow_style.status_code == 404
    assert mlflow_style.json()["detail"] == {"error": {"message": "no such model"}}

    first, second = wait_for_records(gw.engine, 2)
    assert first.status == "error" and "maximum context length" in (first.error or "")
    assert second.status == "error" and "no such model" in (second.error or "")
    assert first.id == caught.value.response.headers["x-llmscope-record-id"]


def test_retries_on_429_and_5xx_honouring_retry_after(
    sqlite_settings: Settings, fake: tuple[FakeProvider, str], start_gateway: StartGateway
) -> None:
    provider, fake_url = fake
    gw = start_gateway(sqlite_settings, CONFIG.format(fake=fake_url))
    provider.fail_next(429, {"error": {"message": "slow down"}}, {"Retry-After": "0.3"})
    provider.fail_next(503, {"error": {"message": "overloaded"}}, {"Retry-After": "0"})
    started = time.monotonic()
    answer = httpx.post(f"{gw.url}/endpoints/chat/invocations", json=CHAT)
    assert answer.status_code == 200
    assert time.monotonic() - started >= 0.3  # waited as the provider asked
    assert len(provider.requests) == 3

    provider.fail_next(502, {"error": {"message": "bad gateway"}}, {"Retry-After": "0"}, times=3)
    failed = httpx.post(f"{gw.url}/endpoints/chat/invocations", json=CHAT)
    assert failed.status_code == 502  # after max_retries (2), the last error reaches the client
    assert len(provider.requests) == 6
    (ok, error) = wait_for_records(gw.engine, 2)
    assert ok.status == "ok" and error.status == "error"


def test_secrets_never_returned_logged_or_stored(
    settings: Settings,
    fake: tuple[FakeProvider, str],
    start_gateway: StartGateway,
    caplog: pytest.LogCaptureFixture,
) -> None:
    provider, fake_url = fake
    caplog.set_level(logging.DEBUG)
    gw = start_gateway(settings, CONFIG.format(fake=fake_url))
    # A provider that echoes the key it got (some do, in 401 messages).
    provider.fail_next(401, {"error": {"message": f"Incorrect API key provided: {OPENAI_KEY}"}})
    echoed = httpx.post(f"{gw.url}/v1/chat/completions", json={"model": "chat", **CHAT})
    provider.fail_next(401, {"error": {"message": f"invalid x-api-key {ANTHROPIC_KEY}"}})
    echoed_anthropic = httpx.post(f"{gw.url}/endpoints/claude/invocations", json=CHAT)
    answers = [
        echoed,
        echoed_anthropic,
        httpx.post(f"{gw.url}/endpoints/chat/invocations", json=CHAT),
        httpx.get(f"{gw.url}/api/2.0/endpoints/"),
        httpx.get(f"{gw.url}/api/2.0/gateway/routes/"),
        httpx.get(f"{gw.url}/openapi.json"),
    ]
    assert echoed.status_code == 401 and "[REDACTED]" in echoed.text
    assert echoed_anthropic.status_code == 401
    wait_for_records(gw.engine, 3)
    with gw.engine.connect() as conn:
        stored = "\n".join(str(tuple(row)) for row in conn.execute(text("SELECT * FROM records")))
    everything = stored + "".join(a.text + str(a.headers) for a in answers) + caplog.text
    for secret in (OPENAI_KEY, ANTHROPIC_KEY):
        assert secret not in everything
        assert secret[8:] not in everything


def test_hot_reload_applies_valid_changes_and_keeps_old_on_invalid(
    sqlite_settings: Settings,
    fake: tuple[FakeProvider, str],
    start_gateway: StartGateway,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _, fake_url = fake
    config = CONFIG.format(fake=fake_url)
    gw = start_gateway(sqlite_settings, config)
    url = f"{gw.url}/endpoints/support-v2/invocations"
    assert httpx.post(url, json=CHAT).status_code == 404

    def wait_until(check: object, timeout: float = 5) -> None:
        deadline = time.monotonic() + timeout
        while not check() and time.monotonic() < deadline:  # type: ignore[operator]
            time.sleep(0.05)

    added = config.replace("  - name: quiet\n", "  - name: support-v2\n", 1)
    # Calls keep flowing while the file changes: none may fail.
    statuses: list[int] = []
    with httpx.Client() as client:
        gw.config_path.write_text(added)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            statuses.append(
                client.post(f"{gw.url}/endpoints/demo/invocations", json=CHAT).status_code
            )
            if client.get(f"{gw.url}/api/2.0/endpoints/support-v2").status_code == 200:
                break
    assert set(statuses) == {200}
    assert httpx.post(url, json=CHAT).status_code == 200

    caplog.set_level(logging.INFO, logger="llmscope.gateway")
    broken = added.replace("endpoint_type: llm/v1/embeddings", "endpoint_type: llm/v9/nonsense")
    gw.config_path.write_text(broken)
    # The watcher may first see the file half-written (ignored too); wait for the whole one.
    wait_until(lambda: "endpoint 'embeddings': endpoint_type:" in caplog.text)
    assert "config change ignored" in caplog.text
    assert "endpoint 'embeddings': endpoint_type:" in caplog.text
    assert httpx.post(url, json=CHAT).status_code == 200  # the old config still serves
    assert httpx.get(f"{gw.url}/api/2.0/endpoints/embeddings").status_code == 200


UNREACHABLE = """
endpoints:
  - name: gone
    endpoint_type: llm/v1/chat
    max_retries: 1
    model:
      provider: openai
      name: gpt-4o-mini
      config: {{openai_api_key: sk-unreachable-test-key-000000, openai_api_base: "{base}/v1"}}
  - name: slow
    endpoint_type: llm/v1/chat
    timeout_seconds: 0.5
    max_retries: 0
    model:
      provider: openai
      name: gpt-4o-mini
      config: {{openai_api_key: $FAKE_OPENAI_KEY, openai_api_base: "{fake}/v1"}}
"""


@pytest.mark.slow
def test_unreachable_and_stalled_providers_are_502_and_504_and_recorded(
    sqlite_settings: Settings, fake: tuple[FakeProvider, str], start_gateway: StartGateway
) -> None:
    provider, fake_url = fake
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    gw = start_gateway(sqlite_settings, UNREACHABLE.format(base=closed, fake=fake_url))

    gone = httpx.post(f"{gw.url}/endpoints/gone/invocations", json=CHAT, timeout=30)
    assert gone.status_code == 502
    assert "unreachable" in gone.text and "sk-unreachable" not in gone.text

    provider.delay = 3.0  # longer than the endpoint's 0.5 s timeout
    started = time.monotonic()
    slow = httpx.post(f"{gw.url}/endpoints/slow/invocations", json=CHAT, timeout=30)
    provider.delay = 0.0
    assert slow.status_code == 504
    assert time.monotonic() - started < 2.5  # the gateway gave up; it did not wait it out

    records = {r.id: r for r in wait_for_records(gw.engine, 2)}
    for answer in (gone, slow):
        stored = records[answer.headers["x-llmscope-record-id"]]
        assert stored.status == "error" and "unreachable" in (stored.error or "")
        assert "sk-unreachable" not in (stored.error or "")
