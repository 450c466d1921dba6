"""MLflow clients: the HTTP calls ``mlflow.deployments`` makes, answered with MLflow's JSON.

``MLflowDeploymentClient`` does ``GET /api/2.0/endpoints/`` (``page_token`` as a query
parameter), ``GET /api/2.0/endpoints/{name}`` and ``POST /endpoints/{name}/invocations`` with
the inputs as the JSON body; the old gateway client used ``/api/2.0/gateway/routes/`` and
``/gateway/{name}/invocations``.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from llmscope.config import Settings
from tests.collector.gateway.conftest import CONFIG, StartGateway, wait_for_records
from tests.collector.gateway.fake_provider import FakeProvider


def test_list_and_get_endpoints_field_by_field(
    sqlite_settings: Settings, fake: tuple[FakeProvider, str], start_gateway: StartGateway
) -> None:
    _, fake_url = fake
    gw = start_gateway(sqlite_settings, CONFIG.format(fake=fake_url))
    listed = httpx.get(f"{gw.url}/api/2.0/endpoints/")
    assert listed.status_code == 200
    body = listed.json()
    assert set(body) == {"endpoints", "next_page_token"} and body["next_page_token"] is None
    names = [e["name"] for e in body["endpoints"]]
    assert names == [
        "chat", "completions", "embeddings", "claude", "claude-completions", "demo", "quiet",
        "limited",
    ]  # fmt: skip
    chat = httpx.get(f"{gw.url}/api/2.0/endpoints/chat").json()
    assert chat == {
        "name": "chat",
        "endpoint_type": "llm/v1/chat",
        "model": {"name": "gpt-4o-mini", "provider": "openai"},
        "endpoint_url": "/endpoints/chat/invocations",
        "limit": None,
    }
    assert body["endpoints"][0] == chat
    limited = httpx.get(f"{gw.url}/api/2.0/endpoints/limited").json()
    assert limited["limit"] == {"calls": 2, "renewal_period": "minute", "key": None}
    missing = httpx.get(f"{gw.url}/api/2.0/endpoints/nope")
    assert missing.status_code == 404 and "nope" in missing.json()["detail"]

    routes = httpx.get(f"{gw.url}/api/2.0/gateway/routes/").json()["routes"]
    assert routes[1] == {
        "name": "completions",
        "route_type": "llm/v1/completions",
        "model": {"name": "gpt-3.5-turbo-instruct", "provider": "openai"},
        "route_url": "/gateway/completions/invocations",
        "limit": None,
    }
    assert (
        httpx.get(f"{gw.url}/api/2.0/gateway/routes/claude").json()["route_type"] == "llm/v1/chat"
    )


def test_invocations_answer_mlflow_unified_schema(
    settings: Settings, fake: tuple[FakeProvider, str], start_gateway: StartGateway
) -> None:
    _, fake_url = fake
    gw = start_gateway(settings, CONFIG.format(fake=fake_url))
    chat = httpx.post(
        f"{gw.url}/endpoints/chat/invocations",
        json={"messages": [{"role": "user", "content": "Hello"}], "temperature": 0.2},
    )
    assert chat.status_code == 200 and chat.headers["x-llmscope-record-id"]
    body = chat.json()
    # MLflow's server names the provider that answered a chat call
    assert set(body) == {"id", "object", "created", "model", "choices", "usage", "provider"}
    assert (body["id"], body["object"], body["created"], body["model"], body["provider"]) == (
        "chatcmpl-fake1",
        "chat.completion",
        1700000000,
        "gpt-4o-mini",
        "openai",
    )
    assert body["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Echo: Hello"},
            "finish_reason": "stop",
        }
    ]
    assert body["usage"] == {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}

    completion = httpx.post(
        f"{gw.url}/endpoints/completions/invocations", json={"prompt": "Hi you"}
    )
    body = completion.json()
    assert set(body) == {"id", "object", "created", "model", "choices", "usage"}
    assert body["object"] == "text_completion"
    assert body["choices"] == [{"index": 0, "text": "Echo: Hi you", "finish_reason": "stop"}]
    assert body["usage"] == {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}

    vectors = httpx.post(f"{gw.url}/endpoints/embeddings/invocations", json={"input": "abc"}).json()
    assert vectors == {
        "object": "list",
        "data": [{"object": "embedding", "embedding": [3.0, 0.5, -0.25], "index": 0}],
        "model": "text-embedding-3-small",
        "usage": {"prompt_tokens": 1, "total_tokens": 1},
    }

    legacy = httpx.post(
        f"{gw.url}/gateway/claude/invocations",
        json={"messages": [{"role": "user", "content": "Yo"}]},
    )
    assert legacy.status_code == 200
    assert legacy.json()["choices"][0]["message"]["content"] == "Echo: Yo"

    records = wait_for_records(gw.engine, 4)
    ids = {r.id for r in records}
    assert chat.headers["x-llmscope-record-id"] in ids
    assert legacy.headers["x-llmscope-record-id"] in ids
    assert {r.endpoint for r in records} == {"chat", "completions", "embeddings", "claude"}


def test_streaming_invocation_sends_sse(
    sqlite_settings: Settings, fake: tuple[FakeProvider, str], start_gateway: StartGateway
) -> None:
    _, fake_url = fake
    gw = start_gateway(sqlite_settings, CONFIG.format(fake=fake_url))
    payload = {"messages": [{"role": "user", "content": "one two"}], "stream": True}
    with httpx.stream("POST", f"{gw.url}/endpoints/chat/invocations", json=payload) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line.startswith("data:")]
    assert lines[-1] == "data: [DONE]"
    assert len(lines) == 5  # three words, the usage chunk (as MLflow relays it) and [DONE]
    (record,) = wait_for_records(gw.engine, 1)
    assert record.response == "Echo: one two"


def test_mlflow_stream_clients_get_the_usage_chunk_and_the_provider(
    sqlite_settings: Settings, fake: tuple[FakeProvider, str], start_gateway: StartGateway
) -> None:
    """MLflow's server relays the provider's usage-only chunk (``choices: []``) and names the
    provider on every chat chunk; the OpenAI path stays OpenAI's (usage only when asked)."""
    _, fake_url = fake
    gw = start_gateway(sqlite_settings, CONFIG.format(fake=fake_url))
    inputs = {"messages": [{"role": "user", "content": "one two"}]}

    def chunks(path: str, payload: dict[str, Any]) -> list[dict[str, Any]]:
        with httpx.stream("POST", f"{gw.url}{path}", json={**payload, "stream": True}) as answer:
            data = [line[6:] for line in answer.iter_lines() if line.startswith("data: ")]
        assert data[-1] == "[DONE]"
        return [json.loads(d) for d in data[:-1]]

    mlflow_chunks = chunks("/endpoints/chat/invocations", inputs)
    assert all(c["provider"] == "openai" for c in mlflow_chunks)
    assert mlflow_chunks[-1]["choices"] == []
    assert mlflow_chunks[-1]["usage"]["total_tokens"] == 5
    texts = [c["choices"][0]["delta"].get("content") or "" for c in mlflow_chunks[:-1]]
    assert "".join(texts) == "Echo: one two"

    sent = chunks("/v1/chat/completions", {"model": "chat", **inputs})
    assert sent and all(c["choices"] and "provider" not in c for c in sent)


