"""``Client`` and ``configure_tracing`` on their own: bad input, a collector that is down or
busy, where the settings come from, OpenTelemetry missing or present.

Needs only the SDK (with its ``otel`` extra) and pytest. The tests against a real llmscope
collector are in the main suite, ``tests/test_sdk.py``.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from llmscope_sdk import Client, configure_tracing
from llmscope_sdk.settings import DEFAULT_URL, resolve

SRC = Path(__file__).resolve().parents[1] / "src"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def ingest_server(statuses: list[int]) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A loopback HTTP server answering the ingest paths with ``statuses`` in turn (then 201),
    ``Retry-After: 0`` on a 503; yields its URL and the requests it saw (path, headers in lower
    case, body: parsed JSON, else bytes)."""
    seen: list[dict[str, Any]] = []
    answers = iter(statuses)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers["Content-Length"]))
            is_json = self.headers["Content-Type"] == "application/json"
            body = json.loads(raw) if is_json else raw
            seen.append(
                {
                    "path": self.path,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "body": body,
                }
            )
            status = next(answers, 201)
            self.send_response(status)
            if status == 503:
                self.send_header("Retry-After", "0")
            payload = b'{"ids": []}' if status == 201 else b'{"detail": "no"}'
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def test_a_collector_that_is_down_neither_slows_nor_breaks_the_app() -> None:
    client = Client(f"http://127.0.0.1:{free_port()}", max_buffer=50, max_retries=2, backoff=0.05)
    started = time.monotonic()
    ids = [client.log(prompt=f"p{i}", response="r") for i in range(500)]
    client.feedback(ids[0], "up")
    assert time.monotonic() - started < 1.0  # 501 calls, none waits for the network
    assert len(set(ids)) == 500
    started = time.monotonic()
    client.close(timeout=2.0)
    assert time.monotonic() - started < 4.0
    assert client.dropped >= 450  # bounded buffer: the oldest went first, all counted
    assert client.sent == 0


def test_bad_input_is_dropped_with_a_warning_not_raised() -> None:
    client = Client(f"http://127.0.0.1:{free_port()}", max_retries=0)
    record_id = client.log(input_tokens=-5)
    client.log(no_such_field=1)
    client.feedback(record_id, "sideways")  # type: ignore[arg-type]
    assert client.dropped == 3
    client.close(timeout=1.0)


def test_a_refused_record_is_logged_without_its_content(caplog: pytest.LogCaptureFixture) -> None:
    client = Client("http://127.0.0.1:9", flush_interval=60)
    try:
        with caplog.at_level(logging.WARNING, logger="llmscope"):
            client.log(prompt="my card is 4111 1111 1111 1111", input_tokens=-5)
    finally:
        client.close(timeout=1)
    assert "input_tokens" in caplog.text
    assert "4111" not in caplog.text


def test_a_busy_collector_is_retried_and_the_key_is_sent() -> None:
    with ingest_server([503, 503]) as (url, seen):
        client = Client(url, api_key="k-123", backoff=0.01, flush_interval=0.05)
        record_id = client.log(endpoint="chat", prompt="hello", input_tokens=3)
        client.feedback(record_id, 1.0, tags=["good"])
        assert client.flush(10)
        client.close()
    assert (client.sent, client.dropped) == (2, 0)
    assert [r["path"] for r in seen] == ["/api/v1/records"] * 3 + [
        f"/api/v1/records/{record_id}/feedback"
    ]
    assert {r["headers"]["authorization"] for r in seen} == {"Bearer k-123"}
    (record,) = seen[-2]["body"]["records"]
    assert (record["id"], record["prompt"], record["input_tokens"]) == (record_id, "hello", 3)
    assert "response" not in record  # unset fields are not sent
    assert seen[-1]["body"] == {"value": 1.0, "tags": ["good"], "comment": None, "source": "user"}


def test_one_refused_record_does_not_take_its_batch_down() -> None:
    # the batch of three is refused (422), then each record alone: the second one again
    with ingest_server([422, 201, 422, 201]) as (url, seen):
        client = Client(url, batch_size=3, flush_interval=60)
        ids = [client.log(prompt=f"p{i}") for i in range(3)]
        assert client.flush(10)
        client.close()
    assert (client.sent, client.dropped) == (2, 1)
    assert [len(r["body"]["records"]) for r in seen] == [3, 1, 1, 1]
    assert [r["body"]["records"][0]["id"] for r in seen[1:]] == ids


def test_settings_come_from_the_environment_then_a_dotenv_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("LLMSCOPE_COLLECTOR_URL", "LLMSCOPE_COLLECTOR_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    assert (resolve(None, None).url, resolve(None, None).headers) == (DEFAULT_URL, None)

    (tmp_path / ".env").write_text("LLMSCOPE_COLLECTOR_URL=http://from-dotenv:5000/\n")
    assert resolve(None, None).url == "http://from-dotenv:5000"

    monkeypatch.setenv("LLMSCOPE_COLLECTOR_URL", "http://from-env:7000")
    monkeypatch.setenv("LLMSCOPE_COLLECTOR_API_KEY", "env-key")
    monkeypatch.setenv("LLMSCOPE_REDACT_PII", "not-a-bool")  # other settings are not the SDK's
    target = resolve(None, None)
    assert (target.url, target.headers) == (
        "http://from-env:7000",
        {"Authorization": "Bearer env-key"},
    )
    # what the caller passes wins
    target = resolve("http://given:1/", "given-key")
    assert (target.url, target.headers) == ("http://given:1", {"Authorization": "Bearer given-key"})
    client = Client(max_retries=0)
    try:
        assert client.url == "http://from-env:7000"
    finally:
        client.close(timeout=1)


def test_configure_tracing_names_the_extra_when_opentelemetry_is_missing() -> None:
    script = textwrap.dedent(
        """
        import sys
        sys.modules["opentelemetry"] = None  # as if it were not installed
        from llmscope_sdk import configure_tracing
        try:
            configure_tracing("http://127.0.0.1:9")
        except ImportError as exc:
            print(exc)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=env
    )
    assert done.returncode == 0, done.stderr
    assert 'pip install "llmscope-sdk[otel]"' in done.stdout


def test_configure_tracing_exports_spans_to_the_collector_with_the_key() -> None:
    from opentelemetry import trace
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    before = trace.get_tracer_provider()
    with ingest_server([]) as (url, seen):
        provider = configure_tracing(
            url + "/", api_key="k-9", service_name="support-bot", set_global=False
        )
        assert trace.get_tracer_provider() is before  # set_global=False
        provider.get_tracer("tests").start_span("chat gpt-4o-mini").end()
        assert provider.force_flush(10_000)
        provider.shutdown()
    (export,) = seen
    assert export["path"] == "/v1/traces"
    headers = export["headers"]
    assert headers["authorization"] == "Bearer k-9"
    assert (headers["content-type"], headers["content-encoding"]) == (
        "application/x-protobuf",
        "gzip",
    )
    request = ExportTraceServiceRequest.FromString(gzip.decompress(export["body"]))
    (resource_spans,) = request.resource_spans
    attributes = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
    assert attributes["service.name"] == "support-bot"
    assert [s.name for s in resource_spans.scope_spans[0].spans] == ["chat gpt-4o-mini"]
