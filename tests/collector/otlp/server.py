"""A collector app served by uvicorn in a background thread, on loopback (for tests)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI

from tests.conftest import free_port, wait_for_http


@contextmanager
def serve_app(app: FastAPI, port: int | None = None, ready: str = "/health") -> Iterator[str]:
    """``app`` on 127.0.0.1 in a background thread; yields its base URL once ``ready`` answers."""
    port = port or free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{base}{ready}", timeout=20)
        yield base
    finally:
        server.should_exit = True
        thread.join(10)
