"""The official ``openai`` client's Responses API and model list against the gateway.

``chat`` (provider ``openai``) gets the Responses request as it came; ``claude`` and ``demo``
have no Responses API, so the gateway translates to their chat API and back.
"""

from __future__ import annotations

import json

import openai
import pytest

from llmscope.config import Settings
from tests.collector.gateway.conftest import CONFIG, StartGateway, wait_for_records
from tests.collector.gateway.fake_provider import FakeProvider

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def client_for(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)


def test_models_list_and_retrieve(
    sqlite_settings: Settings, fake: tuple[FakeProvider, str], start_gateway: StartGateway
) -> None:
    _, fake_url = fake
    gw = start_gateway(sqlite_settings, CONFIG.format(fake=fake_url))
    client = client_for(gw.url)
    models = list(client.models.list())
    assert [m.id for m in models] == [
        "chat", "completions", "embeddings", "claude", "claude-completions", "demo", "quiet",
        "limited",
    ]  # fmt: skip
    assert all(m.object == "model" and m.created > 0 for m in models)
    claude = client.models.retrieve("claude")
    assert (claude.id, claude.owned_by) == ("claude", "anthropic")
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        client.models.retrieve("nope")


@pytest.mark.parametrize("endpoint", ["chat", "claude", "demo"])
def test_responses_plain_and_streamed(
    endpoint: str,
    settings: Settings,
    fake: tuple[FakeProvider, str],
    start_gateway: StartGateway,
) -> None:
    provider, fake_url = fake
    gw = start_gateway(settings, CONFIG.format(fake=fake_url))
    client = client_for(gw.url)
    answer = client.responses.create(
        model=endpoint, input="How do I reset my password?", instructions="Be brief."
    )
    assert answer.status == "completed" and answer.object == "response"
    text = answer.output_text
    if endpoint != "demo":
        assert text == "Echo: How do I reset my password?"
    else:
        assert "password" in text.lower()
    assert answer.usage is not None and answer.usage.output_tokens > 0

    kinds: list[str] = []
    deltas: list[str] = []
    final = None
    with client.responses.stream(
        model=endpoint,
        input=[{"role": "user", "content": [{"type": "input_text", "text": "Where is my order"}]}],
    ) as stream:
        for event in stream:
            kinds.append(event.type)
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
        final = stream.get_final_response()
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert "".join(deltas).strip() == final.output_text.strip()
    assert final.output_text.strip()

    if endpoint == "claude":
        sent = [r["body"] for r in provider.requests if "anthropic" in r["path"]][0]
        assert sent["system"] == "Be brief."
    elif endpoint == "chat":
        sent = [r["body"] for r in provider.requests if r["path"] == "/v1/responses"][0]
        assert sent["instructions"] == "Be brief." and sent["model"] == "gpt-4o-mini"
    records = wait_for_records(gw.engine, 2)
    assert all(r.endpoint == endpoint and r.status == "ok" for r in records)
    assert records[0].response == text
    assert records[0].messages is not None and records[0].messages[0] == {
        "role": "system",
        "content": "Be brief.",
    }
    assert (records[1].response or "").strip() == final.output_text.strip()
    assert records[1].ttft_ms is not None


@pytest.mark.parametrize("endpoint", ["chat", "claude"])
def test_responses_function_tools(
    endpoint: str,
    sqlite_settings: Settings,
    fake: tuple[FakeProvider, str],
    start_gateway: StartGateway,
) -> None:
    _, fake_url = fake
    gw = start_gateway(sqlite_settings, CONFIG.format(fake=fake_url))
    client = client_for(gw.url)
    answer = client.responses.create(model=endpoint, input="Weather in Paris?", tools=[WEATHER])
    calls = [item for item in answer.output if item.type == "function_call"]
    assert [c.name for c in calls] == ["get_weather"]
    assert json.loads(calls[0].arguments) == {"query": "Weather in Paris?"}

    with client.responses.stream(
        model=endpoint, input="Weather in Lyon?", tools=[WEATHER]
    ) as stream:
        final = stream.get_final_response()
    streamed = [item for item in final.output if item.type == "function_call"]
    assert [c.name for c in streamed] == ["get_weather"]
    assert json.loads(streamed[0].arguments) == {"query": "Weather in Lyon?"}

    # the tool's result goes back as a function_call_output item
    follow = client.responses.create(
        model=endpoint,
        input=[
            {"role": "user", "content": "Weather in Paris?"},
            {
                "type": "function_call",
                "call_id": calls[0].call_id,
                "name": "get_weather",
                "arguments": calls[0].arguments,
            },
            {"type": "function_call_output", "call_id": calls[0].call_id, "output": "18C"},
        ],
        tools=[WEATHER],
    )
    assert follow.status == "completed"


def test_responses_refuses_what_does_not_translate(
    sqlite_settings: Settings, fake: tuple[FakeProvider, str], start_gateway: StartGateway
) -> None:
    _, fake_url = fake
    gw = start_gateway(sqlite_settings, CONFIG.format(fake=fake_url))
    client = client_for(gw.url)
    with pytest.raises(openai.BadRequestError, match=r"tools\[0\].type"):
        client.responses.create(model="claude", input="hi", tools=[{"type": "web_search_preview"}])
    with pytest.raises(openai.BadRequestError, match="llm/v1/embeddings, not llm/v1/chat"):
        client.responses.create(model="embeddings", input="hi")
