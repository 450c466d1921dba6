"""The real OpenAI instrumentations, around the real ``openai`` client, exporting to llmscope.

OpenTelemetry's ``opentelemetry-instrumentation-openai-v2`` (the latest GenAI conventions: message
parts, ``tool_call`` parts) and Arize's ``openinference-instrumentation-openai`` (flattened
``llm.*`` attributes, ``llm.tools``, the "First Token Stream Event") trace an agent's turn against
a local OpenAI-compatible server: a call answered with a tool call only, the follow-up call with
the tool's result, and a stream. Their spans go over OTLP/HTTP to a served collector; the records
must hold the tool calls, the tools offered and the answer the way the gateway records them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from fastapi import FastAPI

from llmscope.sdk import configure_tracing
from tests.collector.gateway.fake_provider import OPENAI_KEY, FakeProvider, serving
from tests.conftest import free_port

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup_order",
            "description": "Find an order by its number",
            "parameters": {"type": "object", "properties": {"query": {"type": "string"}}},
        },
    }
]
QUESTION = "Where is order A-17?"
ARGUMENTS = json.dumps({"query": QUESTION})
CALL = {"id": "call_fake1", "name": "lookup_order", "arguments": ARGUMENTS}


@pytest.fixture
def provider_url() -> Iterator[str]:
    with serving(FakeProvider().app, free_port()) as url:
        yield url


def _agent_turn(provider_url: str) -> None:
    """A tool-call-only answer, the follow-up with the tool's result, then two streams."""
    client = openai.OpenAI(base_url=f"{provider_url}/v1", api_key=OPENAI_KEY)
    asked = [{"role": "user", "content": QUESTION}]
    first = client.chat.completions.create(model="gpt-4o-mini", messages=asked, tools=TOOLS)
    call = first.choices[0].message.tool_calls[0]
    follow_up = [
        *asked,
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "shipped on Monday"},
    ]
    client.chat.completions.create(model="gpt-4o-mini", messages=follow_up, tools=TOOLS)
    for tools in (None, TOOLS):
        extra: dict[str, Any] = {"tools": tools} if tools else {}
        stream = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=asked,
            stream=True,
            stream_options={"include_usage": True},
            **extra,
        )
        for _ in stream:
            pass


def _traced(base: str, provider_url: str, instrumentor: Any, service: str) -> list[dict[str, Any]]:
    """The records of one agent turn traced by ``instrumentor``, oldest first."""
    tracer_provider = configure_tracing(base, service_name=service, set_global=False)
    instrumentor.instrument(tracer_provider=tracer_provider)
    try:
        _agent_turn(provider_url)
    finally:
        instrumentor.uninstrument()
    assert tracer_provider.force_flush(20_000)
    tracer_provider.shutdown()
    listed = httpx.get(f"{base}/api/v1/records", params={"endpoint": service}, timeout=10)
    records = sorted(listed.json()["records"], key=lambda r: r["timestamp"])
    assert len(records) == 4 and all(r["source"] == "otlp" for r in records)
    return [httpx.get(f"{base}/api/v1/records/{r['id']}", timeout=10).json() for r in records]


def test_openai_v2_latest_conventions_record_tool_calls(
    collector: tuple[str, FastAPI], provider_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "SPAN_ONLY")
    base, _ = collector
    tool_only, follow_up, stream, tool_stream = _traced(
        base, provider_url, OpenAIInstrumentor(), "openai-v2-agent"
    )

    assert tool_only["tool_calls"] == [CALL]
    assert tool_only["response"] is None
    assert tool_only["messages"] == [{"role": "user", "content": QUESTION}]
    assert tool_only["response_id"] == "chatcmpl-tool1"
    assert (tool_only["input_tokens"], tool_only["output_tokens"]) == (20, 9)
    # openai-v2 2.4b0 puts no tool definitions on chat spans: nothing to name
    assert tool_only["tools"] is None

    assert follow_up["messages"] == [
        {"role": "user", "content": QUESTION},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_fake1",
                    "type": "function",
                    "function": {"name": "lookup_order", "arguments": ARGUMENTS},
                }
            ],
        },
        {"role": "tool", "content": "shipped on Monday", "tool_call_id": "call_fake1"},
    ]
    assert follow_up["response"] == f"Echo: {QUESTION}" and follow_up["tool_calls"] is None

    assert stream["response"] == f"Echo: {QUESTION}"
    assert tool_stream["tool_calls"] == [CALL] and tool_stream["response"] is None
    # openai-v2 2.4b0 sends no time to first token (no attribute, no event): none is made up
    assert stream["ttft_ms"] is None and tool_stream["ttft_ms"] is None


def test_openinference_records_tool_calls_tools_and_first_token(
    collector: tuple[str, FastAPI], provider_url: str
) -> None:
    from openinference.instrumentation.openai import OpenAIInstrumentor

    base, _ = collector
    tool_only, follow_up, stream, tool_stream = _traced(
        base, provider_url, OpenAIInstrumentor(), "openinference-agent"
    )

    assert tool_only["tool_calls"] == [CALL]
    assert tool_only["tools"] == ["lookup_order"]
    # the raw output.value JSON is not an answer
    assert tool_only["response"] is None
    assert tool_only["response_id"] == "chatcmpl-tool1"

    assert follow_up["tools"] == ["lookup_order"]
    assert follow_up["messages"][1] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_fake1",
                "type": "function",
                "function": {"name": "lookup_order", "arguments": ARGUMENTS},
            }
        ],
    }
    assert follow_up["messages"][2] == {
        "role": "tool",
        "content": "shipped on Monday",
        "tool_call_id": "call_fake1",
    }
    assert follow_up["response"] == f"Echo: {QUESTION}" and follow_up["tool_calls"] is None

    assert stream["response"] == f"Echo: {QUESTION}" and stream["tools"] is None
    assert tool_stream["tool_calls"] == [CALL] and tool_stream["response"] is None
    # the first-token event gives the time to first token, within the call's latency
    for record in (stream, tool_stream):
        assert record["ttft_ms"] is not None
        assert 0 < record["ttft_ms"] <= record["latency_ms"]
    assert tool_only["ttft_ms"] is None  # not streamed: no first token
