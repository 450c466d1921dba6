"""MLflow's own traces: the real mlflow-skinny (autolog and manual spans) exporting over OTLP.

MLflow sends spans to ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` when it is set; pointed at a
running collector, its CHAT_MODEL spans become records (OpenAI, LangChain and Anthropic message
formats) and its AGENT/chain spans are skipped.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.collector.gateway.fake_provider import FakeProvider, ServerThread
from tests.conftest import free_port

REPO = Path(__file__).resolve().parents[3]


def _records(base: str, count: int, timeout: float = 20) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        found = httpx.get(f"{base}/api/v1/records?limit=50", timeout=10).json()["records"]
        if len(found) >= count or time.monotonic() > deadline:
            return list(reversed(found))  # oldest first
        time.sleep(0.2)


def test_mlflow_autolog_and_spans_over_otlp_become_records(live_server: str) -> None:
    fake = ServerThread(FakeProvider().app, free_port()).start()
    try:
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{live_server}/v1/traces",
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
            "OTEL_SERVICE_NAME": "support-bot",
            "MLFLOW_TRACKING_URI": "",
        }
        done = subprocess.run(
            [sys.executable, "-m", "tests.collector.otlp.mlflow_app", fake.url],
            env=env, cwd=REPO, capture_output=True, text=True, timeout=180,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
    finally:
        fake.stop()
    # four CHAT_MODEL spans, three calls: LangChain's ChatOpenAI span wraps the autologged
    # OpenAI span of the same call, and the two are one record; the AGENT span is skipped
    records = _records(live_server, 3)
    time.sleep(1)  # were a fourth record listed, it would be by now
    records = _records(live_server, 3)
    assert len(records) == 3, done.stderr[-4000:]
    assert all(r["source"] == "otlp" and r["endpoint"] == "support-bot" for r in records)

    (tools_call,) = [r for r in records if r["messages"][0]["content"] == "Weather in Paris?"]
    assert (tools_call["provider"], tools_call["model"]) == ("openai", "gpt-4o-mini")
    assert (tools_call["input_tokens"], tools_call["output_tokens"]) == (20, 9)
    assert tools_call["status"] == "ok" and tools_call["response"] is None  # a tool call
    assert tools_call["tags"]["mlflow.request_id"].startswith("tr-")
    assert tools_call["tools"] == ["get_weather"]
    assert [c["name"] for c in tools_call["tool_calls"]] == ["get_weather"]
    assert json.loads(tools_call["tool_calls"][0]["arguments"]) == {"query": "Weather in Paris?"}

    (reset,) = [r for r in records if r["messages"][-1]["content"] == "How do I reset my password?"]
    # the OpenAI span (provider level) survives; the LangChain span is kept as its link
    assert reset["response"] == "Echo: How do I reset my password?"
    assert reset["messages"][-1]["role"] == "user"
    assert reset["provider"] == "openai" and reset["input_tokens"] is not None
    (link,) = reset["links"]
    outer = httpx.get(f"{live_server}/api/v1/records/{link}", timeout=10).json()
    assert outer["merged_into"] == reset["id"] and outer["trace_id"] == reset["trace_id"]
    assert reset["parent_span_id"] == outer["span_id"]

    (claude,) = [r for r in records if r["provider"] == "anthropic"]
    assert claude["model"] == "claude-3-5-haiku-latest"
    assert claude["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Where is my order?"},
    ]
    assert claude["response"] == "It ships tomorrow."
    assert (claude["input_tokens"], claude["output_tokens"]) == (12, 5)
    assert claude["template"]["name"] == "order-status"
    assert claude["template"]["version"] == "3"
    assert (claude["session_id"], claude["user_id"]) == ("sess-43", "user-8")
    assert claude["latency_ms"] is not None and claude["trace_id"]