def test_embeddings_without_input_is_a_422_before_any_call(
    sqlite_settings: Settings, fake: tuple[FakeProvider, str], start_gateway: StartGateway
) -> None:
    provider, fake_url = fake
    gw = start_gateway(sqlite_settings, CONFIG.format(fake=fake_url))
    for body in ({"text": ["abc", "def"]}, {}):
        answer = httpx.post(f"{gw.url}/endpoints/embeddings/invocations", json=body)
        assert answer.status_code == 422, answer.text
        assert answer.json()["detail"][0]["loc"] == ["body", "input"]
        assert answer.json()["message"] == "input: Field required"
    assert provider.requests == []
    completion = httpx.post(f"{gw.url}/endpoints/completions/invocations", json={"prompt": "Hi"})
    assert "provider" not in completion.json()  # MLflow names it on chat answers only


def test_offline_provider_is_deterministic_varied_and_says_offline(
    settings: Settings, fake: tuple[FakeProvider, str], start_gateway: StartGateway
) -> None:
    _, fake_url = fake
    gw = start_gateway(settings, CONFIG.format(fake=fake_url))

    def ask(question: str) -> httpx.Response:
        return httpx.post(
            f"{gw.url}/endpoints/demo/invocations",
            json={"messages": [{"role": "user", "content": question}]},
        )

    first = ask("How do I reset my password?").json()
    again = ask("How do I reset my password?").json()
    billing = ask("Why was my card charged twice this month?").json()
    text = first["choices"][0]["message"]["content"]
    assert text == again["choices"][0]["message"]["content"]
    assert "password" in text.lower()
    billing_text = billing["choices"][0]["message"]["content"]
    assert billing_text != text and (
        "charge" in billing_text.lower() or "refund" in billing_text.lower()
    )
    assert first["usage"]["prompt_tokens"] == 8 and first["usage"]["completion_tokens"] > 10

    records = wait_for_records(gw.engine, 3)
    assert all(r.provider == "offline" and r.model == "support-bot" for r in records)
    assert all(r.tags == {"llmscope.offline": "true"} for r in records)
    assert all(r.response and r.output_tokens and r.output_tokens > 10 for r in records)


def test_log_content_false_stores_metadata_only(
    settings: Settings, fake: tuple[FakeProvider, str], start_gateway: StartGateway
) -> None:
    _, fake_url = fake
    gw = start_gateway(settings, CONFIG.format(fake=fake_url))
    answer = httpx.post(
        f"{gw.url}/endpoints/quiet/invocations",
        json={
            "messages": [{"role": "user", "content": "my card is 4111 1111 1111 1111"}],
            "llmscope": {
                "template": "support",
                "variables": {"question": "card"},
                "tags": {"k": "v"},
            },
        },
    )
    assert answer.json()["choices"][0]["message"]["content"].startswith("Echo: my card")
    (record,) = wait_for_records(gw.engine, 1)
    assert (record.prompt, record.messages, record.response) == (None, None, None)
    assert (record.template_text, record.template_variables) == (None, None)
    assert (record.template_name, record.template_version) == ("support", "2")
    assert (record.input_tokens, record.output_tokens, record.tags) == (7, 8, {"k": "v"})
    assert record.status == "ok" and record.latency_ms is not None
