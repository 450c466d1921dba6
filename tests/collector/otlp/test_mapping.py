"""Spans to records, family by family: hand-written spans, hand-written expected records."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from llmscope.collector.ingest import RecordWriter
from llmscope.collector.otlp.batch import map_export
from tests.collector.otlp.spans import export_request, make_span

GENAI_CURRENT = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "openai",
    "gen_ai.request.model": "gpt-4o-mini",
    "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
    "gen_ai.usage.input_tokens": 42,
    "gen_ai.usage.output_tokens": 7,
    "gen_ai.system_instructions": json.dumps([{"type": "text", "content": "You are terse."}]),
    "gen_ai.input.messages": json.dumps(
        [{"role": "user", "parts": [{"type": "text", "content": "How do I reset my password?"}]}]
    ),
    "gen_ai.output.messages": json.dumps(
        [
            {
                "role": "assistant",
                "parts": [{"type": "text", "content": "Settings, then Security."}],
                "finish_reason": "stop",
            }
        ]
    ),
    "gen_ai.prompt.name": "support-answer",
    "gen_ai.prompt.version": "3",
    "gen_ai.prompt.variable.topic": "password",
    "gen_ai.conversation.id": "conv-1",
    "gen_ai.response.time_to_first_chunk": 0.125,
    "user.id": "u-7",
}

GENAI_STRUCTURED = {
    "gen_ai.operation.name": "text_completion",
    "gen_ai.provider.name": "aws.bedrock",
    "gen_ai.response.model": "amazon.titan-text",
    # Structured values (array of key-value lists) instead of JSON strings.
    "gen_ai.input.messages": [
        {
            "role": "user",
            "parts": [{"type": "text", "content": "Name a colour"}, {"type": "uri", "uri": "x"}],
        }
    ],
    "gen_ai.output.messages": [
        {"role": "assistant", "parts": [{"type": "text", "content": "Teal"}]},
        {"role": "assistant", "parts": [{"type": "text", "content": "Red"}]},
    ],
}

GENAI_DEPRECATED = {
    "gen_ai.system": "anthropic",
    "gen_ai.request.model": "claude-3-5-haiku",
    "gen_ai.usage.prompt_tokens": 11,
    "gen_ai.usage.completion_tokens": "5",  # numbers as strings happen; they are accepted
    "gen_ai.prompt.0.role": "system",
    "gen_ai.prompt.0.content": "Be kind.",
    "gen_ai.prompt.1.role": "user",
    "gen_ai.prompt.1.content": "Hello",
    "gen_ai.completion.0.role": "assistant",
    "gen_ai.completion.0.content": "Hi there",
}

OPENINFERENCE = {
    "openinference.span.kind": "LLM",
    "llm.provider": "openai",
    "llm.model_name": "gpt-4o",
    "llm.input_messages.0.message.role": "system",
    "llm.input_messages.0.message.content": "Answer with a number.",
    "llm.input_messages.1.message.role": "user",
    "llm.input_messages.1.message.contents.0.message_content.type": "text",
    "llm.input_messages.1.message.contents.0.message_content.text": "What is 2+2?",
    "llm.output_messages.0.message.role": "assistant",
    "llm.output_messages.0.message.content": "4",
    "llm.token_count.prompt": 12,
    "llm.token_count.total": 15,
    "llm.prompt_template.template": "What is {a}+{b}?",
    "llm.prompt_template.variables": json.dumps({"a": 2, "b": 2}),
    "llm.prompt_template.version": "v1",
    "session.id": "s-1",
    "user.id": "u-1",
    "tag.tags": ["math", "beta"],
    "metadata": json.dumps({"tier": "pro", "n": 3}),
    "input.value": '{"messages": "..."}',
    "output.value": "4",
}

OPENINFERENCE_VALUES = {
    "openinference.span.kind": "LLM",
    "llm.model_name": "llama-3",
    "input.value": "Translate 'chat' to English",
    "output.value": "cat",
    "llm.token_count.completion": 1,
    "llm.token_count.total": 9,
}

OPENLLMETRY = {
    "gen_ai.system": "openai",
    "llm.request.type": "chat",
    "gen_ai.request.model": "gpt-4o-mini",
    "gen_ai.prompt.0.role": "user",
    "gen_ai.prompt.0.content": "Summarise: the cat sat",
    "gen_ai.completion.0.content": "A cat sat.",
    "gen_ai.usage.prompt_tokens": 9,
    "gen_ai.usage.completion_tokens": 4,
    "traceloop.prompt.key": "summarise",
    "traceloop.prompt.version": 2,
    "traceloop.prompt.template": "Summarise: {{text}}",
    "traceloop.prompt.template_variables": json.dumps({"text": "the cat sat"}),
    "traceloop.association.properties.user_id": "u-9",
    "traceloop.association.properties.session_id": "s-9",
    "traceloop.association.properties.plan": "free",
}

CASES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    (
        "genai-current",
        GENAI_CURRENT,
        {
            "provider": "openai",
            "model": "gpt-4o-mini",
            "input_tokens": 42,
            "output_tokens": 7,
            "messages": [
                {"role": "system", "content": "You are terse."},
                {"role": "user", "content": "How do I reset my password?"},
            ],
            "prompt": None,
            "response": "Settings, then Security.",
            "template_name": "support-answer",
            "template_version": "3",
            "template_text": None,
            "template_variables": {"topic": "password"},
            "session_id": "conv-1",
            "user_id": "u-7",
            "ttft_ms": 125.0,
            "tags": None,
        },
    ),
    (
        "genai-structured",
        GENAI_STRUCTURED,
        {
            "provider": "aws.bedrock",
            "model": "amazon.titan-text",
            "messages": [
                {
                    "role": "user",
                    "content": "Name a colour",
                    "parts": [{"type": "uri", "uri": "x"}],
                }
            ],
            "response": "Teal",
            "template_name": None,
        },
    ),
    (
        "genai-deprecated",
        GENAI_DEPRECATED,
        {
            "provider": "anthropic",
            "model": "claude-3-5-haiku",
            "input_tokens": 11,
            "output_tokens": 5,
            "messages": [
                {"role": "system", "content": "Be kind."},
                {"role": "user", "content": "Hello"},
            ],
            "response": "Hi there",
        },
    ),
    (
        "openinference",
        OPENINFERENCE,
        {
            "provider": "openai",
            "model": "gpt-4o",
            "input_tokens": 12,
            "output_tokens": 3,
            "messages": [
                {"role": "system", "content": "Answer with a number."},
                {"role": "user", "content": "What is 2+2?"},
            ],
            "prompt": None,
            "response": "4",
            "template_name": "template-" + hashlib.sha256(b"What is {a}+{b}?").hexdigest()[:12],
            "template_version": "v1",
            "template_text": "What is {a}+{b}?",
            "template_variables": {"a": 2, "b": 2},
            "session_id": "s-1",
            "user_id": "u-1",
            "tags": {"math": "true", "beta": "true", "tier": "pro", "n": "3"},
        },
    ),
    (
        "openinference-values",
        OPENINFERENCE_VALUES,
        {
            "model": "llama-3",
            "messages": None,
            "prompt": "Translate 'chat' to English",
            "response": "cat",
            "input_tokens": 8,
            "output_tokens": 1,
        },
    ),
    (
        "openllmetry",
        OPENLLMETRY,
        {
            "provider": "openai",
            "model": "gpt-4o-mini",
            "input_tokens": 9,
            "output_tokens": 4,
            "messages": [{"role": "user", "content": "Summarise: the cat sat"}],
            "response": "A cat sat.",
            "template_name": "summarise",
            "template_version": "2",
            "template_text": "Summarise: {{text}}",
            "template_variables": {"text": "the cat sat"},
            "user_id": "u-9",
            "session_id": "s-9",
            "tags": {"plan": "free"},
        },
    ),
]


@pytest.mark.parametrize(
    ("attributes", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_each_family_maps_to_a_record(attributes: dict[str, Any], expected: dict[str, Any]) -> None:
    span = make_span(
        attributes, trace_id=bytes(range(16)), span_id=bytes(range(8)), duration_ms=812.5
    )
    batch = map_export(export_request([span], service="support-bot"), RecordWriter())
    assert (batch.spans, batch.skipped, batch.rejected, batch.errors) == (1, 0, 0, [])
    [row] = batch.rows
    assert row["source"] == "otlp"
    assert row["endpoint"] == "support-bot"
    assert row["trace_id"] == "000102030405060708090a0b0c0d0e0f"
    assert row["span_id"] == "0001020304050607"
    assert row["latency_ms"] == pytest.approx(812.5)
    assert row["timestamp"].isoformat() == "2026-01-01T00:00:00+00:00"
    assert row["status"] == "ok" and row["error"] is None
    for field, value in expected.items():
        assert row[field] == value, field


def test_record_ids_are_stable_per_span_and_differ_between_spans() -> None:
    first = make_span(GENAI_CURRENT, trace_id=b"\x01" * 16, span_id=b"\x02" * 8)
    again = make_span(GENAI_CURRENT, trace_id=b"\x01" * 16, span_id=b"\x02" * 8)
    other = make_span(GENAI_CURRENT, trace_id=b"\x01" * 16, span_id=b"\x03" * 8)
    ids = [
        map_export(export_request([s]), RecordWriter()).rows[0]["id"] for s in (first, again, other)
    ]
    assert ids[0] == ids[1] != ids[2]
    # The same span twice in one export is one record; the copy is counted as skipped.
    twice = map_export(export_request([first, again]), RecordWriter())
    assert (len(twice.rows), twice.skipped) == (1, 1)


def test_an_error_span_is_a_record_with_status_error() -> None:
    span = make_span(GENAI_DEPRECATED, error="rate limited by provider")
    [row] = map_export(export_request([span]), RecordWriter()).rows
    assert (row["status"], row["error"]) == ("error", "rate limited by provider")


NOT_LLM_CALLS = [
    {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "helper"},
    {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search"},
    {"gen_ai.operation.name": "embeddings", "gen_ai.request.model": "text-embedding-3-small"},
    {"openinference.span.kind": "CHAIN", "input.value": "hello"},
    {"openinference.span.kind": "RETRIEVER", "llm.model_name": "not-really"},
    {"traceloop.span.kind": "workflow", "traceloop.entity.name": "answer_question"},
    {"llm.request.type": "embedding", "gen_ai.system": "openai"},
    {"http.request.method": "GET", "url.full": "https://example.com/"},
    {},
]


def test_spans_that_are_not_llm_calls_are_kept_as_steps_or_skipped() -> None:
    spans = [make_span(a) for a in NOT_LLM_CALLS] + [make_span(GENAI_CURRENT)]
    batch = map_export(export_request(spans), RecordWriter())
    assert (batch.spans, batch.rejected, len(batch.rows)) == (10, 0, 1)
    # agent, tool, chain, retriever and a Traceloop workflow are an agent's steps; an
    # embeddings call, an HTTP request and a span saying nothing are skipped
    kinds = [step["kind"] for step in batch.steps]
    assert kinds == ["agent", "tool", "chain", "retriever", "chain"]
    assert batch.skipped == 4


BROKEN = [
    ({"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": "lots"}, "input_tokens"),
    ({"gen_ai.operation.name": "chat", "gen_ai.usage.output_tokens": -3}, "output_tokens"),
    ({"gen_ai.operation.name": "chat", "gen_ai.input.messages": "{not json"}, "input.messages"),
    ({"gen_ai.operation.name": "chat", "gen_ai.input.messages": 17}, "input.messages"),
    ({"gen_ai.operation.name": "chat", "gen_ai.request.model": ["a", "b"]}, "request.model"),
    ({"gen_ai.system": "openai", "gen_ai.usage.prompt_tokens": True}, "prompt_tokens"),
    ({"openinference.span.kind": "LLM", "llm.token_count.prompt": [1, 2]}, "token_count"),
    ({"openinference.span.kind": "LLM", "metadata": "[1, 2]"}, "metadata"),
    ({"openinference.span.kind": "LLM", "tag.tags": "not a list"}, "tag.tags"),
    ({"gen_ai.operation.name": "chat", "gen_ai.response.time_to_first_chunk": "soon"}, "first"),
    ({"gen_ai.operation.name": "chat", "gen_ai.request.model": "m" * 300}, "model"),
    (
        {"gen_ai.operation.name": "chat", "gen_ai.input.messages": "[" * 50_000 + "]" * 50_000},
        "could not be read",
    ),
]


@pytest.mark.parametrize(("attributes", "named"), BROKEN, ids=[b[1] for b in BROKEN])
def test_a_broken_span_is_rejected_alone(attributes: dict[str, Any], named: str) -> None:
    good_before, good_after = make_span(GENAI_CURRENT), make_span(OPENINFERENCE)
    broken = make_span(attributes, span_id=b"\xab" * 8)
    batch = map_export(export_request([good_before, broken, good_after]), RecordWriter())
    assert batch.rejected == 1
    assert len(batch.rows) == 2
    assert "span abababababababab" in batch.error_message()
    assert named in batch.error_message()


def test_redaction_applies_to_traced_content() -> None:
    attributes = {**GENAI_DEPRECATED, "gen_ai.prompt.1.content": "mail me at ann@example.com"}
    [row] = map_export(export_request([make_span(attributes)]), RecordWriter(redact_pii=True)).rows
    assert row["messages"][1]["content"] == "mail me at [EMAIL]"


# --- agents: tool calls, tools offered, tool results -----------------------------------------


def test_genai_tool_call_parts_and_tool_definitions_map_as_the_gateway_records_them() -> None:
    attributes = {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.input.messages": json.dumps(
            [
                {"role": "user", "parts": [{"type": "text", "content": "Weather in Oslo?"}]},
                {
                    "role": "assistant",
                    "parts": [
                        {
                            "type": "tool_call",
                            "id": "c1",
                            "name": "weather",
                            "arguments": {"city": "Oslo"},
                        },
                    ],
                },
                {
                    "role": "tool",
                    "parts": [
                        {"type": "tool_call_response", "id": "c1", "response": {"temp_c": -3}}
                    ],
                },
            ]
        ),  # fmt: skip
        "gen_ai.output.messages": json.dumps(
            [
                {
                    "role": "assistant",
                    "parts": [
                        {
                            "type": "tool_call",
                            "id": "c2",
                            "name": "forecast",
                            "arguments": '{"city": "Oslo", "days": 2}',
                        },
                        {"type": "tool_call", "id": "c3", "name": "alerts", "arguments": None},
                    ],
                    "finish_reason": "tool_calls",
                }
            ]
        ),  # fmt: skip
        "gen_ai.tool.definitions": json.dumps(
            [
                {"type": "function", "name": "weather", "parameters": {}},
                {"type": "function", "function": {"name": "forecast"}},
                {"type": "web_search"},
            ]
        ),
    }
    [row] = map_export(export_request([make_span(attributes)]), RecordWriter()).rows
    assert row["response"] is None
    assert row["tool_calls"] == [
        {"id": "c2", "name": "forecast", "arguments": '{"city": "Oslo", "days": 2}'},
        {"id": "c3", "name": "alerts", "arguments": None},
    ]
    assert row["tools"] == ["weather", "forecast", "web_search"]
    assert row["messages"] == [
        {"role": "user", "content": "Weather in Oslo?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function",
                 "function": {"name": "weather", "arguments": '{"city": "Oslo"}'}}
            ],
        },
        {"role": "tool", "content": '{"temp_c": -3}', "tool_call_id": "c1"},
    ]  # fmt: skip


def test_openinference_tool_calls_and_tools_and_never_the_raw_output_json() -> None:
    answer = {"id": "chatcmpl-9", "choices": [{"message": {"content": None, "tool_calls": []}}]}
    attributes = {
        "openinference.span.kind": "LLM",
        "llm.model_name": "gpt-4o",
        "llm.input_messages.0.message.role": "user",
        "llm.input_messages.0.message.content": "Refund order 5",
        "llm.output_messages.0.message.role": "assistant",
        "llm.output_messages.0.message.tool_calls.0.tool_call.id": "t1",
        "llm.output_messages.0.message.tool_calls.0.tool_call.function.name": "refund",
        "llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments": '{"order": 5}',
        "llm.tools.0.tool.json_schema": json.dumps(
            {"type": "function", "function": {"name": "refund", "parameters": {}}}
        ),
        "llm.tools.1.tool.json_schema": json.dumps({"name": "escalate"}),
        "output.value": json.dumps(answer),
        "output.mime_type": "application/json",
    }
    [row] = map_export(export_request([make_span(attributes)]), RecordWriter()).rows
    assert row["response"] is None
    assert row["tool_calls"] == [{"id": "t1", "name": "refund", "arguments": '{"order": 5}'}]
    assert row["tools"] == ["refund", "escalate"]
    assert row["response_id"] == "chatcmpl-9"
    # Without output messages, a JSON output.value gives its first choice's text, not itself.
    del attributes["llm.output_messages.0.message.role"]
    for key in [k for k in attributes if ".tool_calls." in k]:
        del attributes[key]
    answer["choices"][0]["message"]["content"] = "Refunded."  # type: ignore[index]
    attributes["output.value"] = json.dumps(answer)
    [row] = map_export(export_request([make_span(attributes)]), RecordWriter()).rows
    assert row["response"] == "Refunded." and row["tool_calls"] is None


def test_openinference_first_token_event_gives_the_ttft() -> None:
    span = make_span(
        {**OPENINFERENCE_VALUES},
        duration_ms=900.0,
        events=[("First Token Stream Event", {})],  # 1 ms after the start (spans.py)
    )
    [row] = map_export(export_request([span]), RecordWriter()).rows
    assert row["ttft_ms"] == 1.0
    # An attribute that says it wins over the event.
    span = make_span(
        {**GENAI_CURRENT},
        events=[("First Token Stream Event", {})],
    )
    [row] = map_export(export_request([span]), RecordWriter()).rows
    assert row["ttft_ms"] == 125.0


@pytest.mark.parametrize(
    ("attributes", "named"),
    [
        ({"gen_ai.operation.name": "chat", "gen_ai.tool.definitions": '{"name": "x"}'},
         "gen_ai.tool.definitions"),
        ({"openinference.span.kind": "LLM", "llm.tools.0.tool.json_schema": "[1]"},
         "llm.tools.0.tool.json_schema"),
    ],
)  # fmt: skip
def test_malformed_tool_definitions_reject_the_span(attributes: dict[str, Any], named: str) -> None:
    batch = map_export(export_request([make_span(attributes)]), RecordWriter())
    assert batch.rejected == 1 and named in batch.errors[0]
