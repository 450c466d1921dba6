"""Shared fixtures: a migrated store on every backend under test, the app, a live server.

The same tests run on SQLite always and on PostgreSQL whenever ``LLMSCOPE_TEST_DATABASE_URL``
is set (each test session gets its own PostgreSQL database, dropped at the end).

The suite runs under pytest-xdist (``-n 4``), so nothing here is shared between workers: each
worker has its own PostgreSQL database (named with the worker's id), its own SQLite template
and temporary folders, and its own range of ports. A store is migrated once per worker and
session; a test gets a copy of that template (SQLite) or the emptied database (PostgreSQL),
which is 0.1-0.2 s cheaper per test than migrating a new store.
"""

from __future__ import annotations

import os
import random
import shutil
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
from hypothesis import settings as hypothesis_settings
from sqlalchemy import Engine, create_engine, func, select, text
from sqlalchemy.engine import make_url

from llmscope.config import Settings
from llmscope.db import make_engine, upgrade
from llmscope.db.models import Base

PG_URL = os.environ.get("LLMSCOPE_TEST_DATABASE_URL")
BACKENDS = ["sqlite"] + (["postgresql"] if PG_URL else [])
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
# "gw0", "gw1", ... under pytest-xdist; "main" in a plain pytest run.
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")

# Under xdist, one thread per worker for the numeric libraries (torch, BLAS, numba), in the
# worker and in the llmscope processes its tests start: four workers on two cores each spinning
# up a thread per core made an in-process analysis 20 times slower than in a serial run.
if WORKER != "main":
    for _variable in (
        "OMP_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "MKL_NUM_THREADS",
        "NUMBA_NUM_THREADS",
    ):
        os.environ.setdefault(_variable, "1")

# No collector a test starts, in this process (a lifespan) or as `llmscope serve`, listens for
# OTLP/gRPC on the default 4317: parallel tests would fight for it. Tests of OTLP/gRPC give a
# free port (``otlp_grpc_port=free_port()``, or LLMSCOPE_OTLP_GRPC_PORT in a child's env).
os.environ["LLMSCOPE_OTLP_GRPC_PORT"] = "0"

# Property tests draw the same examples on every run and keep no example database: the same
# answer on any machine, and no .hypothesis/ folder written by several workers at once.
hypothesis_settings.register_profile("llmscope", derandomize=True, database=None)
hypothesis_settings.load_profile("llmscope")

