"""Fixtures for the gateway: a fake provider server and a collector with a gateway config."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from llmscope.app.server import create_app
from llmscope.config import Settings
from llmscope.db import make_engine
from llmscope.db.models import Record
from tests.collector.gateway.fake_provider import (
    ANTHROPIC_KEY,
    OPENAI_KEY,
    FakeProvider,
    ServerThread,
)
from tests.conftest import free_port

CONFIG = """
endpoints:
  - name: chat
    endpoint_type: llm/v1/chat
    model:
      provider: openai
      name: gpt-4o-mini
      config:
        openai_api_key: $FAKE_OPENAI_KEY
        openai_api_base: {fake}/v1
  - name: completions
    endpoint_type: llm/v1/completions
    model:
      provider: openai
      name: gpt-3.5-turbo-instruct
      config: {{openai_api_key: $FAKE_OPENAI_KEY, openai_api_base: "{fake}/v1"}}
  - name: embeddings
    endpoint_type: llm/v1/embeddings
    model:
      provider: openai
      name: text-embedding-3-small
      config: {{openai_api_key: $FAKE_OPENAI_KEY, openai_api_base: "{fake}/v1"}}
  - name: claude
    endpoint_type: llm/v1/chat
    model:
      provider: anthropic
      name: claude-3-5-haiku-latest
      config: {{anthropic_api_key: $FAKE_ANTHROPIC_KEY, anthropic_api_base: "{fake}/anthropic/v1"}}
  - name: claude-completions
    endpoint_type: llm/v1/completions
    model:
      provider: anthropic
      name: claude-3-5-haiku-latest
      config: {{anthropic_api_key: $FAKE_ANTHROPIC_KEY, anthropic_api_base: "{fake}/anthropic/v1"}}
  - name: demo
    endpoint_type: llm/v1/chat
    model: {{provider: offline, name: support-bot, config: {{latency_ms: 5}}}}
  - name: quiet
    endpoint_type: llm/v1/chat
    log_content: false
    model:
      provider: openai
      name: gpt-4o-mini
      config: {{openai_api_key: $FAKE_OPENAI_KEY, openai_api_base: "{fake}/v1"}}
  - name: limited
    endpoint_type: llm/v1/chat
    limit: {{calls: 2, renewal_period: minute}}
    model: {{provider: offline, name: support-bot, config: {{latency_ms: 0}}}}
prompts:
  - name: support
    version: 2
    text: "Answer the customer's question: {{{{question}}}}"
"""


@dataclass
class Running:
    url: str
    app: FastAPI
    config_path: Path
    engine: Engine


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[FakeProvider, str]]:
    monkeypatch.setenv("FAKE_OPENAI_KEY", OPENAI_KEY)
    monkeypatch.setenv("FAKE_ANTHROPIC_KEY", ANTHROPIC_KEY)
    provider = FakeProvider()
    server = ServerThread(provider.app, free_port()).start()
    try:
        yield provider, server.url
    finally:
        server.stop()


@pytest.fixture
def sqlite_settings(tmp_path: Path) -> Settings:
    """A store for tests where the backend does not matter (protocol shapes, reload)."""
    from llmscope.db import upgrade

    url = f"sqlite:///{tmp_path / 'gw.db'}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    return Settings(database_url=url, data_dir=tmp_path / "data")


StartGateway = Callable[..., Running]


@pytest.fixture
def start_gateway(tmp_path: Path) -> Iterator[StartGateway]:
    """Start a collector with a gateway config (text) in a thread; stopped at the end."""
    servers: list[tuple[ServerThread, Engine]] = []

    def start(settings: Settings, config_text: str, **updates: Any) -> Running:
        path = tmp_path / f"gateway-{len(servers)}.yaml"
        path.write_text(config_text)
        settings = settings.model_copy(update={"gateway_config": path, **updates})
        app = create_app(settings)
        app.state.gateway.reload_interval = 0.1
        server = ServerThread(app, free_port()).start()
        engine = make_engine(settings.database_url)
        servers.append((server, engine))
        return Running(server.url, app, path, engine)

    yield start
    for server, engine in servers:
        server.stop()
        engine.dispose()


def wait_for_records(engine: Engine, count: int, timeout: float = 10) -> list[Record]:
    """The stored records once there are ``count`` of them (oldest first)."""
    deadline = time.monotonic() + timeout
    while True:
        with Session(engine) as session:
            rows = list(session.scalars(select(Record).order_by(Record.timestamp)))
        if len(rows) >= count or time.monotonic() > deadline:
            assert len(rows) == count, f"expected {count} records, found {len(rows)}"
            return rows
        time.sleep(0.05)
