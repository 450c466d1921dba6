"""Nothing acknowledged is lost: SIGKILL of the collector mid-load, PostgreSQL stopped mid-load.

Clients send batches as fast as they can and remember every id the collector acknowledged
(a 201). Then the collector is killed, or its PostgreSQL is stopped and started again; every
acknowledged id must be in the store afterwards. The PostgreSQL test runs its own private
cluster (initdb from the installed server binaries), so stopping it disturbs nothing else.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from llmscope.db import make_engine
from llmscope.db.models import Record
from tests.conftest import free_port, start_cli_server, wait_for_http
from tests.factories import record

pytestmark = pytest.mark.e2e

PG_BIN = sorted(glob.glob("/usr/lib/postgresql/*/bin"))


class Load:
    """Client threads posting batches of fresh ids until stopped; acknowledged ids kept."""

    def __init__(self, base: str, threads: int = 3, batch: int = 20) -> None:
        self.base = base
        self.batch = batch
        self.acked: set[str] = set()
        self.statuses: dict[int, int] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(threads)
        ]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def _run(self, worker: int) -> None:
        n = 0
        deadline = time.monotonic() + 120  # bounded, whatever happens
        with httpx.Client(base_url=self.base, timeout=10) as http:
            while not self._stop.is_set() and time.monotonic() < deadline:
                ids = [f"w{worker}-{n}-{i}" for i in range(self.batch)]
                n += 1
                try:
                    answer = http.post(
                        "/api/v1/records", json={"records": [record(id=i) for i in ids]}
                    )
                except httpx.HTTPError:
                    time.sleep(0.05)
                    continue
                with self._lock:
                    self.statuses[answer.status_code] = self.statuses.get(answer.status_code, 0) + 1
                    if answer.status_code == 201:
                        self.acked.update(answer.json()["ids"])
                if answer.status_code != 201:
                    time.sleep(0.05)

    def wait_for(self, count: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while len(self.acked) < count:
            assert time.monotonic() < deadline, f"only {len(self.acked)} acknowledged"
            time.sleep(0.05)


def stored_ids(url: str) -> set[str]:
    engine = make_engine(url)
    with engine.connect() as conn:
        ids = set(conn.scalars(select(Record.id)))
    engine.dispose()
    return ids


def serve(url: str, port: int, data_dir: Path) -> subprocess.Popen[bytes]:
    proc = start_cli_server(
        ["serve", "--port", str(port), "--database-url", url],
        env={"LLMSCOPE_DATA_DIR": str(data_dir)},
    )
    wait_for_http(f"http://127.0.0.1:{port}/health", proc)
    return proc


def test_sigkill_mid_load_loses_no_acknowledged_record(database_url: str, tmp_path: Path) -> None:
    port = free_port()
    proc = serve(database_url, port, tmp_path)
    try:
        with Load(f"http://127.0.0.1:{port}") as load:
            load.wait_for(400)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
            acked = set(load.acked)
        proc = serve(database_url, port, tmp_path)
        missing = acked - stored_ids(database_url)
        assert not missing, f"{len(missing)} acknowledged records lost, e.g. {sorted(missing)[:3]}"
        assert len(acked) >= 400
    finally:
        proc.kill()
        proc.wait(timeout=10)


@pytest.fixture
def private_postgres() -> Iterator[tuple[str, Path]]:
    """A PostgreSQL cluster of this test's own: (URL, data directory)."""
    assert PG_BIN, "the PostgreSQL server binaries are not installed"
    bin_dir = PG_BIN[-1]
    root = Path(tempfile.mkdtemp(prefix="llmscope-pg-"))
    data = root / "data"
    shutil.chown(root, "postgres")
    port = free_port()
    as_postgres = ["runuser", "-u", "postgres", "--"]
    subprocess.run(
        [*as_postgres, f"{bin_dir}/initdb", "-D", str(data), "-A", "trust", "-U", "postgres"],
        check=True,
        capture_output=True,
    )
    ctl = [*as_postgres, f"{bin_dir}/pg_ctl", "-D", str(data), "-l", str(root / "log")]
    opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=on"
    subprocess.run([*ctl, "-o", opts, "-w", "start"], check=True, capture_output=True)
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres", root
    finally:
        subprocess.run([*ctl, "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def _pg_ctl(root: Path, action: str, port: int) -> None:
    ctl = [
        "runuser", "-u", "postgres", "--", f"{PG_BIN[-1]}/pg_ctl", "-D", str(root / "data"),
        "-l", str(root / "log"), "-w",
    ]  # fmt: skip
    if action == "start":
        ctl += ["-o", f"-p {port} -k {root} -c listen_addresses=127.0.0.1"]
    else:
        ctl += ["-m", "fast"]
    subprocess.run([*ctl, action], check=True, capture_output=True)


def test_postgres_down_mid_load_answers_503_and_loses_nothing(
    private_postgres: tuple[str, Path], tmp_path: Path
) -> None:
    url, root = private_postgres
    pg_port = int(url.rsplit(":", 1)[1].split("/", 1)[0])
    port = free_port()
    proc = serve(url, port, tmp_path)
    try:
        with Load(f"http://127.0.0.1:{port}") as load:
            load.wait_for(200)
            _pg_ctl(root, "stop", pg_port)
            down_since = len(load.acked)
            time.sleep(2.0)
            assert httpx.get(f"http://127.0.0.1:{port}/health").status_code == 503
            during = len(load.acked)
            _pg_ctl(root, "start", pg_port)
            load.wait_for(during + 200)  # ingest recovers by itself
            acked = set(load.acked)
            statuses = dict(load.statuses)
        # while the store was down nothing was acknowledged (allow the batches in flight)
        assert during - down_since <= 3 * load.batch
        assert statuses.get(503, 0) > 0, statuses
        assert set(statuses) <= {201, 503}, statuses
        missing = acked - stored_ids(url)
        assert not missing, f"{len(missing)} acknowledged records lost"
    finally:
        proc.terminate()
        proc.wait(timeout=20)


GATEWAY_YAML = """
endpoints:
  - name: chat
    endpoint_type: llm/v1/chat
    model: {provider: offline, name: support-bot, config: {latency_ms: 5}}
"""


def test_sigkill_mid_gateway_load_loses_no_answered_call(database_url: str, tmp_path: Path) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text(GATEWAY_YAML)
    port = free_port()
    args = ["serve", "--port", str(port), "--database-url", database_url, "--config", str(config)]
    env = {"LLMSCOPE_DATA_DIR": str(tmp_path / "data")}
    proc = start_cli_server(args, env=env)
    wait_for_http(f"http://127.0.0.1:{port}/health", proc)
    answered: set[str] = set()
    stop = threading.Event()

    def call(worker: int) -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            for n in range(5_000):  # bounded
                if stop.is_set():
                    return
                body = {
                    "model": "chat",
                    "messages": [{"role": "user", "content": f"q {worker}-{n}"}],
                }
                try:
                    answer = http.post("/v1/chat/completions", json=body)
                except httpx.HTTPError:
                    return
                if answer.status_code == 200:
                    answered.add(answer.headers["x-llmscope-record-id"])

    threads = [threading.Thread(target=call, args=(w,), daemon=True) for w in range(6)]
    try:
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 60
        while len(answered) < 300 and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)  # records still queued in memory die with it
        proc.wait(timeout=10)
        stop.set()
        for thread in threads:
            thread.join(timeout=20)
        assert len(answered) >= 300

        proc = start_cli_server(args, env=env)  # replays the dead process's journal
        wait_for_http(f"http://127.0.0.1:{port}/health", proc)
        deadline = time.monotonic() + 30
        while (missing := answered - stored_ids(database_url)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not missing, f"{len(missing)} answered calls lost, e.g. {sorted(missing)[:3]}"
        while list((tmp_path / "data").rglob("journal-*")) and time.monotonic() < deadline:
            time.sleep(0.2)
        leftovers = [p.name for p in (tmp_path / "data").rglob("journal-*")]
        assert all(str(proc.pid) in name for name in leftovers), leftovers
    finally:
        stop.set()
        proc.kill()
        proc.wait(timeout=10)
