"""Agents' traces over OTLP: the tool, retriever and agent spans around a traced LLM call are
kept as steps, and ``GET /api/v1/traces/{id}`` answers the tree with the call in it.

The LLM call is the real ``openai`` client under Arize's OpenInference instrumentation; the
agent, retriever and tool spans are the app's own, written with the OpenTelemetry SDK the way
OpenInference's and GenAI's conventions name them (a framework's instrumentation sets the same
attributes).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import openai
import pytest
from fastapi import FastAPI
from opentelemetry.trace import Status, StatusCode
from sqlalchemy import select

from llmscope.collector.ingest.store import insert_steps
from llmscope.db.models import StoredSpan
from llmscope.sdk import configure_tracing
from tests.collector.gateway.fake_provider import OPENAI_KEY, FakeProvider, serving
from tests.conftest import free_port


@pytest.fixture
def provider_url() -> Iterator[str]:
    with serving(FakeProvider().app, free_port()) as url:
        yield url


def _agent_run(base: str, provider_url: str, service: str) -> str:
    """One agent run: retrieve, call the model (instrumented), call a tool that fails; the
    trace id."""
    from openinference.instrumentation.openai import OpenAIInstrumentor

    provider = configure_tracing(base, service_name=service, set_global=False)
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    tracer = provider.get_tracer("agent-app")
    try:
        with tracer.start_as_current_span(
            "support-agent", attributes={"openinference.span.kind": "AGENT"}
        ) as agent:
            with tracer.start_as_current_span(
                "search-docs",
                attributes={
                    "openinference.span.kind": "RETRIEVER",
                    "input.value": "refund policy for alice@example.com",
                    "retrieval.documents.0.document.content": "x" * 5000,
                },
            ):
                pass
            client = openai.OpenAI(base_url=f"{provider_url}/v1", api_key=OPENAI_KEY)
            client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "Refund A-17?"}]
            )
            with tracer.start_as_current_span(
                "execute_tool issue_refund",
                attributes={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "refund"},
            ) as tool:
                tool.set_status(Status(StatusCode.ERROR, "payments API answered 503"))
            with tracer.start_as_current_span("GET /internal/health"):
                pass  # an HTTP span: no step, skipped as before
            trace_id = format(agent.get_span_context().trace_id, "032x")
    finally:
        instrumentor.uninstrument()
    assert provider.force_flush(20_000)
    provider.shutdown()
    return trace_id


def _names(node: dict[str, Any]) -> list[tuple[str, str]]:
    return [(child["kind"], child["name"]) for child in node["children"]]


def test_an_agent_run_is_one_tree_with_its_call_and_failed_tool(
    collector: tuple[str, FastAPI], provider_url: str
) -> None:
    base, app = collector
    trace_id = _agent_run(base, provider_url, "agent-traces")

    answer = httpx.get(f"{base}/api/v1/traces/{trace_id}", timeout=10)
    assert answer.status_code == 200, answer.text
    tree = answer.json()
    assert tree["trace_id"] == trace_id and tree["nodes"] == 4 and not tree["truncated"]
    [root] = tree["roots"]
    assert (root["kind"], root["name"], root["depth"]) == ("agent", "support-agent", 0)
    assert [kind for kind, _ in _names(root)] == ["retriever", "llm", "tool"]
    retriever, call, tool = root["children"]
    assert call["record_id"] and call["model"] == "gpt-4o-mini" and call["depth"] == 1
    record = httpx.get(f"{base}/api/v1/records/{call['record_id']}", timeout=10).json()
    assert record["trace_id"] == trace_id
    assert tool["status"] == "error" and tool["error"] == "payments API answered 503"
    assert tool["attributes"]["gen_ai.tool.name"] == "refund"
    # attributes are bounded: a long document is cut
    document = retriever["attributes"]["retrieval.documents.0.document.content"]
    assert len(document) < 2100 and document.endswith("[...]")

    assert retriever["attributes"]["input.value"] == "refund policy for alice@example.com"

    # a retried export (the same steps again) stores nothing twice
    with app.state.sessionmaker() as session:
        rows = [
            {c.key: getattr(s, c.key) for c in StoredSpan.__table__.columns}
            for s in session.scalars(select(StoredSpan).where(StoredSpan.trace_id == trace_id))
        ]
        assert sorted(r["kind"] for r in rows) == ["agent", "retriever", "tool"]
        insert_steps(session, rows, redact_pii=False)
        session.commit()
        assert len(session.scalars(select(StoredSpan)).all()) == 3


def test_steps_are_masked_like_records(
    make_collector: Callable[..., tuple[str, FastAPI]], provider_url: str
) -> None:
    base, _ = make_collector(redact_pii=True)
    trace_id = _agent_run(base, provider_url, "agent-masked")
    [root] = httpx.get(f"{base}/api/v1/traces/{trace_id}", timeout=10).json()["roots"]
    retriever = root["children"][0]
    assert "alice@example.com" not in retriever["attributes"]["input.value"]
    assert retriever["attributes"]["input.value"].startswith("refund policy for ")


def test_trace_errors(collector: tuple[str, FastAPI]) -> None:
    base, _ = collector
    assert httpx.get(f"{base}/api/v1/traces/not-hex", timeout=10).status_code == 400
    missing = httpx.get(f"{base}/api/v1/traces/{'ab' * 16}", timeout=10)
    assert missing.status_code == 404 and "ab" * 16 in missing.json()["detail"]
