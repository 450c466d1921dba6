"""Store down: gateway calls still succeed, records wait in the spool and all arrive later."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

import httpx
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from llmscope.config import Settings
from tests.collector.gateway.conftest import CONFIG, StartGateway, wait_for_records
from tests.collector.gateway.fake_provider import FakeProvider
from tests.conftest import free_port

CALLS = 40


class TcpProxy:
    """Forwards 127.0.0.1:port to a target address while running (a store that can vanish)."""

    def __init__(self, port: int, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", port))
        self.listener.settimeout(0.2)
        self.running = True
        self.sockets: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while self.running:
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.running = False
        self.thread.join(5)
        self.listener.close()
        for s in self.sockets:
            s.close()


@contextmanager
def store_outage(
    database_url: str, settings: Settings, *, unreachable: bool
) -> Iterator[tuple[Settings, Callable[[], None]]]:
    """Settings whose store is down until the yielded ``restore()`` is called.

    The records table is renamed away (inserts fail) and back; or, with ``unreachable`` on
    PostgreSQL, the database is reached through a port where nothing listens until a proxy to
    the real server is started on it.
    """
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" or not unreachable:
        from llmscope.db import make_engine

        engine = make_engine(database_url)
        with engine.begin() as conn:
            conn.execute(text("ALTER TABLE records RENAME TO records_away"))

        def restore() -> None:
            with engine.begin() as conn:
                conn.execute(text("ALTER TABLE records_away RENAME TO records"))

        yield settings, restore
        engine.dispose()
        return
    port = free_port()
    proxied = url.set(host="127.0.0.1", port=port).render_as_string(hide_password=False)
    proxies: list[TcpProxy] = []

    def start_proxy() -> None:
        proxies.append(TcpProxy(port, (url.host or "127.0.0.1", url.port or 5432)))

    try:
        yield settings.model_copy(update={"database_url": proxied}), start_proxy
    finally:
        for proxy in proxies:
            proxy.close()


def test_store_down_spools_and_replays_with_nothing_lost(
    settings: Settings,
    database_url: str,
    engine: Engine,
    fake: tuple[FakeProvider, str],
    start_gateway: StartGateway,
) -> None:
    _, fake_url = fake
    # The records table goes away (the API-key check still reads its own table).
    with store_outage(database_url, settings, unreachable=False) as (down_settings, restore):
        gw = start_gateway(down_settings, CONFIG.format(fake=fake_url))
        ids = []
        with httpx.Client() as client:
            for i in range(CALLS):
                answer = client.post(
                    f"{gw.url}/endpoints/demo/invocations",
                    json={"messages": [{"role": "user", "content": f"Where is order {i}?"}]},
                )
                assert answer.status_code == 200  # the user's call never notices
                ids.append(answer.headers["x-llmscope-record-id"])
        recorder = gw.app.state.recorder
        spool_dir = down_settings.data_dir / "spool"
        deadline = time.monotonic() + 20
        while recorder.spooled < CALLS and time.monotonic() < deadline:
            time.sleep(0.05)
        assert recorder.spooled == CALLS
        lines = sum(len(p.read_text().splitlines()) for p in spool_dir.glob("records-*"))
        assert lines == CALLS  # on disk, fsync'd, while the store is down
        restore()
        records = wait_for_records(engine, CALLS, timeout=20)
    assert sorted(r.id for r in records) == sorted(ids)
    assert all(r.source == "gateway" and r.provider == "offline" for r in records)
    assert not list(spool_dir.glob("records-*"))  # replayed and removed


def test_recorder_spools_while_store_unreachable_and_replays(
    settings: Settings, database_url: str, engine: Engine
) -> None:
    from llmscope.collector.ingest import Recorder
    from llmscope.db import make_engine, make_sessionmaker
    from llmscope.schema import RecordIn, record_row

    rows = [record_row(RecordIn(id=f"r-{i}", prompt=f"q {i}"), source="otlp") for i in range(25)]
    with store_outage(database_url, settings, unreachable=True) as (down_settings, restore):
        down_engine = make_engine(down_settings.database_url)
        recorder = Recorder(
            make_sessionmaker(down_engine), down_settings.data_dir / "spool", retry_interval=0.2
        )
        recorder.start()
        for row in rows:
            recorder.submit(row)
        deadline = time.monotonic() + 20
        while recorder.spooled < len(rows) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert recorder.spooled == len(rows) and recorder.stored == 0
        restore()
        stored = wait_for_records(engine, len(rows), timeout=20)
        recorder.stop()
        down_engine.dispose()
    assert sorted(r.id for r in stored) == sorted(row["id"] for row in rows)
    assert not recorder.spool_pending()
