"""Fixtures for the OTLP tests: a collector app served by uvicorn in a thread, on loopback."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi import FastAPI

from llmscope.app.server import create_app
from llmscope.config import Settings
from tests.collector.otlp.server import serve_app


@pytest.fixture
def collector(settings: Settings) -> Iterator[tuple[str, FastAPI]]:
    """A collector (default settings on the test store) served in a thread: (URL, app)."""
    app = create_app(settings)
    with serve_app(app) as base:
        yield base, app


@pytest.fixture
def make_collector(settings: Settings) -> Iterator[Callable[..., tuple[str, FastAPI]]]:
    """Serve a collector with some settings changed: ``make_collector(max_body_bytes=100)``."""
    stack: list[Any] = []

    def make(**changes: Any) -> tuple[str, FastAPI]:
        app = create_app(settings.model_copy(update=changes))
        served = serve_app(app)
        base = served.__enter__()
        stack.append(served)
        return base, app

    yield make
    for served in reversed(stack):
        served.__exit__(None, None, None)
