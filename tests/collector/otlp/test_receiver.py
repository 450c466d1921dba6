"""``POST /v1/traces`` over real HTTP: encodings, gzip, idempotence, evaluations and feedback,
error statuses."""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from google.protobuf import json_format
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from sqlalchemy import Engine, text

from llmscope.app.server import create_app
from llmscope.collector.otlp.mapping import record_id_for
from llmscope.config import Settings
from llmscope.db import make_engine, upgrade
from llmscope.db.models import Evaluation, Feedback, PendingEvaluation, Record
from tests.collector.otlp.server import serve_app
from tests.collector.otlp.spans import export_request, make_span, otlp_json
from tests.collector.otlp.test_mapping import GENAI_CURRENT, GENAI_DEPRECATED, OPENINFERENCE
from tests.conftest import count_rows

PROTOBUF = {"content-type": "application/x-protobuf"}
JSON = {"content-type": "application/json"}

Collector = tuple[str, FastAPI]


def post(base: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(f"{base}/v1/traces", content=body, headers=headers, timeout=30)


def protobuf_answer(response: httpx.Response) -> ExportTraceServiceResponse:
    assert response.headers["content-type"] == "application/x-protobuf"
    answer = ExportTraceServiceResponse()
    answer.ParseFromString(response.content)
    return answer


def get_record(base: str, record_id: str) -> dict[str, Any]:
    response = httpx.get(f"{base}/api/v1/records/{record_id}", timeout=10)
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_protobuf_export_stores_records_and_a_retry_stores_nothing_twice(
    collector: Collector, engine: Engine
) -> None:
    base, _ = collector
    llm = make_span(GENAI_CURRENT, trace_id=b"\x11" * 16, span_id=b"\x22" * 8)
    agent = make_span({"gen_ai.operation.name": "invoke_agent"}, trace_id=b"\x11" * 16)
    body = export_request([agent, llm]).SerializeToString()

    first = post(base, body, PROTOBUF)
    assert first.status_code == 200
    assert not protobuf_answer(first).HasField("partial_success")
    record = get_record(base, record_id_for("11" * 16, "22" * 8))
    assert record["source"] == "otlp"
    assert record["trace_id"] == "11" * 16 and record["span_id"] == "22" * 8
    assert record["model"] == "gpt-4o-mini" and record["input_tokens"] == 42
    assert record["response"] == "Settings, then Security."
    assert record["template"]["name"] == "support-answer"

    assert post(base, body, PROTOBUF).status_code == 200  # the exporter retried
    assert count_rows(engine, Record) == 1  # the agent span was skipped; the call stored once


def test_json_with_hex_ids_and_gzip_answers_json(collector: Collector) -> None:
    base, _ = collector
    span = make_span(
        OPENINFERENCE, trace_id=bytes.fromhex("ab" * 16), span_id=bytes.fromhex("cd" * 8)
    )
    body = gzip.compress(otlp_json(export_request([span])))
    response = post(base, body, {**JSON, "content-encoding": "gzip"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    answer = json_format.Parse(response.text, ExportTraceServiceResponse())
    assert answer.partial_success.rejected_spans == 0
    record = get_record(base, record_id_for("ab" * 16, "cd" * 8))
    assert (record["trace_id"], record["span_id"]) == ("ab" * 16, "cd" * 8)
    assert record["session_id"] == "s-1" and record["tags"]["tier"] == "pro"


def test_protobuf_with_gzip_is_accepted(collector: Collector) -> None:
    base, _ = collector
    span = make_span(GENAI_DEPRECATED, trace_id=b"\x05" * 16, span_id=b"\x06" * 8)
    body = gzip.compress(export_request([span]).SerializeToString())
    assert post(base, body, {**PROTOBUF, "content-encoding": "gzip"}).status_code == 200
    assert get_record(base, record_id_for("05" * 16, "06" * 8))["provider"] == "anthropic"


def test_broken_span_gives_partial_success_and_the_rest_is_stored(
    collector: Collector, engine: Engine
) -> None:
    base, _ = collector
    broken = make_span(
        {"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": "lots"}, span_id=b"\x0b" * 8
    )
    spans = [make_span(GENAI_CURRENT), broken, make_span(OPENINFERENCE)]
    for encoding, headers in (("protobuf", PROTOBUF), ("json", JSON)):
        request = export_request(spans)
        body = request.SerializeToString() if encoding == "protobuf" else otlp_json(request)
        response = post(base, body, headers)
        assert response.status_code == 200
        if encoding == "protobuf":
            answer = protobuf_answer(response)
        else:
            answer = json_format.Parse(response.text, ExportTraceServiceResponse())
        assert answer.partial_success.rejected_spans == 1
        assert "0b0b0b0b0b0b0b0b" in answer.partial_success.error_message
        assert "gen_ai.usage.input_tokens" in answer.partial_success.error_message
    assert count_rows(engine, Record) == 2


def _evaluations(record: dict[str, Any]) -> list[tuple[Any, ...]]:
    return sorted(
        (e["evaluator"], e["version"], e["score"], e["passed"], e["label"], e["justification"])
        for e in record["evaluations"]
    )


def test_evaluation_events_and_annotations_become_evaluations(
    collector: Collector, engine: Engine
) -> None:
    base, _ = collector
    trace_id = b"\x33" * 16
    llm = make_span(
        {
            **GENAI_CURRENT,
            "annotations.0.annotation.name": "hallucination",
            "annotations.0.annotation.label": "hallucinated",
            "annotations.0.annotation.annotator_kind": "LLM",
            "annotations.0.annotation.explanation": "no such tab",
            # a person's annotation is a user's rating: feedback
            "annotations.1.annotation.name": "helpful",
            "annotations.1.annotation.label": "thumbs_down",
            "annotations.1.annotation.annotator_kind": "HUMAN",
        },
        trace_id=trace_id,
        span_id=b"\x44" * 8,
        events=[
            (
                "gen_ai.evaluation.result",
                {
                    "gen_ai.evaluation.name": "relevance",
                    "gen_ai.evaluation.score.value": 0.9,
                    "gen_ai.evaluation.score.label": "relevant",
                    "gen_ai.evaluation.explanation": "on topic",
                },
            )
        ],
    )
    # An evaluator span (no LLM call) whose parent is the call it judged.
    evaluator = make_span(
        {"openinference.span.kind": "EVALUATOR", "evaluations.0.evaluation.name": "correctness"}
        | {"evaluations.0.evaluation.score": 0.25},
        trace_id=trace_id,
        parent_span_id=b"\x44" * 8,
    )
    body = export_request([llm, evaluator]).SerializeToString()
    assert post(base, body, PROTOBUF).status_code == 200
    record = get_record(base, record_id_for("33" * 16, "44" * 8))
    assert _evaluations(record) == [
        ("correctness", "external", 0.25, None, None, None),
        ("hallucination", "external", None, False, "hallucinated", "no such tab"),
        ("relevance", "external", 0.9, True, "relevant", "on topic"),
    ]
    assert all(e["status"] == "done" for e in record["evaluations"])
    assert [(f["value"], f["tags"], f["source"]) for f in record["feedback"]] == [
        ("down", ["helpful", "thumbs_down"], "human")
    ]
    # A retried export repeats nothing.
    assert post(base, body, PROTOBUF).status_code == 200
    assert count_rows(engine, Evaluation) == 3 and count_rows(engine, Feedback) == 1


def test_an_evaluation_before_its_record_waits_for_it(collector: Collector, engine: Engine) -> None:
    base, _ = collector
    # The judge's span is exported first (it ended first, or another process sent it).
    judge = make_span(
        {"gen_ai.operation.name": "evaluate"},
        trace_id=b"\x55" * 16,
        parent_span_id=b"\x66" * 8,
        events=[
            (
                "gen_ai.evaluation.result",
                {"gen_ai.evaluation.name": "ok", "gen_ai.evaluation.score.label": "fail"},
            )
        ],
    )
    assert post(base, export_request([judge]).SerializeToString(), PROTOBUF).status_code == 200
    assert count_rows(engine, PendingEvaluation) == 1 and count_rows(engine, Evaluation) == 0
    llm = make_span(GENAI_DEPRECATED, trace_id=b"\x55" * 16, span_id=b"\x66" * 8)
    assert post(base, export_request([llm]).SerializeToString(), PROTOBUF).status_code == 200
    record = get_record(base, record_id_for("55" * 16, "66" * 8))
    assert _evaluations(record) == [("ok", "external", None, False, "fail", None)]
    assert count_rows(engine, PendingEvaluation) == 0


def test_an_evaluation_names_its_call_by_response_id(collector: Collector, engine: Engine) -> None:
    base, _ = collector
    verdict = (
        "gen_ai.evaluation.result",
        {
            "gen_ai.evaluation.name": "groundedness",
            "gen_ai.evaluation.score.value": 4,
            "gen_ai.evaluation.score.label": "pass",
            "gen_ai.response.id": "chatcmpl-77",
        },
    )
    # An evaluation pipeline's own trace, apart from the call's: only the response id links them.
    early = make_span({"gen_ai.operation.name": "evaluate"}, events=[verdict])
    assert post(base, export_request([early]).SerializeToString(), PROTOBUF).status_code == 200
    llm = make_span(
        {**GENAI_CURRENT, "gen_ai.response.id": "chatcmpl-77"},
        trace_id=b"\x77" * 16,
        span_id=b"\x78" * 8,
    )
    assert post(base, export_request([llm]).SerializeToString(), PROTOBUF).status_code == 200
    record = get_record(base, record_id_for("77" * 16, "78" * 8))
    assert record["response_id"] == "chatcmpl-77"
    assert _evaluations(record) == [("groundedness", "external", 4.0, True, "pass", None)]
    # Later verdicts on a stored call land at once; the same evaluator's newer one replaces it.
    later = make_span(
        {"gen_ai.operation.name": "evaluate"},
        events=[
            verdict,
            ("gen_ai.evaluation.result", {**verdict[1], "gen_ai.evaluation.name": "tone"}),
        ],
    )
    assert post(base, export_request([later]).SerializeToString(), PROTOBUF).status_code == 200
    record = get_record(base, record_id_for("77" * 16, "78" * 8))
    assert [e["evaluator"] for e in record["evaluations"]] == ["groundedness", "tone"]
    assert count_rows(engine, PendingEvaluation) == 0


def test_feedback_api_takes_the_span_id_of_a_traced_call(collector: Collector) -> None:
    base, _ = collector
    llm = make_span(GENAI_DEPRECATED, trace_id=b"\x55" * 16, span_id=b"\x66" * 8)
    assert post(base, export_request([llm]).SerializeToString(), PROTOBUF).status_code == 200
    record = get_record(base, record_id_for("55" * 16, "66" * 8))
    response = httpx.post(
        f"{base}/api/v1/records/{'66' * 8}/feedback", json={"value": "up"}, timeout=10
    )
    assert response.status_code == 201
    assert response.json()["record_id"] == record["id"]


# --- errors ----------------------------------------------------------------------------------


def status_of(response: httpx.Response) -> Status:
    if response.headers["content-type"] == "application/x-protobuf":
        status = Status()
        status.ParseFromString(response.content)
        return status
    return json_format.Parse(response.text, Status(), ignore_unknown_fields=True)


@pytest.mark.parametrize(
    ("body", "headers", "status", "named"),
    [
        (b"{}", {"content-type": "text/plain"}, 415, "text/plain"),
        (b"{}", {}, 415, "content type"),
        (b"{}", {**JSON, "content-encoding": "br"}, 415, "br"),
        (b"\xff\xff\xff\xff", PROTOBUF, 400, "ExportTraceServiceRequest"),
        (b"{not json", JSON, 400, "JSON"),
        (b"[1, 2]", JSON, 400, "object"),
        (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": 7}]}]}]}', JSON, 400, ""),
        (b"not gzip at all", {**PROTOBUF, "content-encoding": "gzip"}, 400, "gzip"),
        (gzip.compress(b"x" * 100)[:-12], {**JSON, "content-encoding": "gzip"}, 400, "gzip"),
    ],
    ids=["text", "none", "brotli", "protobuf", "json", "json-array", "bad-id", "gzip", "truncated"],
)
def test_undecodable_or_unsupported_bodies(
    collector: Collector,
    engine: Engine,
    body: bytes,
    headers: dict[str, str],
    status: int,
    named: str,
) -> None:
    base, _ = collector
    response = post(base, body, headers)
    assert response.status_code == status, response.text
    assert named in status_of(response).message
    assert count_rows(engine, Record) == 0


def test_body_cap_applies_after_decompression(
    make_collector: Callable[..., Collector], engine: Engine
) -> None:
    base, _ = make_collector(max_body_bytes=4096)
    spans = [
        make_span({**GENAI_CURRENT, "gen_ai.prompt.variable.pad": "a" * 3000}) for _ in range(4)
    ]
    raw = export_request(spans).SerializeToString()
    packed = gzip.compress(raw)
    assert len(raw) > 4096 > len(packed)
    response = post(base, packed, {**PROTOBUF, "content-encoding": "gzip"})
    assert response.status_code == 413
    assert "4096" in status_of(response).message
    response = post(base, raw, PROTOBUF)  # too large before decompression too
    assert response.status_code == 413
    assert count_rows(engine, Record) == 0


def _hold_write_lock(engine: Engine, database_url: str) -> Any:
    connection = engine.connect()
    if database_url.startswith("sqlite"):
        connection.exec_driver_sql("BEGIN EXCLUSIVE")
    else:
        connection.begin()
        connection.execute(text("LOCK TABLE records IN EXCLUSIVE MODE"))
    return connection


@contextmanager
def one_export_writing(
    app: FastAPI, engine: Engine, database_url: str, send: Callable[[], Any]
) -> Iterator[list[Any]]:
    """``send()`` in a thread, held while writing (the store locked) until the block ends;
    yields the list its answer goes into once the store is free."""
    lock = _hold_write_lock(engine, database_url)
    results: list[Any] = []
    sender = threading.Thread(target=lambda: results.append(send()))
    sender.start()
    try:
        deadline = time.monotonic() + 10
        while getattr(app.state, "otlp_gate", None) is None or app.state.otlp_gate.in_use < 1:
            assert time.monotonic() < deadline, "the first export never started writing"
            time.sleep(0.02)
        yield results
    finally:
        lock.rollback()
        lock.close()
        sender.join(30)


def broken_store(tmp_path: Path) -> str:
    """The URL of a store that cannot take a write (its records table is gone)."""
    url = f"sqlite:///{tmp_path / 'broken.db'}"
    engine = make_engine(url)
    upgrade(engine)
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE feedback"))
        connection.execute(text("DROP TABLE records"))
    engine.dispose()
    return url


def test_saturated_writer_answers_429_with_retry_after(
    make_collector: Callable[..., Collector], engine: Engine, database_url: str
) -> None:
    base, app = make_collector(otlp_max_concurrent_writes=1)
    first_body = export_request([make_span(GENAI_CURRENT)]).SerializeToString()
    with one_export_writing(
        app, engine, database_url, lambda: post(base, first_body, PROTOBUF)
    ) as results:
        second = export_request([make_span(OPENINFERENCE)]).SerializeToString()
        response = post(base, second, PROTOBUF)
        assert response.status_code == 429
        assert response.headers["retry-after"].isdigit()
        assert "saturated" in status_of(response).message
    assert results[0].status_code == 200  # the held export completes once the store is free
    assert count_rows(engine, Record) == 1


def test_store_refusing_the_write_answers_503_with_retry_after(tmp_path: Path) -> None:
    # A store that cannot take the write is "unavailable".
    app = create_app(Settings(database_url=broken_store(tmp_path), data_dir=tmp_path / "data"))
    with serve_app(app, ready="/docs") as base:
        response = post(base, otlp_json(export_request([make_span(GENAI_CURRENT)])), JSON)
        assert response.status_code == 503
        assert response.headers["retry-after"].isdigit()
        assert status_of(response).message.startswith("the store is unavailable")


@pytest.mark.parametrize("levels", [150, 500])
def test_a_span_nested_too_deep_is_rejected_alone(
    levels: int, collector: Collector, engine: Engine
) -> None:
    # 150 levels: protobuf's JSON mapping gives up; 500: Python's JSON parser recurses out
    base, _ = collector
    deep = make_span({**GENAI_CURRENT, "app.deep": "DEEP"}, span_id=b"\x0d" * 8)
    spans = [make_span(GENAI_CURRENT), deep, make_span(OPENINFERENCE)]
    nested = '{"arrayValue": {"values": [' * levels + '{"stringValue": "x"}' + "]}}" * levels
    for order in (spans, [spans[0], spans[2], deep]):  # in the middle, then last
        text = otlp_json(export_request(order)).decode()
        body = text.replace('{"stringValue": "DEEP"}', nested).encode()
        response = post(base, body, JSON)
        assert response.status_code == 200, response.text
        answer = json_format.Parse(response.text, ExportTraceServiceResponse())
        assert answer.partial_success.rejected_spans == 1
        assert answer.partial_success.error_message == (
            "span 0d0d0d0d0d0d0d0d: attributes nested deeper than 64 levels"
        )
    assert count_rows(engine, Record) == 2  # the two good spans (the second export: a retry)
