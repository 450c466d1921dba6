"""What the benchmark scripts share: fresh stores, a real collector process, free ports.

Run the scripts from the repository root (``python benchmarks/NAME.py``); they import this
module as a sibling.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from llmscope.db import make_engine, upgrade


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc), 0 elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds so far of a process and its living descendants (a ``serve --workers N``
    parent and its worker processes), Linux only: under a busy machine's load, the CPU a
    server spends is a steadier measure of its cost than the wall-clock rate."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(parent, []).append(int(stat.parent.name))
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        total += process_cpu_seconds(current)
        todo.extend(children.get(current, []))
    return total


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fresh_database(kind: str, pg_url: str | None, workdir: Path) -> tuple[str, Callable[[], None]]:
    """A new, empty, migrated store ("sqlite" file or "postgresql" database): URL and cleanup."""
    if kind == "sqlite":
        url = f"sqlite:///{workdir / f'{uuid.uuid4().hex}.db'}"

        def cleanup() -> None:
            return None

    else:
        assert pg_url, "a PostgreSQL benchmark needs --postgres-url"
        name = f"llmscope_bench_{uuid.uuid4().hex[:10]}"
        admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = make_url(pg_url).set(database=name).render_as_string(hide_password=False)

        def cleanup() -> None:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()

    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    return url, cleanup


@contextmanager
def collector(
    url: str,
    *,
    config: Path | None = None,
    workers: int = 1,
    data_dir: Path | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A real ``llmscope serve`` on a free loopback port: (base URL, process); stopped after."""
    port = free_port()
    command = [sys.executable, "-m", "llmscope", "serve", "--port", str(port),
               "--database-url", url, "--workers", str(workers)]  # fmt: skip
    if config is not None:
        command += ["--config", str(config)]
    # OTLP/gRPC off unless asked for: two benchmarks at once would both want port 4317.
    full_env = {**os.environ, "LLMSCOPE_OTLP_GRPC_PORT": "0", **(env or {})}
    if data_dir:
        full_env["LLMSCOPE_DATA_DIR"] = str(data_dir)
    proc = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=full_env
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, proc, 60, "the collector")
        yield base, proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=60)


def wait_healthy(
    base: str, proc: subprocess.Popen[bytes], seconds: float, what: str, poll: float = 0.1
) -> None:
    """Wait until ``base``'s ``/health`` answers 200; raise if ``proc`` exits or time runs out."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError(f"{what} did not start")
        time.sleep(poll)


def post_all(
    base: str, path: str, bodies: list[bytes], headers: dict[str, str], clients: int
) -> float:
    """POST every body from ``clients`` threads; seconds taken. 429/503 are retried after
    ``Retry-After``, as an OTLP exporter or the SDK would; any other failure raises."""
    errors: list[str] = []

    def worker(mine: list[bytes]) -> None:
        with httpx.Client(base_url=base, timeout=120) as http:
            for body in mine:
                response = http.post(path, content=body, headers=headers)
                while response.status_code in (429, 503):
                    time.sleep(float(response.headers.get("retry-after", "1")))
                    response = http.post(path, content=body, headers=headers)
                if response.status_code >= 300:
                    errors.append(f"{response.status_code} {response.text[:200]}")

    return split_among_threads(bodies, clients, worker, errors, "requests")


def split_among_threads(
    items: list[bytes],
    clients: int,
    worker: Callable[[list[bytes]], None],
    errors: list[str],
    what: str,
) -> float:
    """Run ``worker`` on ``clients`` threads, each with every ``clients``-th item; seconds
    taken. Raises when the workers appended to ``errors``."""
    threads = [threading.Thread(target=worker, args=(items[k::clients],)) for k in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise RuntimeError(f"{len(errors)} failed {what}, first: {errors[0]}")
    return elapsed


def count_records(url: str) -> int:
    engine = make_engine(url)
    with engine.connect() as conn:
        count = int(conn.scalar(text("SELECT count(*) FROM records")) or 0)
    engine.dispose()
    return count
