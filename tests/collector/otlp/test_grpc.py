"""OTLP over gRPC: the real OpenTelemetry gRPC exporter and MLflow's default exporter against the
collector's TraceService/Export; keys, caps and refusals as gRPC status codes; ``serve``'s port.
"""

from __future__ import annotations

import gzip
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from fastapi import FastAPI
from google.rpc.error_details_pb2 import RetryInfo
from google.rpc.status_pb2 import Status
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcSpanExporter,
)
from opentelemetry.exporter.otlp.proto.http import Compression as HttpCompression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as HttpSpanExporter,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter
from sqlalchemy import Engine, text

from llmscope.app.server import create_app
from llmscope.collector.api import auth
from llmscope.collector.otlp.grpc_receiver import inflight_cap
from llmscope.collector.otlp.mapping import record_id_for
from llmscope.config import Settings
from llmscope.db import make_engine, make_sessionmaker, session_scope
from llmscope.db.models import Evaluation, Record
from llmscope.keys import create_key
from tests.collector.otlp.server import serve_app
from tests.collector.otlp.spans import export_request, make_span
from tests.collector.otlp.test_mapping import GENAI_CURRENT, OPENINFERENCE
from tests.collector.otlp.test_mlflow_tracing import REPO, _records
from tests.collector.otlp.test_receiver import broken_store, one_export_writing
from tests.conftest import cli_server, count_rows, free_port, start_cli_server, wait_for_http

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z, in nanoseconds
MS = 1_000_000

GrpcCollector = tuple[str, str, FastAPI]  # HTTP base URL, gRPC target, app


def two_ports() -> tuple[int, int]:
    """Two different free ports (free_port() may give the same one twice until it is bound)."""
    first = free_port()
    second = free_port()
    while second == first:
        second = free_port()
    return first, second


@pytest.fixture
def make_grpc_collector(settings: Settings) -> Iterator[Callable[..., GrpcCollector]]:
    """Serve a collector with OTLP/gRPC on a free port, some settings changed."""
    with ExitStack() as stack:

        def make(**changes: Any) -> GrpcCollector:
            http_port, grpc_port = two_ports()
            app = create_app(settings.model_copy(update={**changes, "otlp_grpc_port": grpc_port}))
            base = stack.enter_context(serve_app(app, port=http_port))
            return base, f"127.0.0.1:{grpc_port}", app

        yield make


@pytest.fixture
def grpc_collector(make_grpc_collector: Callable[..., GrpcCollector]) -> GrpcCollector:
    return make_grpc_collector()


def export(
    target: str,
    body: bytes,
    key: str | None = None,
    compression: grpc.Compression | None = None,
) -> ExportTraceServiceResponse:
    """One raw TraceService/Export call (the body sent as it is); raises grpc.RpcError."""
    metadata = (("authorization", f"Bearer {key}"),) if key else ()
    with grpc.insecure_channel(target) as channel:
        call = channel.unary_unary(
            EXPORT,
            request_serializer=None,
            response_deserializer=ExportTraceServiceResponse.FromString,
        )
        answer: ExportTraceServiceResponse = call(
            body, metadata=metadata, timeout=30, compression=compression
        )
        return answer


