"""Nothing but the engine opens the store's SQLite file, in a real ``llmscope serve``.

Opening the store from Python inside the collector (say a candidate template read from the
store's path) and closing it releases every POSIX lock SQLite holds on the file; the next
connection then believes it is alone, checkpoints and deletes the WAL, and acknowledged records
can vanish. The collector runs under an audit hook (``tests.collector.store_audit``) that notes
every Python-level open of the store, its WAL or its shared memory, while it ingests, answers
gateway calls, runs an experiment and refuses a ``template-file`` aimed at the store.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from llmscope.db import make_engine, upgrade
from llmscope.db.models import Experiment
from tests.collector.store_audit import read
from tests.conftest import free_port, wait_for_http
from tests.evaluate.experiments.support import cluster_records, seed_run
from tests.evaluate.experiments.world import N, World, rows, world

ROOT = Path(__file__).resolve().parents[2]
FIX = "Answer {{question}} with the refund policy in force today."


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """A SQLite store (the file is the point here) with the experiments' seeded run."""
    path = tmp_path / "store.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    seed_run(f"sqlite:///{path}", {0: cluster_records(N)}, thumbs_down=["c0-0003"])
    return path


@contextmanager
def audited(store: Path, w: World, tmp_path: Path, name: str) -> Iterator[str]:
    """``llmscope serve --config`` under the audit hook until the block ends (graceful stop)."""
    port = free_port()
    with open(tmp_path / f"{name}.log", "wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.collector.store_audit",
                str(tmp_path / "audit.txt"),
                str(store),
                *["serve", "--config", str(w.config), "--database-url", w.url],
                *["--port", str(port)],
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env={**os.environ, "LLMSCOPE_DATA_DIR": str(tmp_path / "data")},
        )
        base = f"http://127.0.0.1:{port}"
        try:
            wait_for_http(f"{base}/health", proc)
            yield base
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def ingest(base: str, ids: list[str]) -> None:
    records = [
        {"id": i, "endpoint": "support-chat", "model": "gpt-4o-mini", "prompt": i, "response": "ok"}
        for i in ids
    ]
    got = httpx.post(f"{base}/api/v1/records", json={"records": records}, timeout=30)
    assert got.status_code == 201 and got.json()["ids"] == ids, got.text


def finished(base: str, experiment_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = httpx.get(f"{base}/api/v1/experiments/{experiment_id}/status", timeout=10).json()
        if now["status"] != "running":
            return dict(now)
        time.sleep(0.1)
    raise AssertionError(f"experiment {experiment_id} still running after {timeout}s")


def test_only_the_engine_opens_the_store_while_the_collector_ingests_and_experiments(
    store: Path, tmp_path: Path
) -> None:
    with world(f"sqlite:///{store}", tmp_path) as w, audited(store, w, tmp_path, "run") as base:
        ingest(base, [f"ack-{i:02d}" for i in range(20)])
        feedback = {"value": "down", "tags": ["incorrect"]}
        assert (
            httpx.post(f"{base}/api/v1/records/ack-03/feedback", json=feedback).status_code == 201
        )
        call = httpx.post(
            f"{base}/v1/chat/completions",
            json={"model": "support-chat", "messages": [{"role": "user", "content": "hi"}]},
            timeout=30,
        )
        assert call.status_code == 200, call.text
        body = {
            "cluster_id": 0,
            "sample": 4,
            "variants": ["template=support@2", {"template_text": FIX, "params": {"max_tokens": 9}}],
        }
        started = httpx.post(f"{base}/api/v1/experiments", json=body, timeout=30)
        assert started.status_code == 202, started.text
        assert finished(base, started.json()["id"])["status"] == "done"
        report = httpx.get(f"{base}/api/v1/experiments/{started.json()['id']}").json()
        assert [v["answers"] for v in report["variants"]] == [4, 4]
        listed = httpx.get(f"{base}/api/v1/records", params={"limit": 100}).json()["records"]
        assert {f"ack-{i:02d}" for i in range(20)} <= {r["id"] for r in listed}
    opened, connects = read(str(tmp_path / "audit.txt"))
    assert opened == []
    assert connects and all(c.startswith("connect engine ") for c in connects), connects


def test_a_template_file_aimed_at_the_store_is_refused_unread_and_no_record_is_lost(
    store: Path, tmp_path: Path
) -> None:
    """The issue's reproduction: records acknowledged, then ``template-file=<the store>``
    (and its WAL, and a file that does not exist), then a restart."""
    acked = [f"ack-{i:02d}" for i in range(15)]
    targets = [store, Path(f"{store}-wal"), Path("/proc/self/environ"), tmp_path / "missing.txt"]
    with world(f"sqlite:///{store}", tmp_path) as w:
        with audited(store, w, tmp_path, "first") as base:
            ingest(base, acked)
            answers = [
                httpx.post(
                    f"{base}/api/v1/experiments",
                    json={"cluster_id": 0, "sample": 2, "variants": [f"template-file={t}"]},
                    timeout=30,
                )
                for t in targets
            ]
            ingest(base, ["ack-after"])
        opened, _ = read(str(tmp_path / "audit.txt"))
        assert opened == []  # the collector never touched the store from Python
        assert {(a.status_code, a.text) for a in answers} == {
            (answers[0].status_code, answers[0].text)
        }
        assert answers[0].status_code == 400  # the same answer whether the path exists or not
        assert "template_text" in answers[0].json()["message"]
        assert str(store) not in answers[0].text
        assert w.provider.requests == [] and rows(w.url, Experiment) == []  # nothing started
        with audited(store, w, tmp_path, "restarted") as base:
            listed = httpx.get(f"{base}/api/v1/records", params={"limit": 100}).json()["records"]
    assert {*acked, "ack-after"} <= {r["id"] for r in listed}
    opened, _ = read(str(tmp_path / "audit.txt"))
    assert opened == []
