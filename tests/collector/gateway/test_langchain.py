"""LangChain agents' tool calling through the gateway: ``ChatMlflow`` and ``ChatOpenAI``.

``ChatMlflow.bind_tools`` talks to MLflow's invocations path, ``ChatOpenAI.bind_tools`` to
``/v1/chat/completions``; both must get the tool calls back, as an agent loop needs them.
"""

from __future__ import annotations

import json

from langchain_community.chat_models import ChatMlflow
from langchain_core.messages import HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI

from llmscope.config import Settings
from tests.collector.gateway.conftest import CONFIG, StartGateway, wait_for_records
from tests.collector.gateway.fake_provider import FakeProvider


@tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"18C in {city}"


def test_chat_mlflow_and_chat_openai_bind_tools(
    sqlite_settings: Settings, fake: tuple[FakeProvider, str], start_gateway: StartGateway
) -> None:
    provider, fake_url = fake
    gw = start_gateway(sqlite_settings, CONFIG.format(fake=fake_url))
    models = [
        ChatMlflow(target_uri=gw.url, endpoint="chat"),
        ChatMlflow(target_uri=gw.url, endpoint="claude"),
        ChatOpenAI(base_url=f"{gw.url}/v1", api_key="unused", model="claude", max_retries=0),
    ]
    for model in models:
        agent = model.bind_tools([get_weather])
        question = HumanMessage("Weather in Paris?")
        answer = agent.invoke([question])
        (call,) = answer.tool_calls
        assert call["name"] == "get_weather"
        assert call["args"] == {"query": "Weather in Paris?"}
        # the agent runs the tool and sends its result back
        result = ToolMessage(get_weather.invoke({"city": "Paris"}), tool_call_id=call["id"])
        final = agent.invoke([question, answer, result])
        assert final.tool_calls == [] and str(final.content).startswith("Echo: ")
    sent = [r["body"] for r in provider.requests]
    assert sent[0]["tools"][0]["function"]["name"] == "get_weather"
    assert json.loads(sent[1]["messages"][1]["tool_calls"][0]["function"]["arguments"]) == {
        "query": "Weather in Paris?"
    }
    assert sent[1]["messages"][2]["role"] == "tool"
    assert sent[1]["messages"][2]["content"] == "18C in Paris"
    claude = [r["body"] for r in provider.requests if "anthropic" in r["path"]]
    assert claude[1]["messages"][-1]["content"][0]["type"] == "tool_result"
    records = wait_for_records(gw.engine, 6)
    assert all(r.status == "ok" for r in records)
