"""Shared fixtures: a migrated store on every backend under test, the app, a live server.

The same tests run on SQLite always and on PostgreSQL whenever ``LLMSCOPE_TEST_DATABASE_URL``
is set (each test session gets its own PostgreSQL database, dropped at the end).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, create_engine, func, select, text
from sqlalchemy.engine import make_url

from llmscope.config import Settings
from llmscope.db import make_engine, upgrade
from llmscope.db.models import Base

PG_URL = os.environ.get("LLMSCOPE_TEST_DATABASE_URL")
BACKENDS = ["sqlite"] + (["postgresql"] if PG_URL else [])
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def _pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, migrated once."""
    assert PG_URL, "the postgresql backend needs LLMSCOPE_TEST_DATABASE_URL"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    name = f"llmscope_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _truncate_all(url: str) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        names = ", ".join(t.name for t in Base.metadata.sorted_tables)
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty store: a new SQLite file, or the session's PostgreSQL database."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'store.db'}"
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        yield url
    else:
        url = request.getfixturevalue("_pg_database")
        _truncate_all(url)
        yield url
        _truncate_all(url)


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(database_url=database_url, data_dir=tmp_path / "data")


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def count_rows(engine: Engine, model: type) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(model)) or 0)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_http(
    url: str, proc: subprocess.Popen[bytes] | None = None, timeout: float = 60
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            out = proc.stdout.read().decode() if proc.stdout else ""
            raise RuntimeError(f"server exited with {proc.returncode}:\n{out}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


def start_cli_server(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """``llmscope <args>`` in a child process, output captured (for end-to-end tests)."""
    return subprocess.Popen(
        [sys.executable, "-m", "llmscope", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
    )


@contextmanager
def cli_server(
    args: list[str], env: dict[str, str] | None = None, stop_timeout: float = 15
) -> Iterator[str]:
    """``llmscope <args> --port FREE`` until the block ends (graceful stop); yields its URL."""
    port = free_port()
    proc = start_cli_server([*args, "--port", str(port)], env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{base}/health", proc)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=stop_timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def live_server(settings: Settings) -> Iterator[str]:
    """A real ``llmscope serve`` process on a free port; yields its base URL."""
    with cli_server(
        ["serve", "--database-url", settings.database_url],
        env={"LLMSCOPE_DATA_DIR": str(settings.data_dir)},
    ) as base:
        yield base
