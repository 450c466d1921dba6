"""Two collector processes on one store: both migrate at once, both write, nothing is doubled."""

from __future__ import annotations

import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from llmscope.db import make_engine
from llmscope.db.models import Record
from tests.conftest import BACKENDS, PG_URL, count_rows, free_port, start_cli_server, wait_for_http
from tests.factories import record

pytestmark = pytest.mark.e2e


@pytest.fixture(params=BACKENDS)
def empty_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A store with no tables yet, so both collectors race to migrate it."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'shared.db'}"
        return
    assert PG_URL
    name = f"llmscope_two_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_two_collectors_share_one_store(empty_store: str, tmp_path: Path) -> None:
    ports = [free_port(), free_port()]
    procs = [
        start_cli_server(
            ["serve", "--port", str(port), "--database-url", empty_store],
            env={"LLMSCOPE_DATA_DIR": str(tmp_path / f"data{port}")},
        )
        for port in ports
    ]
    try:
        for port, proc in zip(ports, procs, strict=True):
            wait_for_http(f"http://127.0.0.1:{port}/health", proc)

        # each client sends 20 batches of 50; batch k goes to both collectors (a retry that
        # landed on the other replica), so every id is sent twice and must be stored once
        batches = [[record(id=f"k{k}-{i}") for i in range(50)] for k in range(20)]
        failures: list[str] = []

        def send(port: int) -> None:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
                for batch in batches:
                    answer = http.post("/api/v1/records", json={"records": batch})
                    if answer.status_code != 201:
                        failures.append(f"{port}: {answer.status_code} {answer.text[:200]}")

        threads = [threading.Thread(target=send, args=(port,)) for port in ports]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert failures == []
        engine = make_engine(empty_store)
        assert count_rows(engine, Record) == 1000
        engine.dispose()
        # a record written through one collector is read through the other
        other = httpx.get(f"http://127.0.0.1:{ports[1]}/api/v1/records/k0-0", timeout=10)
        assert other.status_code == 200 and other.json()["id"] == "k0-0"
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
