"""Online judging in ``llmscope serve``: off the request path, restart-safe, never judged twice."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from llmscope.app.server import create_app
from llmscope.config import Settings
from llmscope.db import make_engine, make_sessionmaker, session_scope
from llmscope.db.models import Evaluation
from llmscope.evaluate.evaluations import store
from tests.analysis.http_fakes import fake_llm
from tests.conftest import free_port, start_cli_server, wait_for_http
from tests.evaluate.evaluations.support import (
    JUDGE,
    garbage,
    grade,
    seed,
    slow_grade,
    support_records,
    write_config,
)

CHECK = "  - {name: short, type: length, max_words: 9}\n"


def verdicts(url: str, evaluator: str | None = None) -> list[Evaluation]:
    engine = make_engine(url)
    with make_sessionmaker(engine)() as session:
        query = select(Evaluation).where(Evaluation.status != "pending")
        if evaluator:
            query = query.where(Evaluation.evaluator == evaluator)
        rows = list(session.scalars(query))
    engine.dispose()
    return rows


def wait_until(condition: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError("condition not met in time")


def ingest(client: TestClient | httpx.Client, records: list[dict]) -> None:
    answer = client.post("/api/v1/records", json={"records": records})
    assert answer.status_code == 201, answer.text


@pytest.mark.slow
def test_new_records_are_judged_in_the_background(settings: Settings, tmp_path: Path) -> None:
    with fake_llm(default=grade) as judge:
        config = write_config(tmp_path / "gw.yaml", judge.url, JUDGE + CHECK)
        settings = settings.model_copy(update={"gateway_config": config})
        with TestClient(create_app(settings)) as client:
            ingest(client, support_records(12, outdated_every=3))
            wait_until(lambda: len(verdicts(settings.database_url)) == 24)
            rows = verdicts(settings.database_url, "correctness")
            assert sorted(r.record_id for r in rows if not r.passed) == [
                f"r-{i:05d}" for i in range(0, 12, 3)
            ]
            assert len(judge.requests) == 12
            # the judge's own calls were recorded as internal records and are never judged
            time.sleep(3.5)
            assert len(judge.requests) == 12
            record = client.get("/api/v1/records/r-00000").json()
            assert {e["evaluator"] for e in record["evaluations"]} == {"correctness", "short"}


@pytest.mark.slow
def test_a_judge_that_is_down_or_answers_garbage_never_fails_the_collector(
    settings: Settings, tmp_path: Path
) -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1"
    config = write_config(tmp_path / "gw.yaml", dead, JUDGE + CHECK)
    settings = settings.model_copy(update={"gateway_config": config})
    with TestClient(create_app(settings)) as client:
        ingest(client, support_records(6, prefix="down"))
        wait_until(lambda: len(verdicts(settings.database_url, "short")) == 6)
        time.sleep(1.0)
        assert verdicts(settings.database_url, "correctness") == []  # pending, not lost
        assert client.get("/health").json() == {"status": "ok"}
        with fake_llm(script=[garbage, garbage], default=grade) as judge:
            # the judge comes back (here: at a new address, hot-reloaded); pending work resumes
            write_config(tmp_path / "gw.yaml", judge.url, JUDGE + CHECK)
            ingest(client, support_records(2, prefix="late"))
            wait_until(lambda: len(verdicts(settings.database_url, "correctness")) == 8, 90)
        rows = verdicts(settings.database_url, "correctness")
        assert sum(r.status == "error" for r in rows) <= 1  # garbage twice: one error at most
        assert len({r.record_id for r in rows}) == 8


def test_work_left_by_a_crash_is_picked_up(settings: Settings, tmp_path: Path) -> None:
    ids = seed(settings.database_url, support_records(5, prefix="crash"))
    # a process died while judging crash-00000: its claim is older than the lease
    engine = make_engine(settings.database_url)
    long_ago = datetime.now(UTC) - timedelta(hours=1)
    with fake_llm(default=grade) as judge:
        config = write_config(tmp_path / "gw.yaml", judge.url, JUDGE)
        from llmscope.collector.gateway.config import load_config

        version = load_config(config).evaluators[0].version
        with session_scope(make_sessionmaker(engine)) as session:
            dead_claim = store.claim(session, ids[0], "correctness", version, long_ago)
        settings = settings.model_copy(update={"gateway_config": config})
        with TestClient(create_app(settings)):
            wait_until(lambda: len(verdicts(settings.database_url)) == 5)
        assert len(judge.requests) == 5
    rows = verdicts(settings.database_url)
    assert sorted(r.record_id for r in rows) == sorted(ids)
    assert dead_claim in {r.id for r in rows}  # the dead claim was taken over, not duplicated
    engine.dispose()


@pytest.mark.e2e
def test_serve_killed_mid_judging_loses_nothing_and_judges_nothing_twice(
    database_url: str, tmp_path: Path
) -> None:
    port = free_port()
    env = {
        "LLMSCOPE_DATA_DIR": str(tmp_path / "data"),
        "LLMSCOPE_EVAL_CLAIM_LEASE_S": "3",
        "LLMSCOPE_EVAL_CONCURRENCY": "4",
    }
    with fake_llm(default=slow_grade(1.0)) as judge:
        config = write_config(tmp_path / "gw.yaml", judge.url, JUDGE)
        args = ["serve", "--config", str(config), "--database-url", database_url]
        proc = start_cli_server([*args, "--port", str(port)], env=env)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_for_http(f"{base}/health", proc)
            with httpx.Client(base_url=base) as client:
                ingest(client, support_records(16, outdated_every=4, prefix="kill"))
            wait_until(lambda: len(judge.requests) >= 4)
        finally:
            os.kill(proc.pid, signal.SIGKILL)  # a crash: no clean shutdown, claims left behind
            proc.wait()
        assert len(verdicts(database_url)) < 16
        proc = start_cli_server([*args, "--port", str(port)], env=env)
        try:
            wait_for_http(f"{base}/health", proc)
            wait_until(lambda: len(verdicts(database_url)) == 16, 120)
        finally:
            proc.terminate()
            proc.wait(timeout=20)
    rows = verdicts(database_url)
    assert len({r.record_id for r in rows}) == 16 and len(rows) == 16
    assert sum(not r.passed for r in rows) == 4
    engine = make_engine(database_url)
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(Evaluation)) == 16  # no stray claims
    engine.dispose()


def test_the_background_judge_judges_outside_the_collector(
    settings: Settings, tmp_path: Path
) -> None:
    from llmscope.evaluate.evaluations.online import BackgroundJudge

    assert BackgroundJudge.start_if_configured(settings) is None  # no gateway config: nothing
    ids = seed(settings.database_url, support_records(6, outdated_every=2, prefix="bg"))
    with fake_llm(default=grade) as judge:
        config = write_config(tmp_path / "gw.yaml", judge.url, JUDGE)
        background = BackgroundJudge.start_if_configured(
            settings.model_copy(update={"gateway_config": config})
        )
        assert background is not None
        try:
            wait_until(lambda: len(verdicts(settings.database_url)) == 6)
        finally:
            background.stop()
        assert len(judge.requests) == 6
    rows = verdicts(settings.database_url)
    assert sorted(r.record_id for r in rows) == sorted(ids)
    assert sum(not r.passed for r in rows) == 3


@pytest.mark.e2e
def test_llmscope_worker_judges_with_a_gateway_config(database_url: str, tmp_path: Path) -> None:
    seed(database_url, support_records(4, prefix="wk"))
    port = free_port()
    with fake_llm(default=grade) as judge:
        config = write_config(tmp_path / "gw.yaml", judge.url, JUDGE)
        env = {
            "LLMSCOPE_DATA_DIR": str(tmp_path / "data"),
            "LLMSCOPE_GATEWAY_CONFIG": str(config),
        }
        proc = start_cli_server(
            ["worker", "--database-url", database_url, "--port", str(port)], env=env
        )
        try:
            wait_for_http(f"http://127.0.0.1:{port}/health", proc)
            wait_until(lambda: len(verdicts(database_url)) == 4, 180)
        finally:
            proc.terminate()
            proc.wait(timeout=120)
        assert len(judge.requests) == 4
