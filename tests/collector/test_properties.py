"""Property tests (hypothesis): record validation and OTLP decoding under arbitrary input.

Whatever arrives, the collector answers 2xx or a 4xx that names the problem, never a 5xx; a
4xx changes nothing; a 2xx stores exactly what was sent.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from datetime import UTC
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span
from sqlalchemy.orm import Session

from llmscope.app.server import create_app
from llmscope.collector.ingest import RecordWriter
from llmscope.collector.otlp import wire
from llmscope.collector.otlp.batch import map_export
from llmscope.config import Settings
from llmscope.db import make_engine, upgrade
from llmscope.db.models import Record
from tests.conftest import count_rows

FIELDS = [
    "id", "timestamp", "endpoint", "provider", "model", "prompt", "messages", "response",
    "template", "input_tokens", "output_tokens", "latency_ms", "ttft_ms", "status", "error",
    "user_id", "session_id", "tags",
]  # fmt: skip

json_scalars = st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.text(max_size=30)
json_values = st.recursive(
    json_scalars | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
# plausible values per field, mixed with arbitrary JSON so both paths are exercised
good_values: dict[str, st.SearchStrategy[Any]] = {
    "id": st.text(min_size=1, max_size=40),
    "timestamp": st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat()),
    "input_tokens": st.integers(0, 10**6),
    "output_tokens": st.integers(0, 10**6),
    "latency_ms": st.floats(0, 1e6),
    "status": st.sampled_from(["ok", "error"]),
    "tags": st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=3),
    "messages": st.lists(
        st.fixed_dictionaries(
            {"role": st.sampled_from(["user", "assistant"]), "content": st.text()}
        ),
        max_size=3,
    ),
}
records = st.dictionaries(
    st.sampled_from(FIELDS) | st.text(min_size=1, max_size=10),
    json_values,
    max_size=8,
).flatmap(
    lambda d: st.fixed_dictionaries(
        {
            k: (good_values[k] | json_values) if k in good_values else st.just(v)
            for k, v in d.items()
        }
    )
)


@pytest.fixture(scope="module")
def store() -> Iterator[tuple[TestClient, Any]]:
    workdir = Path(tempfile.mkdtemp(prefix="llmscope-prop-"))
    app_settings = Settings(database_url=f"sqlite:///{workdir / 'p.db'}", data_dir=workdir)
    engine = make_engine(app_settings.database_url)
    upgrade(engine)
    with TestClient(create_app(app_settings)) as client:
        yield client, engine
    engine.dispose()


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=records)
def test_any_record_is_stored_exactly_or_refused_without_change(
    store: tuple[TestClient, Any], body: dict[str, Any]
) -> None:
    client, engine = store
    before = count_rows(engine, Record)
    given_id = body.get("id")
    existed = isinstance(given_id, str) and _stored(engine, given_id)
    answer = client.post("/api/v1/records", json=body)
    assert answer.status_code in (201, 400, 422), answer.text
    if answer.status_code != 201:
        assert answer.json()["message"]
        assert count_rows(engine, Record) == before
        return
    (record_id,) = answer.json()["ids"]
    got = client.get(f"/api/v1/records/{quote(record_id)}").json()
    for key in ("prompt", "response", "endpoint", "model", "input_tokens", "tags", "messages"):
        if key in body and body[key] is not None:
            assert got[key] == body[key], key
    # a client-given id may repeat across examples: that retry is not stored twice
    assert count_rows(engine, Record) == before + (0 if existed else 1)


def _stored(engine: Any, record_id: str) -> bool:
    with Session(engine) as session:
        return session.get(Record, record_id) is not None


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=400), encoding=st.sampled_from(["protobuf", "json"]))
def test_arbitrary_bytes_decode_or_raise_a_400(data: bytes, encoding: str) -> None:
    try:
        request = wire.parse_request(data, encoding)  # type: ignore[arg-type]
    except wire.WireError as exc:
        assert exc.status == 400 and exc.message
        return
    map_export(request, RecordWriter())  # whatever decoded must map without raising


any_values = st.recursive(
    st.builds(AnyValue, string_value=st.text(max_size=20))
    | st.builds(AnyValue, int_value=st.integers(-(2**63), 2**63 - 1))
    | st.builds(AnyValue, bool_value=st.booleans())
    | st.builds(AnyValue, double_value=st.floats(allow_nan=True)),
    lambda inner: st.builds(
        lambda vs: AnyValue(array_value=ArrayValue(values=vs)), st.lists(inner, max_size=3)
    ),
    max_leaves=5,
)
attribute_keys = st.sampled_from(
    [
        "gen_ai.operation.name", "gen_ai.system", "gen_ai.provider.name", "gen_ai.request.model",
        "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens", "gen_ai.input.messages",
        "gen_ai.output.messages", "gen_ai.prompt.0.content", "gen_ai.prompt.0.role",
        "gen_ai.completion.0.content", "gen_ai.usage.prompt_tokens", "llm.model_name",
        "llm.input_messages.0.message.content", "llm.token_count.prompt", "input.value",
        "output.value", "session.id", "user.id", "tag.tags", "metadata",
        "llm.prompt_template.variables", "traceloop.prompt.template", "openinference.span.kind",
    ]
)  # fmt: skip
spans = st.builds(
    lambda attrs, start, length, sid: Span(
        trace_id=bytes(range(16)),
        span_id=sid,
        name="llm",
        start_time_unix_nano=start,
        end_time_unix_nano=start + length,
        attributes=[KeyValue(key=k, value=v) for k, v in attrs],
    ),
    st.lists(st.tuples(attribute_keys, any_values), max_size=8),
    st.integers(0, 2**62),
    st.integers(0, 2**30),
    st.binary(min_size=8, max_size=8),
)


@settings(max_examples=150, deadline=None)
@given(batch=st.lists(spans, max_size=5, unique_by=lambda span: span.span_id))
def test_spans_with_any_attribute_types_never_break_the_batch(batch: list[Span]) -> None:
    request = ExportTraceServiceRequest(
        resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=batch)])]
    )
    result = map_export(request, RecordWriter())
    assert len(result.rows) + result.rejected + result.skipped == len(batch)
    for row in result.rows:
        json.dumps(row, default=str)  # every stored value is serialisable
