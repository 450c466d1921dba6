"""The SDK (``llmscope_sdk``, re-exported as ``llmscope.sdk``) against a real collector: records
and feedback arrive, keys are sent, a refused record does not take its batch down, pending
records are flushed at exit; and every install puts ``./sdk`` before llmscope.

The SDK's tests that need no collector are in ``sdk/tests/``.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import threading
import time
import tomllib
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

import llmscope.schema
import llmscope.sdk
import llmscope_sdk
import llmscope_sdk.records
import llmscope_sdk.settings
from llmscope.app.server import create_app
from llmscope.collector.api import auth
from llmscope.config import Settings
from llmscope.db import make_sessionmaker, session_scope
from llmscope.db.models import Record
from llmscope.keys import create_key
from llmscope_sdk import Client
from tests.collector.otlp.server import serve_app
from tests.conftest import count_rows, free_port

ROOT = Path(__file__).resolve().parents[1]


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


def test_llmscope_sdk_is_the_light_sdk_under_its_first_name() -> None:
    assert llmscope.sdk.__all__ == llmscope_sdk.__all__ == ["Client", "configure_tracing"]
    assert llmscope.sdk.Client is llmscope_sdk.Client
    assert llmscope.sdk.configure_tracing is llmscope_sdk.configure_tracing
    # one definition of the wire shapes, on both sides of the wire
    for name in ("RecordIn", "RecordBatch", "FeedbackIn", "Message", "Template"):
        assert getattr(llmscope.schema, name) is getattr(llmscope_sdk.records, name), name


def test_the_sdk_and_the_server_document_the_same_two_settings() -> None:
    sdk_fields = llmscope_sdk.settings.ClientSettings.model_fields
    assert set(sdk_fields) == {"collector_url", "collector_api_key"}
    for name, field in sdk_fields.items():
        assert Settings.model_fields[name].default == field.default, name
    assert llmscope_sdk.settings.ClientSettings.model_config["env_prefix"] == "LLMSCOPE_"


def test_the_key_from_the_environment_is_sent(
    settings: Settings, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(auth, "CACHE_SECONDS", 0.0)
    with session_scope(make_sessionmaker(engine)) as session:
        key = create_key(session, name="app", scope="ingest")
    with serve_app(create_app(settings)) as base:
        monkeypatch.setenv("LLMSCOPE_COLLECTOR_URL", base)
        monkeypatch.setenv("LLMSCOPE_COLLECTOR_API_KEY", key)
        client = Client(flush_interval=0.1)
        client.feedback(client.log(prompt="with the key"), "up")
        assert client.flush(20)
        client.close()
        assert (client.sent, client.dropped) == (2, 0)

        wrong = Client(base, api_key="not-a-key", flush_interval=0.1)
        wrong.log(prompt="without a valid key")
        assert wrong.flush(20)
        wrong.close()
        assert (wrong.sent, wrong.dropped) == (0, 1)  # 401: not retried, counted
    assert count_rows(engine, Record) == 1


def test_a_record_the_collector_refuses_does_not_take_its_batch_down(
    settings: Settings, engine: Engine
) -> None:
    small = settings.model_copy(update={"max_body_bytes": 64 * 1024})
    with serve_app(create_app(small)) as base:
        client = Client(base, batch_size=3, flush_interval=60)
        kept = client.log(prompt="short")
        client.log(prompt="x" * 100_000)  # valid, but its body is over the collector's limit
        also_kept = client.log(prompt="short too")
        assert client.flush(20)
        client.close()
        assert (client.sent, client.dropped) == (2, 1)
        assert _get(base, kept)["prompt"] == "short"
        assert _get(base, also_kept)["prompt"] == "short too"
    assert count_rows(engine, Record) == 2


def test_every_install_puts_the_sdk_before_llmscope() -> None:
    """llmscope depends on llmscope-sdk, which is not on PyPI: ./sdk must be installed first."""
    sdk_version = tomllib.loads((ROOT / "sdk" / "pyproject.toml").read_text())["project"]["version"]
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert f"llmscope-sdk=={sdk_version}" in dependencies

    def in_order(text: str, *steps: str) -> bool:
        found = [text.find(step) for step in steps]
        return -1 not in found and found == sorted(found)

    ci = (ROOT / ".ci" / "run").read_text()
    assert in_order(ci, "pip_install torch==2.13.0", "pip_install ./sdk", 'pip_install ".[dev]"')
    readme = (ROOT / "README.md").read_text()
    (setup,) = [
        line for line in readme.splitlines() if re.search(r"pip install .*llmscope demo", line)
    ]
    assert in_order(setup, "pip install torch==2.13.0", "./sdk", '".[dev]"')
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    assert in_order(dockerfile, "COPY sdk ./sdk", "torch==2.13.0", "install --no-cache-dir ./sdk")
    assert in_order(dockerfile, "install --no-cache-dir ./sdk", "install --no-cache-dir .\n")
