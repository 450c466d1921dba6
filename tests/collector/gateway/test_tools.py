"""Tool calls and several choices through every path: OpenAI's client, MLflow's, Anthropic."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
from mlflow.deployments import get_deploy_client

from llmscope.config import Settings
from tests.collector.gateway.conftest import CONFIG, StartGateway, wait_for_records
from tests.collector.gateway.fake_provider import FakeProvider

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
ASK = [{"role": "user", "content": "Weather in Paris?"}]
CALL_ARGS = json.dumps({"query": "Weather in Paris?"})


def client_for(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)


def test_openai_client_gets_tool_calls_whole_and_streamed(
    settings: Settings, fake: tuple[FakeProvider, str], start_gateway: StartGateway
) -> None:
    provider, fake_url = fake
    gw = start_gateway(settings, CONFIG.format(fake=fake_url))
    client = client_for(gw.url)
    for endpoint in ("chat", "claude"):
        answer = client.chat.completions.create(model=endpoint, messages=ASK, tools=[WEATHER])
        choice = answer.choices[0]
        assert choice.finish_reason == "tool_calls"
        (call,) = choice.message.tool_calls or []
        assert call.type == "function" and call.function.name == "get_weather"
        assert json.loads(call.function.arguments) == {"query": "Weather in Paris?"}

        stream = client.chat.completions.create(
            model=endpoint, messages=ASK, tools=[WEATHER], stream=True
        )
        names, arguments, finish = [], "", None
        for chunk in stream:
            for delta_call in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
                if delta_call.function and delta_call.function.name:
                    names.append(delta_call.function.name)
                arguments += (delta_call.function and delta_call.function.arguments) or ""
            if chunk.choices and chunk.choices[0].finish_reason:
                finish = chunk.choices[0].finish_reason
        assert names == ["get_weather"] and finish == "tool_calls"
        assert json.loads(arguments) == {"query": "Weather in Paris?"}

    anthropic_sent = [r["body"] for r in provider.requests if "anthropic" in r["path"]]
    assert anthropic_sent[0]["tools"] == [
        {
            "name": "get_weather",
            "description": "The weather in a city",
            "input_schema": WEATHER["function"]["parameters"],
        }
    ]
    records = wait_for_records(gw.engine, 4)
    assert [r.status for r in records] == ["ok"] * 4


def test_anthropic_gets_tool_use_and_tool_result_blocks(
    sqlite_settings: Settings, fake: tuple[FakeProvider, str], start_gateway: StartGateway
) -> None:
    provider, fake_url = fake
    gw = start_gateway(sqlite_settings, CONFIG.format(fake=fake_url))
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "Be brief."},
        *ASK,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "toolu_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                },
                {
                    "id": "toolu_2",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Lyon"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_1", "content": "18C, sunny"},
        {"role": "tool", "tool_call_id": "toolu_2", "content": "15C, rain"},
    ]
    answer = client_for(gw.url).chat.completions.create(
        model="claude", messages=messages, tools=[WEATHER], tool_choice="required"
    )
    assert "18C, sunny" in (answer.choices[0].message.content or "")  # it saw the results
    sent = provider.requests[-1]["body"]
    assert sent["system"] == "Be brief."
    assert sent["tool_choice"] == {"type": "any"}
    assert sent["messages"][1] == {
        "role": "assistant",
        "content": [
            {
                "type": "tool_use",
                "id": "toolu_1",
                "name": "get_weather",
                "input": {"city": "Paris"},
            },
            {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {"city": "Lyon"}},
        ],
    }
    assert sent["messages"][2] == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C, sunny"},
            {"type": "tool_result", "tool_use_id": "toolu_2", "content": "15C, rain"},
        ],
    }
    # the text before a tool_use block is kept beside the call
    first = client_for(gw.url).chat.completions.create(
        model="claude", messages=ASK, tools=[WEATHER]
    )
    assert first.choices[0].message.content == "Let me look."
    assert (first.choices[0].message.tool_calls or [])[0].id == "toolu_fake1"


def test_mlflow_client_predict_with_tools_and_n(
    sqlite_settings: Settings, fake: tuple[FakeProvider, str], start_gateway: StartGateway
) -> None:
    _, fake_url = fake
    gw = start_gateway(sqlite_settings, CONFIG.format(fake=fake_url))
    client = get_deploy_client(gw.url)
    for endpoint in ("chat", "claude"):
        answer = client.predict(endpoint=endpoint, inputs={"messages": ASK, "tools": [WEATHER]})
        choice = answer["choices"][0]
        assert choice["finish_reason"] == "tool_calls"
        (call,) = choice["message"]["tool_calls"]
        assert call["function"]["name"] == "get_weather"
        assert json.loads(call["function"]["arguments"]) == {"query": "Weather in Paris?"}
    several = client.predict(endpoint="chat", inputs={"messages": ASK, "n": 3})
    texts = [c["message"]["content"] for c in several["choices"]]
    assert texts == [
        "Echo: Weather in Paris?",
        "Echo: Weather in Paris? (take 2)",
        "Echo: Weather in Paris? (take 3)",
    ]
    assert "tool_calls" not in several["choices"][0]["message"]


def test_mlflow_path_refuses_malformed_requests_with_422_before_calling_anyone(
    sqlite_settings: Settings, fake: tuple[FakeProvider, str], start_gateway: StartGateway
) -> None:
    provider, fake_url = fake
    gw = start_gateway(sqlite_settings, CONFIG.format(fake=fake_url))
    bad = [
        ("chat", {"messages": []}, "messages"),
        ("chat", {"messages": [{"content": "no role"}]}, "messages.0.role"),
        ("chat", {"messages": ASK, "temperature": 5}, "temperature"),
        ("chat", {"messages": ASK, "n": 0}, "n"),
        ("completions", {"prompt": ["a", "b"]}, "prompt"),
        ("embeddings", {"input": {"x": 1}}, "input"),
    ]
    for endpoint, body, field in bad:
        answer = httpx.post(f"{gw.url}/endpoints/{endpoint}/invocations", json=body)
        assert answer.status_code == 422, (body, answer.text)
        detail = answer.json()["detail"]
        assert ".".join(map(str, detail[0]["loc"][1:])).startswith(field)
        assert answer.json()["message"].startswith(field)
    assert provider.requests == []  # nobody was called
    records = wait_for_records(gw.engine, len(bad))
    assert all(r.status == "error" for r in records)


def test_a_provider_500_is_answered_not_retried(
    sqlite_settings: Settings, fake: tuple[FakeProvider, str], start_gateway: StartGateway
) -> None:
    provider, fake_url = fake
    gw = start_gateway(sqlite_settings, CONFIG.format(fake=fake_url))
    provider.fail_next(500, {"error": {"message": "boom"}}, times=3)
    answer = httpx.post(f"{gw.url}/endpoints/chat/invocations", json={"messages": ASK})
    assert answer.status_code == 500
    assert len(provider.requests) == 1  # MLflow's client retries itself: no pile-up