def refused(target: str, body: bytes, **options: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        export(target, body, **options)
    return caught.value


def trace(exporter: SpanExporter, service: str = "support-bot") -> tuple[str, str]:
    """One GenAI chat span (with an evaluation event) through ``exporter``; its (trace, span)."""
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    span = provider.get_tracer("llmscope-tests").start_span(
        "chat gpt-4o-mini", attributes=GENAI_CURRENT, start_time=T0
    )
    span.add_event(
        "gen_ai.evaluation.result",
        {"gen_ai.evaluation.name": "helpfulness", "gen_ai.evaluation.score.label": "pass"},
        timestamp=T0 + 500 * MS,
    )
    span.end(end_time=T0 + 1500 * MS)
    provider.shutdown()
    context = span.get_span_context()
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


def get_record(base: str, trace_id: str, span_id: str) -> dict[str, Any]:
    response = httpx.get(f"{base}/api/v1/records/{record_id_for(trace_id, span_id)}", timeout=10)
    assert response.status_code == 200, response.text
    return dict(response.json())


def _without_ids(record: dict[str, Any]) -> dict[str, Any]:
    different = {"id", "trace_id", "span_id", "received_at", "created_at"}
    out = {k: v for k, v in record.items() if k not in different}
    out["evaluations"] = [
        {k: v for k, v in e.items() if k not in {"id", "record_id", "created_at"}}
        for e in record.get("evaluations") or []
    ]
    return out


def test_the_grpc_exporter_stores_what_the_http_exporter_stores(
    grpc_collector: GrpcCollector, engine: Engine
) -> None:
    base, target, _ = grpc_collector
    over_grpc = trace(
        GrpcSpanExporter(endpoint=f"http://{target}", compression=grpc.Compression.Gzip)
    )
    over_http = trace(
        HttpSpanExporter(endpoint=f"{base}/v1/traces", compression=HttpCompression.Gzip)
    )
    via_grpc, via_http = get_record(base, *over_grpc), get_record(base, *over_http)
    assert (via_grpc["trace_id"], via_grpc["span_id"]) == over_grpc
    assert via_grpc["source"] == "otlp" and via_grpc["endpoint"] == "support-bot"
    assert via_grpc["messages"][-1]["content"] == "How do I reset my password?"
    assert via_grpc["response"] == "Settings, then Security."
    assert (via_grpc["input_tokens"], via_grpc["output_tokens"]) == (42, 7)
    assert [e["evaluator"] for e in via_grpc["evaluations"]] == ["helpfulness"]
    assert _without_ids(via_grpc) == _without_ids(via_http)
    assert count_rows(engine, Record) == 2 and count_rows(engine, Evaluation) == 2


def test_a_retried_export_is_stored_once_and_a_broken_span_is_named(
    grpc_collector: GrpcCollector, engine: Engine
) -> None:
    base, target, _ = grpc_collector
    good = make_span(GENAI_CURRENT, span_id=b"\x01" * 8)
    broken = make_span({**OPENINFERENCE, "llm.token_count.prompt": "lots"}, span_id=b"\x02" * 8)
    body = export_request([good, broken]).SerializeToString()
    for _ in range(2):  # the second: an exporter's retry
        answer = export(target, body)
        assert answer.partial_success.rejected_spans == 1
        assert answer.partial_success.error_message.startswith("span 0202020202020202: ")
    assert count_rows(engine, Record) == 1
    assert get_record(base, good.trace_id.hex(), good.span_id.hex())["model"] == "gpt-4o-mini"


def test_keys_travel_in_the_authorization_metadata(
    grpc_collector: GrpcCollector, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(auth, "CACHE_SECONDS", 0.0)  # keys made here count at once
    _, target, _ = grpc_collector
    body = export_request([make_span(GENAI_CURRENT)]).SerializeToString()
    assert export(target, body).partial_success.rejected_spans == 0  # no key yet: open
    with session_scope(make_sessionmaker(engine)) as session:
        ingest = create_key(session, name="app", scope="ingest")
        read = create_key(session, name="dashboard", scope="read")

    missing = refused(target, body)
    assert missing.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "an API key is required" in (missing.details() or "")
    unknown = refused(target, body, key="lsk_not_a_key")
    assert unknown.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "not valid" in (unknown.details() or "")
    weak = refused(target, body, key=read)
    assert weak.code() == grpc.StatusCode.PERMISSION_DENIED
    assert weak.details() == "this key has scope 'read'; the call needs 'ingest'"
    assert count_rows(engine, Record) == 1

    # The real exporter with the key in its headers, as OTEL_EXPORTER_OTLP_HEADERS gives it.
    exporter = GrpcSpanExporter(
        endpoint=f"http://{target}", headers={"authorization": f"Bearer {ingest}"}
    )
    trace(exporter)
    assert count_rows(engine, Record) == 2


def test_a_message_over_the_body_cap_is_refused_and_nothing_stored(
    make_grpc_collector: Callable[..., GrpcCollector], engine: Engine
) -> None:
    _, target, _ = make_grpc_collector(max_body_bytes=4096)
    spans = [
        make_span({**GENAI_CURRENT, "gen_ai.prompt.variable.pad": "a" * 3000}) for _ in range(4)
    ]
    body = export_request(spans).SerializeToString()
    assert len(body) > 4096 > len(gzip.compress(body))
    # grpc itself refuses it, before the message is read whole: "larger than max (N vs. 4096)"
    error = refused(target, body)
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "larger than max" in (error.details() or "") and "4096" in (error.details() or "")
    # the cap holds after decompression too
    error = refused(target, body, compression=grpc.Compression.Gzip)
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "larger than max" in (error.details() or "")
    assert count_rows(engine, Record) == 0
    small = export_request([make_span(GENAI_CURRENT)]).SerializeToString()
    assert len(small) < 4096
    export(target, small)
    assert count_rows(engine, Record) == 1


def test_bytes_that_are_no_export_request_are_invalid_argument(
    grpc_collector: GrpcCollector, engine: Engine
) -> None:
    _, target, _ = grpc_collector
    error = refused(target, b"\xff\xff\xff\xff not protobuf")
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (error.details() or "").startswith("body is not an ExportTraceServiceRequest")
    assert count_rows(engine, Record) == 0


def test_saturated_writer_is_resource_exhausted_with_retry_info(
    make_grpc_collector: Callable[..., GrpcCollector], engine: Engine, database_url: str
) -> None:
    _, target, app = make_grpc_collector(otlp_max_concurrent_writes=1)
    first = export_request([make_span(GENAI_CURRENT)]).SerializeToString()
    with one_export_writing(app, engine, database_url, lambda: export(target, first)) as results:
        second = export_request([make_span(OPENINFERENCE)]).SerializeToString()
        error = refused(target, second)
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert error.details() == "the writer is saturated; retry later"
        trailers = dict(error.trailing_metadata() or ())  # type: ignore[attr-defined]
        status = Status.FromString(trailers["grpc-status-details-bin"])
        info = RetryInfo()
        assert status.details[0].Unpack(info) and info.retry_delay.seconds == 2
        assert RetryInfo.FromString(trailers["google.rpc.retryinfo-bin"]) == info
    assert results[0].partial_success.rejected_spans == 0  # done once the store is free
    assert count_rows(engine, Record) == 1


def test_exports_past_the_inflight_cap_are_refused_at_once(
    make_grpc_collector: Callable[..., GrpcCollector], engine: Engine, database_url: str
) -> None:
    # room for one largest message in flight: the second export is refused by grpc itself
    _, target, app = make_grpc_collector(max_body_bytes=65536, max_inflight_body_bytes=65536)
    first = export_request([make_span(GENAI_CURRENT)]).SerializeToString()
    with one_export_writing(app, engine, database_url, lambda: export(target, first)):
        error = refused(target, export_request([make_span(OPENINFERENCE)]).SerializeToString())
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "concurrent rpc limit" in (error.details() or "").lower()
    assert count_rows(engine, Record) == 1


@pytest.mark.parametrize(
    ("body", "inflight_bytes", "inflight_requests", "cap"),
    [(16, 256, 512, 16), (16, 8, 512, 1), (1, 1000, 10, 10), (10, 25, 512, 2)],
)
def test_inflight_cap_fits_the_byte_budget(
    body: int, inflight_bytes: int, inflight_requests: int, cap: int
) -> None:
    settings = Settings(
        max_body_bytes=body,
        max_inflight_body_bytes=inflight_bytes,
        max_inflight_requests=inflight_requests,
    )
    assert inflight_cap(settings) == cap


@pytest.mark.parametrize("keys_readable", [True, False])
def test_store_refusing_the_write_is_unavailable(tmp_path: Path, keys_readable: bool) -> None:
    # keys_readable=False: not even the key check can read the store
    http_port, port = two_ports()
    url = broken_store(tmp_path)
    if not keys_readable:
        engine = make_engine(url)
        with engine.begin() as connection:
            connection.execute(text("DROP TABLE api_keys"))
        engine.dispose()
    settings = Settings(database_url=url, data_dir=tmp_path / "data", otlp_grpc_port=port)
    body = export_request([make_span(GENAI_CURRENT)]).SerializeToString()
    with serve_app(create_app(settings), port=http_port, ready="/docs"):
        error = refused(f"127.0.0.1:{port}", body)
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert error.details() == "the store is unavailable; retry later"


def test_the_default_port_is_4317(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LLMSCOPE_OTLP_GRPC_PORT")
    assert Settings().otlp_grpc_port == 4317


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store.db'}"


def _serve_env(tmp_path: Path, grpc_port: int) -> dict[str, str]:
    return {"LLMSCOPE_DATA_DIR": str(tmp_path / "data"), "LLMSCOPE_OTLP_GRPC_PORT": str(grpc_port)}


def test_serve_with_port_0_runs_no_grpc_receiver(tmp_path: Path, sqlite_url: str) -> None:
    http_port, port = two_ports()
    args = ["serve", "--database-url", sqlite_url, "--otlp-grpc-port", "0"]
    env = _serve_env(tmp_path, port)
    with cli_server(args, env=env, port=http_port) as base:  # the flag beats the env
        assert httpx.get(f"{base}/health", timeout=5).status_code == 200
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0  # nothing listens


def test_serve_refuses_a_taken_grpc_port_with_exit_2(tmp_path: Path, sqlite_url: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "llmscope", "serve", "--database-url", sqlite_url,
             "--port", str(free_port()), "--otlp-grpc-port", str(port)],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(f"llmscope serve: error: --otlp-grpc-port: port {port} on 127.0.0.1")


@pytest.mark.parametrize(
    ("args", "env", "needle"),
    [
        (["--otlp-grpc-port", "70000"], {}, "--otlp-grpc-port: 70000 is not a port number"),
        (["--otlp-grpc-port", "grpc"], {}, "--otlp-grpc-port: 'grpc' is not a port number"),
        ([], {"LLMSCOPE_OTLP_GRPC_PORT": "70000"}, "otlp_grpc_port"),
        (["--port", "15432", "--otlp-grpc-port", "15432"], {}, "15432 is the HTTP --port too"),
    ],
)
def test_a_bad_grpc_port_is_exit_2_with_one_line(
    args: list[str], env: dict[str, str], needle: str, sqlite_url: str
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "llmscope", "serve", "--database-url", sqlite_url, *args],
        capture_output=True, text=True, timeout=120, env={**os.environ, **env},
    )  # fmt: skip
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert needle in line


@contextmanager
def grpc_serve(tmp_path: Path, sqlite_url: str) -> Iterator[tuple[str, int, list[str]]]:
    """``llmscope serve --otlp-grpc-port FREE --workers 2`` until the block ends: (HTTP base URL,
    gRPC port, the lines it printed, there once the block has ended)."""
    http_port, port = two_ports()
    args = ["serve", "--database-url", sqlite_url, "--otlp-grpc-port", str(port), "--workers", "2"]
    proc = start_cli_server([*args, "--port", str(http_port)], {"LLMSCOPE_DATA_DIR": str(tmp_path)})
    output: list[str] = []
    try:
        wait_for_http(f"http://127.0.0.1:{http_port}/health", proc)
        yield f"http://127.0.0.1:{http_port}", port, output
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
        output += out.decode().splitlines()


def test_mlflow_tracing_default_exporter_reaches_serve_over_grpc(
    tmp_path: Path, sqlite_url: str
) -> None:
    """MLflow exports over gRPC when only OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set (its default
    protocol); two workers serve it on one port."""
    from tests.collector.gateway.fake_provider import FakeProvider, ServerThread

    with grpc_serve(tmp_path, sqlite_url) as (base, port, output):
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        env.update(
            PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
            OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=f"http://127.0.0.1:{port}",
            OTEL_SERVICE_NAME="support-bot",
            MLFLOW_TRACKING_URI="",
        )
        fake = ServerThread(FakeProvider().app, free_port()).start()
        try:
            done = subprocess.run(
                [sys.executable, "-m", "tests.collector.otlp.mlflow_app", fake.url],
                env=env, cwd=REPO, capture_output=True, text=True, timeout=180,
            )  # fmt: skip
        finally:
            fake.stop()
        assert done.returncode == 0, done.stderr[-3000:]
        records = _records(base, 3)
        # the CHAT_MODEL spans, as over HTTP: the LangChain span and the OpenAI span nested in it
        # are one call, one record
        assert len(records) == 3, done.stderr[-4000:]
        assert all(r["source"] == "otlp" and r["endpoint"] == "support-bot" for r in records)
        (claude,) = [r for r in records if r["provider"] == "anthropic"]
        assert claude["response"] == "It ships tomorrow."
        assert (claude["input_tokens"], claude["output_tokens"]) == (12, 5)
        for _ in range(4):  # a new connection each: the kernel may hand it to either worker
            body = export_request([make_span(GENAI_CURRENT)]).SerializeToString()
            export(f"127.0.0.1:{port}", body)
        assert len(httpx.get(f"{base}/api/v1/records", timeout=10).json()["records"]) == 7
    # both workers bound the port (SO_REUSEPORT) and said where
    running = f"OTLP/gRPC receiver running on 127.0.0.1:{port} (TraceService/Export)"
    assert sum(running in line for line in output) == 2, "\n".join(output)


def test_the_demo_collector_starts_while_4317_is_taken(
    tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from llmscope.app.demo.replay import start_collector

    monkeypatch.delenv("LLMSCOPE_OTLP_GRPC_PORT")  # the default, as a newcomer has it
    with socket.socket() as holder:
        try:
            holder.bind(("127.0.0.1", 4317))
            holder.listen()
        except OSError:
            pass  # taken already, by something else: the same situation
        collector = start_collector(sqlite_url, tmp_path / "demo", port=free_port())
        try:
            assert httpx.get(f"{collector.url}/health", timeout=5).status_code == 200
        finally:
            collector.stop()