# Fixtures wider than a test that are worth building once: a test using one runs on the same
# xdist worker as the module's other tests with the same parameters (see below).
_SHARED_SCOPES = {"module", "class", "package"}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Markers the suite's selections rely on, and xdist groups.

    - ``browser`` and ``e2e`` tests are ``slow`` too, and a test using ``live_server`` is
      ``e2e``: ``-m "not slow"`` is the fast inner loop.
    - Under ``--dist loadgroup`` a module-scoped fixture (a demo run, a served dashboard, a
      seeded analysis) is built once: its tests form one group per parameter, so they run on
      one worker, while another parameter's group may run on another.
    """
    for item in items:
        _name_in_nodeid(item)
        if "live_server" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.e2e)
        if item.get_closest_marker("browser") or item.get_closest_marker("e2e"):
            item.add_marker(pytest.mark.slow)
        marked = item.get_closest_marker("xdist_group")
        group = (marked.args or [marked.kwargs.get("name", "default")])[0] if marked else None
        info = getattr(item, "_fixtureinfo", None)
        if group is None and info is not None:
            shared = sorted(
                name
                for name, defs in info.name2fixturedefs.items()
                if defs and defs[-1].scope in _SHARED_SCOPES
            )
            if shared:
                params = getattr(getattr(item, "callspec", None), "params", {})
                key = ",".join(f"{name}={params[name]}" for name in shared if name in params)
                group = item.nodeid.split("::")[0] + (f"-{key}" if key else "")
                item.add_marker(pytest.mark.xdist_group(group))
        if group is not None:
            _group_in_nodeid(item, str(group))
    if WORKER != "main":
        _heavy_modules_first(items)


def _group_in_nodeid(item: pytest.Item, group: str) -> None:
    """Put the group into the node id, where xdist's scheduler reads it (``...@group``).

    xdist 3.8 does this itself by setting ``item._nodeid``, which pytest 9 no longer reads (the
    id lives in ``item._id``): without this each test was its own unit, and the demo ran three
    times. Only under ``--dist loadgroup``; a no-op where xdist's own renaming works.
    """
    if not getattr(item.config.option, "loadgroup", False) or not hasattr(item, "_id"):
        return
    if item.nodeid.rfind("@") <= item.nodeid.rfind("]"):  # no group in it yet (xdist's test)
        item._id = type(item._id).parse(f"{item.nodeid}@{group}")


def _heavy_modules_first(items: list[pytest.Item]) -> None:
    """Under xdist, the modules with the largest share of slow tests go first (each module's
    order kept), so the longest (the demo runs for minutes) run beside the short ones, not
    alone at the end."""
    total: dict[str, int] = {}
    slow: dict[str, int] = {}
    for item in items:
        module = item.nodeid.split("::")[0]
        total[module] = total.get(module, 0) + 1
        slow[module] = slow.get(module, 0) + bool(item.get_closest_marker("slow"))

    def slow_share(item: pytest.Item) -> float:
        module = item.nodeid.split("::")[0]
        return slow[module] / total[module]

    items.sort(key=slow_share, reverse=True)  # stable: ties keep the collection order


def _name_in_nodeid(item: pytest.Item) -> None:
    """Give an item whose node id lacks its name (schemathesis' operations under pytest 9: all
    28 fuzzed operations share one id) the id pytest gives any test; xdist tells tests apart by
    id, and would run only one of them."""
    if item.parent is not None and not item.nodeid.endswith(f"::{item.name}"):
        item._id = item.parent.id.child(item.name)  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def _pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session (and xdist worker), migrated once."""
    assert PG_URL, "the postgresql backend needs LLMSCOPE_TEST_DATABASE_URL"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    name = f"llmscope_test_{WORKER}_{uuid.uuid4().hex[:12]}"
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


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite store migrated once for this session (and xdist worker): tests get copies."""
    path = tmp_path_factory.mktemp("template") / "store.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()  # the last connection's close checkpoints the WAL: the file is whole
    return path


def _truncate_all(url: str) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        names = ", ".join(t.name for t in Base.metadata.sorted_tables)
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty store: a new SQLite file, or the session's PostgreSQL database.

    Emptying PostgreSQL (TRUNCATE, 0.03 s) measured faster than a copy of a migrated template
    database (CREATE DATABASE ... TEMPLATE and DROP, 0.05 s); the SQLite copy takes 0.1 ms
    against 0.07 s for a migration.
    """
    if request.param == "sqlite":
        path = tmp_path / "store.db"
        shutil.copyfile(request.getfixturevalue("_sqlite_template"), path)
        yield f"sqlite:///{path}"
    else:
        url = request.getfixturevalue("_pg_database")
        _truncate_all(url)  # the previous test's rows; the last test's go with the database
        yield url


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


# Ports below the kernel's ephemeral range (32768-60999 by default), 1,000 per xdist worker:
# the kernel never hands them out for port 0, and two workers never pick the same one between
# free_port() and the server's bind. The draw has its own generator, so a test that seeds
# ``random`` sees the same numbers whatever ports it asked for.
_PORTS_PER_WORKER = 1000
_ports_random = random.Random()


def _worker_ports() -> range | None:
    if WORKER == "main":
        return range(15000, 15000 + _PORTS_PER_WORKER)
    index = int(WORKER.removeprefix("gw"))
    start = 16000 + index * _PORTS_PER_WORKER
    return range(start, start + _PORTS_PER_WORKER) if start < 32000 else None


def free_port() -> int:
    """A port nothing listens on, from this worker's own range (from a random point in it, so
    two test runs on one machine seldom try the same ones)."""
    ports = _worker_ports()
    if ports is None:  # more than 16 workers: the kernel's choice
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])
    offset = _ports_random.randrange(len(ports))
    for i in range(len(ports)):
        port = ports[(offset + i) % len(ports)]
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {ports.start}-{ports.stop - 1}")


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
    """``llmscope <args>`` in a child process, output captured (for end-to-end tests); OTLP/gRPC
    off unless ``env`` sets LLMSCOPE_OTLP_GRPC_PORT (see the top of this file)."""
    return subprocess.Popen(
        [sys.executable, "-m", "llmscope", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
    )


@contextmanager
def cli_server(
    args: list[str],
    env: dict[str, str] | None = None,
    stop_timeout: float = 15,
    port: int | None = None,
) -> Iterator[str]:
    """``llmscope <args> --port PORT`` (default: a free one) until the block ends (graceful
    stop); yields its URL."""
    port = port or free_port()
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
