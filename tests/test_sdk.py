"""``llmscope.sdk.Client`` against a real collector: records and feedback arrive, and a collector
that is down neither slows nor breaks the app."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import threading
import time
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from llmscope.collector.app import create_app
from llmscope.config import Settings
from llmscope.db.models import Record
from llmscope.sdk import Client
from tests.collector.otlp.server import serve_app
from tests.conftest import count_rows, free_port


def _get(base: str, record_id: str) -> dict[str, Any]:
    response = httpx.get(f"{base}/api/v1/records/{record_id}", timeout=10)
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_records_and_feedback_arrive(settings: Settings, engine: Engine) -> None:
    with serve_app(create_app(settings)) as base:
        client = Client(base, batch_size=10, flush_interval=0.2)
        ids = [
            client.log(
                endpoint="chat",
                model="gpt-4o-mini",
                prompt=f"question {i}",
                response=f"answer {i}",
                input_tokens=i,
                latency_ms=100.0 + i,
                template={"name": "faq", "version": "2", "variables": {"n": i}},
                tags={"team": "support"},
            )
            for i in range(25)
        ]
        client.feedback(ids[3], "down", tags=["incorrect"], comment="wrong answer")
        client.feedback(ids[4], 0.75)
        assert client.flush(20)
        assert (client.sent, client.dropped) == (27, 0)
        record = _get(base, ids[3])
        assert (record["prompt"], record["response"]) == ("question 3", "answer 3")
        assert (record["model"], record["input_tokens"], record["latency_ms"]) == (
            "gpt-4o-mini",
            3,
            103.0,
        )
        assert record["template"]["variables"] == {"n": 3}
        assert record["tags"] == {"team": "support"} and record["source"] == "api"
        assert record["latest_feedback"]["value"] == "down"
        assert record["latest_feedback"]["comment"] == "wrong answer"
        assert _get(base, ids[4])["latest_feedback"]["value"] == 0.75
        assert count_rows(engine, Record) == 25
        client.close()


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
    client.feedback(record_id, "sideways")
    assert client.dropped == 3
    client.close(timeout=1.0)


def test_records_logged_while_the_collector_is_starting_arrive(settings: Settings) -> None:
    port = free_port()
    client = Client(f"http://127.0.0.1:{port}", max_retries=8, backoff=0.2, flush_interval=0.1)
    record_id = client.log(endpoint="chat", prompt="early bird", response="worm")
    time.sleep(0.5)  # the first tries fail: nothing listens yet
    with serve_app(create_app(settings), port=port) as base:
        assert client.flush(20)
        assert _get(base, record_id)["prompt"] == "early bird"
        assert client.dropped == 0
    client.close()


def test_pending_records_are_flushed_when_the_app_exits(settings: Settings, tmp_path: Any) -> None:
    port = free_port()
    script = textwrap.dedent(
        f"""
        from llmscope.sdk import Client
        client = Client("http://127.0.0.1:{port}", flush_interval=30)
        print(client.log(prompt="said just before exit", response="ok"))
        """
    )
    with serve_app(create_app(settings), port=port) as base:
        done = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        record_id = done.stdout.strip()
        assert _get(base, record_id)["prompt"] == "said just before exit"


def test_a_client_is_safe_to_share_between_threads(settings: Settings, engine: Engine) -> None:
    with serve_app(create_app(settings)) as base:
        client = Client(base, batch_size=50)
        threads = [
            threading.Thread(target=lambda: [client.log(prompt="t") for _ in range(100)])
            for _ in range(4)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert client.flush(20)
        assert count_rows(engine, Record) == 400
        client.close()


def test_a_refused_record_is_logged_without_its_content(caplog: pytest.LogCaptureFixture) -> None:
    from llmscope.sdk import Client

    client = Client("http://127.0.0.1:9", flush_interval=60)
    try:
        with caplog.at_level(logging.WARNING, logger="llmscope"):
            client.log(prompt="my card is 4111 1111 1111 1111", input_tokens=-5)
    finally:
        client.close(timeout=1)
    assert "input_tokens" in caplog.text
    assert "4111" not in caplog.text
