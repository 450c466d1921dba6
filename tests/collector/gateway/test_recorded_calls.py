"""What the store keeps of agent calls: tool calls, tools offered, every choice, route, media."""

from __future__ import annotations

import base64
import hashlib
import json

import httpx
import openai

from llmscope.config import Settings
from tests.collector.gateway.conftest import CONFIG, StartGateway, wait_for_records
from tests.collector.gateway.fake_provider import FakeProvider
from tests.collector.otlp.spans import export_request, make_span

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
ASK = [{"role": "user", "content": "Weather in Paris?"}]
ARGS = json.dumps({"query": "Weather in Paris?"})
EXTRA = """
  - name: keeps-media
    endpoint_type: llm/v1/chat
    log_media: true
    model: {{provider: offline, name: support-bot, config: {{latency_ms: 0}}}}
routes:
  - name: assistant
    task_type: llm/v1/chat
    destinations: [{{name: chat, traffic_percentage: 100}}]
"""


def test_tool_calls_choices_and_route_are_recorded(
    settings: Settings, fake: tuple[FakeProvider, str], start_gateway: StartGateway
) -> None:
    _, fake_url = fake
    config = CONFIG.format(fake=fake_url).replace("prompts:", EXTRA.format() + "prompts:", 1)
    gw = start_gateway(settings, config)
    client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key="unused", max_retries=0)
    ids = []
    for model, stream in (("chat", False), ("chat", True), ("claude", True), ("quiet", False)):
        raw = client.chat.completions.with_raw_response.create(
            model=model, messages=ASK, tools=[WEATHER], stream=stream
        )
        if stream:
            for _ in raw.parse():
                pass
        ids.append(raw.headers["x-llmscope-record-id"])
    several = client.chat.completions.with_raw_response.create(model="assistant", messages=ASK, n=2)
    ids.append(several.headers["x-llmscope-record-id"])

    records = {r.id: r for r in wait_for_records(gw.engine, 5)}
    whole, streamed, claude, quiet, two = (records[i] for i in ids)
    for record in (whole, streamed):
        assert record.tool_calls == [{"id": "call_fake1", "name": "get_weather", "arguments": ARGS}]
        assert record.tools == ["get_weather"] and record.response is None
        assert record.status == "ok" and record.choices is None
    assert streamed.ttft_ms is not None
    assert claude.tool_calls == [{"id": "toolu_fake1", "name": "get_weather", "arguments": ARGS}]
    assert claude.response == "Let me look."
    # log_content: false keeps which tool was called, not its arguments
    assert quiet.tool_calls == [{"id": "call_fake1", "name": "get_weather", "arguments": None}]
    assert quiet.messages is None

    assert two.route == "assistant" and two.endpoint == "chat"
    assert two.response == "Echo: Weather in Paris?"
    assert two.choices == [
        {"index": 0, "text": "Echo: Weather in Paris?", "finish_reason": "stop"},
        {"index": 1, "text": "Echo: Weather in Paris? (take 2)", "finish_reason": "stop"},
    ]
    assert whole.route is None
    # the provider's id of each answer, by which an evaluation sent apart finds the call
    assert [r.response_id for r in (whole, streamed, claude, two)] == [
        "chatcmpl-tool1", "chatcmpl-tool1", "msg_tool1", "chatcmpl-fake1"
    ]  # fmt: skip
    judged = make_span(
        {"gen_ai.operation.name": "evaluate"},
        events=[
            (
                "gen_ai.evaluation.result",
                {"gen_ai.evaluation.name": "tone", "gen_ai.evaluation.score.label": "pass",
                 "gen_ai.response.id": "chatcmpl-fake1"},
            )
        ],
    )  # fmt: skip
    answer = httpx.post(
        f"{gw.url}/v1/traces",
        content=export_request([judged]).SerializeToString(),
        headers={"content-type": "application/x-protobuf"},
    )
    assert answer.status_code == 200
    api = httpx.get(f"{gw.url}/api/v1/records/{two.id}").json()
    assert [(e["evaluator"], e["passed"]) for e in api["evaluations"]] == [("tone", True)]

    api = httpx.get(f"{gw.url}/api/v1/records/{two.id}").json()
    assert api["route"] == "assistant" and len(api["choices"]) == 2
    api = httpx.get(f"{gw.url}/api/v1/records/{whole.id}").json()
    assert api["tool_calls"][0]["name"] == "get_weather" and api["tools"] == ["get_weather"]

    # the same fields through the ingest API, and a malformed one refused naming it
    sent = {
        "id": "agent-1",
        "messages": ASK,
        "tool_calls": [{"id": "c1", "name": "get_weather", "arguments": '{"city": "Paris"}'}],
        "tools": ["get_weather", "search"],
        "route": "assistant",
    }
    assert httpx.post(f"{gw.url}/api/v1/records", json=sent).status_code == 201
    stored = httpx.get(f"{gw.url}/api/v1/records/agent-1").json()
    assert stored["tool_calls"] == sent["tool_calls"] and stored["tools"] == sent["tools"]
    assert stored["route"] == "assistant"
    bad = httpx.post(f"{gw.url}/api/v1/records", json={"tool_calls": [{"arguments": "{}"}]})
    assert bad.status_code == 422 and "tool_calls" in bad.text


def test_inline_images_are_stored_as_references(
    sqlite_settings: Settings, fake: tuple[FakeProvider, str], start_gateway: StartGateway
) -> None:
    _, fake_url = fake
    config = CONFIG.format(fake=fake_url).replace("prompts:", EXTRA.format() + "prompts:", 1)
    gw = start_gateway(sqlite_settings, config)
    image = bytes(range(256)) * 4096  # 1 MiB
    data_url = "data:image/png;base64," + base64.b64encode(image).decode()
    content = [
        {"type": "text", "text": "What is in this picture?"},
        {"type": "image_url", "image_url": {"url": data_url}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
    ]
    ids = []
    for model in ("demo", "keeps-media"):
        answer = httpx.post(
            f"{gw.url}/v1/chat/completions",
            json={"model": model, "messages": [{"role": "user", "content": content}]},
            timeout=30,
        )
        assert answer.status_code == 200
        ids.append(answer.headers["x-llmscope-record-id"])
    records = {r.id: r for r in wait_for_records(gw.engine, 2)}
    referenced, kept = records[ids[0]], records[ids[1]]
    assert referenced.messages is not None
    assert referenced.messages[0]["content"] == [
        {"type": "text", "text": "What is in this picture?"},
        {
            "type": "image",
            "media_type": "image/png",
            "bytes": len(image),
            "sha256": hashlib.sha256(image).hexdigest(),
        },
        {"type": "image", "url": "https://example.com/cat.png"},
    ]
    assert len(json.dumps(referenced.messages)) < 1000  # bounded: 1 MiB image, < 1 kB kept
    assert kept.messages is not None
    assert kept.messages[0]["content"][1]["image_url"]["url"] == data_url
