"""The real OpenTelemetry SDK and OTLP/HTTP exporter against a real ``llmscope serve``.

One span per convention family (and the agent/workflow spans around them, which are skipped),
sent through ``llmscope.sdk.configure_tracing``; each record is read back field by field.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
from opentelemetry.trace import Span, Status, StatusCode, Tracer, set_span_in_context

from llmscope.collector.otlp.mapping import record_id_for
from llmscope.sdk import configure_tracing

T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z, in nanoseconds
MS = 1_000_000


def _start(
    tracer: Tracer, name: str, attrs: dict[str, Any], at_ms: int, parent: Any = None
) -> Span:
    context = set_span_in_context(parent) if parent is not None else None
    return tracer.start_span(name, context=context, attributes=attrs, start_time=T0 + at_ms * MS)


def _end(span: Span, at_ms: int) -> None:
    span.end(end_time=T0 + at_ms * MS)


def _ids(span: Span) -> tuple[str, str]:
    context = span.get_span_context()
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


def _record(base: str, span: Span) -> dict[str, Any]:
    trace_id, span_id = _ids(span)
    response = httpx.get(f"{base}/api/v1/records/{record_id_for(trace_id, span_id)}", timeout=10)
    assert response.status_code == 200, response.text
    record = dict(response.json())
    assert (record["trace_id"], record["span_id"]) == (trace_id, span_id)
    assert record["source"] == "otlp" and record["endpoint"] == "support-bot"
    return record


def test_spans_from_the_opentelemetry_sdk_become_records(live_server: str) -> None:
    base = live_server
    provider = configure_tracing(base, service_name="support-bot", set_global=False)
    tracer = provider.get_tracer("llmscope-tests")

    current = _start(
        tracer,
        "chat gpt-4o-mini",
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.usage.input_tokens": 31,
            "gen_ai.usage.output_tokens": 9,
            "gen_ai.input.messages": json.dumps(
                [{"role": "user", "parts": [{"type": "text", "content": "Where is my order?"}]}]
            ),
            "gen_ai.output.messages": json.dumps(
                [{"role": "assistant", "parts": [{"type": "text", "content": "It ships today."}]}]
            ),
            "gen_ai.prompt.name": "orders",
            "gen_ai.prompt.version": "7",
            "gen_ai.prompt.variable.order_id": "A-17",
            "gen_ai.conversation.id": "conv-9",
            "gen_ai.response.time_to_first_chunk": 0.2,
        },
        at_ms=0,
    )
    current.add_event(
        "gen_ai.evaluation.result",
        {"gen_ai.evaluation.name": "helpfulness", "gen_ai.evaluation.score.label": "fail"},
    )
    _end(current, 1500)

    agent = _start(tracer, "invoke_agent helper", {"gen_ai.operation.name": "invoke_agent"}, 0)
    deprecated = _start(
        tracer,
        "anthropic.chat",
        {
            "gen_ai.system": "anthropic",
            "gen_ai.request.model": "claude-3-5-haiku",
            "gen_ai.usage.prompt_tokens": 14,
            "gen_ai.usage.completion_tokens": 6,
            "gen_ai.prompt.0.role": "user",
            "gen_ai.prompt.0.content": "Cancel my plan",
            "gen_ai.completion.0.role": "assistant",
            "gen_ai.completion.0.content": "Done.",
        },
        at_ms=100,
        parent=agent,
    )
    deprecated.set_status(Status(StatusCode.ERROR, "upstream timeout"))
    _end(deprecated, 740)
    _end(agent, 900)

    openinference = _start(
        tracer,
        "ChatCompletion",
        {
            "openinference.span.kind": "LLM",
            "llm.model_name": "gpt-4o",
            "llm.provider": "openai",
            "llm.input_messages.0.message.role": "user",
            "llm.input_messages.0.message.content": "Translate 'chat'",
            "llm.output_messages.0.message.role": "assistant",
            "llm.output_messages.0.message.content": "cat",
            "llm.token_count.prompt": 5,
            "llm.token_count.completion": 1,
            "session.id": "sess-3",
            "user.id": "user-3",
            "tag.tags": ["translation"],
            "annotations.0.annotation.name": "correctness",
            "annotations.0.annotation.score": 0.5,
        },
        at_ms=2000,
    )
    _end(openinference, 2300)

    workflow = _start(tracer, "summarise.workflow", {"traceloop.span.kind": "workflow"}, 3000)
    openllmetry = _start(
        tracer,
        "openai.chat",
        {
            "gen_ai.system": "openai",
            "llm.request.type": "chat",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.prompt.0.role": "user",
            "gen_ai.prompt.0.content": "Summarise: rain today",
            "gen_ai.completion.0.content": "Rain.",
            "traceloop.prompt.key": "summarise",
            "traceloop.prompt.version": 4,
            "traceloop.prompt.template": "Summarise: {{text}}",
            "traceloop.prompt.template_variables": json.dumps({"text": "rain today"}),
            "traceloop.association.properties.user_id": "user-4",
        },
        at_ms=3100,
        parent=workflow,
    )
    _end(openllmetry, 3350)
    _end(workflow, 3800)

    assert provider.force_flush(20_000)
    provider.shutdown()

    record = _record(base, current)
    assert record["timestamp"].startswith("2026-01-01T00:00:00")
    assert record["latency_ms"] == 1500.0 and record["ttft_ms"] == 200.0
    assert (record["provider"], record["model"]) == ("openai", "gpt-4o-mini")
    assert (record["input_tokens"], record["output_tokens"]) == (31, 9)
    assert record["messages"] == [{"role": "user", "content": "Where is my order?"}]
    assert record["response"] == "It ships today."
    assert record["template"] == {
        "name": "orders",
        "version": "7",
        "text": None,
        "variables": {"order_id": "A-17"},
    }
    assert record["session_id"] == "conv-9" and record["status"] == "ok"
    assert [
        (e["evaluator"], e["version"], e["passed"], e["label"]) for e in record["evaluations"]
    ] == [("helpfulness", "external", False, "fail")]

    record = _record(base, deprecated)
    assert (record["provider"], record["model"]) == ("anthropic", "claude-3-5-haiku")
    assert (record["input_tokens"], record["output_tokens"]) == (14, 6)
    assert record["messages"] == [{"role": "user", "content": "Cancel my plan"}]
    assert record["response"] == "Done."
    assert (record["status"], record["error"]) == ("error", "upstream timeout")
    assert record["latency_ms"] == 640.0

    record = _record(base, openinference)
    assert (record["provider"], record["model"]) == ("openai", "gpt-4o")
    assert record["messages"] == [{"role": "user", "content": "Translate 'chat'"}]
    assert record["response"] == "cat"
    assert (record["input_tokens"], record["output_tokens"]) == (5, 1)
    assert (record["session_id"], record["user_id"]) == ("sess-3", "user-3")
    assert record["tags"] == {"translation": "true"}
    assert [(e["evaluator"], e["score"]) for e in record["evaluations"]] == [("correctness", 0.5)]

    record = _record(base, openllmetry)
    assert record["template"] == {
        "name": "summarise",
        "version": "4",
        "text": "Summarise: {{text}}",
        "variables": {"text": "rain today"},
    }
    assert record["user_id"] == "user-4" and record["response"] == "Rain."

    # The agent and workflow spans were skipped: four records in all.
    listed = httpx.get(f"{base}/api/v1/records", params={"limit": 50}, timeout=10).json()
    assert sorted(r["span_id"] for r in listed["records"]) == sorted(
        _ids(s)[1] for s in (current, deprecated, openinference, openllmetry)
    )
