"""Judged once: a live judge's claim is renewed while its call runs (however slow the judge), a
process killed mid-judging re-asks only the calls it had in flight, and a judge's answer that
came back before the kill is applied from the store instead of being asked for again."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from llmscope.app.server import create_app
from llmscope.collector.gateway.config import load_config
from llmscope.collector.ingest.store import insert_records
from llmscope.config import Settings
from llmscope.db import make_engine, make_sessionmaker, session_scope
from llmscope.db.models import Evaluation
from llmscope.evaluate.evaluations import store
from llmscope.evaluate.evaluations.judge import EVALUATOR_TAG, answer_key, call_ids
from llmscope.schema import RecordIn, record_row
from tests.analysis.http_fakes import fake_llm
from tests.conftest import free_port, start_cli_server, wait_for_http
from tests.evaluate.evaluations.support import JUDGE, grade, seed, support_records, write_config
from tests.evaluate.evaluations.test_online import ingest, verdicts, wait_until

N = 12
SLOW = 6.0  # seconds an odd record's judge call takes: longer than the lease, many times over
LEASE = "1"
QUESTION = re.compile(r"refund\? \((\d+)\)")


def asked(body: dict[str, Any]) -> int:
    """Which record a judge request is about (its question holds the record's number)."""
    match = QUESTION.search(body["messages"][-1]["content"])
    assert match is not None
    return int(match.group(1))


def fast_and_slow(body: dict[str, Any]) -> str:
    if asked(body) % 2:
        time.sleep(SLOW)
    return grade(body)


def calls_per_record(requests: list[dict[str, Any]]) -> Counter[int]:
    return Counter(asked(r["body"]) for r in requests)


def test_sigkill_mid_judging_re_asks_only_the_calls_in_flight(
    database_url: str, tmp_path: Path
) -> None:
    port = free_port()
    env = {
        "LLMSCOPE_DATA_DIR": str(tmp_path / "data"),
        "LLMSCOPE_EVAL_CLAIM_LEASE_S": LEASE,
        "LLMSCOPE_EVAL_CONCURRENCY": "16",
    }
    with fake_llm(default=fast_and_slow) as judge:
        config = write_config(tmp_path / "gw.yaml", judge.url, JUDGE, timeout_seconds=30)
        args = ["serve", "--config", str(config), "--database-url", database_url]
        base = f"http://127.0.0.1:{port}"
        proc = start_cli_server([*args, "--port", str(port)], env=env)
        try:
            wait_for_http(f"{base}/health", proc)
            with httpx.Client(base_url=base) as client:
                ingest(client, support_records(N, prefix="kill"))
            wait_until(lambda: len(verdicts(database_url)) == N // 2)  # the fast half
            # the slow calls run on for three leases: a judge that did not renew its claims
            # would see them taken over (and asked again) meanwhile
            time.sleep(3 * float(LEASE))
        finally:
            os.kill(proc.pid, signal.SIGKILL)  # a crash: no clean shutdown, claims left behind
            proc.wait()
        before = calls_per_record(judge.requests)
        judged_before = {r.record_id for r in verdicts(database_url)}
        in_flight = [i for i in range(N) if f"kill-{i:05d}" not in judged_before]
        assert in_flight == list(range(1, N, 2))
        assert before == Counter(range(N)), "a record was asked twice while its judge lived"

        proc = start_cli_server([*args, "--port", str(port)], env=env)
        try:
            wait_for_http(f"{base}/health", proc)
            wait_until(lambda: len(verdicts(database_url)) == N, 60)
        finally:
            proc.terminate()
            proc.wait(timeout=20)
    calls = calls_per_record(judge.requests)
    # asked again: exactly the calls in flight at the kill, once each
    assert calls == Counter({i: 1 + (i in in_flight) for i in range(N)})
    rows = verdicts(database_url)
    assert len({r.record_id for r in rows}) == N == len(rows)
    engine = make_engine(database_url)
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(Evaluation)) == N  # no stray claims
    engine.dispose()


def judge_call(record_id: str, *, response: str | None, status: str = "ok") -> dict[str, Any]:
    """The record of a judge call as the gateway stores it (internal, tagged)."""
    return record_row(
        RecordIn.model_validate(
            {
                "id": record_id,
                "endpoint": "judge",
                "model": "judge-model",
                "messages": [{"role": "user", "content": "Grade the output."}],
                "response": response,
                "status": status,
                "error": None if status == "ok" else "upstream 503",
                "input_tokens": 310,
                "output_tokens": 40,
                "tags": {EVALUATOR_TAG: "correctness"},
            }
        ),
        source="gateway",
        internal=True,
    )


def test_an_answer_stored_before_a_crash_is_applied_not_asked_again(
    settings: Settings, tmp_path: Path
) -> None:
    answered, unanswered = seed(settings.database_url, support_records(2, prefix="dead"))
    stored = json.dumps({"score": 2, "justification": "Stored before the crash."})
    with fake_llm(default=grade) as judge:
        config = write_config(tmp_path / "gw.yaml", judge.url, JUDGE)
        evaluator = load_config(config).evaluators[0]
        # a process claimed both, got the judge's answer for one and a 503 for the other, and
        # died before writing either verdict: its claims ran out long ago
        answered_call = call_ids(answer_key(answered, evaluator))[0]
        failed_call = call_ids(answer_key(unanswered, evaluator))[0]
        engine = make_engine(settings.database_url)
        with session_scope(make_sessionmaker(engine)) as session:
            insert_records(
                session,
                [
                    judge_call(answered_call, response=stored),
                    judge_call(failed_call, response=None, status="error"),
                ],
            )
            long_ago = datetime.now(UTC) - timedelta(hours=1)
            for record_id in (answered, unanswered):
                store.claim(session, record_id, evaluator.name, evaluator.version, long_ago)
        engine.dispose()
        settings = settings.model_copy(update={"gateway_config": config})
        with TestClient(create_app(settings)):
            wait_until(lambda: len(verdicts(settings.database_url)) == 2)
        assert [asked(r["body"]) for r in judge.requests] == [1]  # only the unanswered one
    rows = {r.record_id: r for r in verdicts(settings.database_url)}
    assert rows[answered].score == 2 and rows[answered].justification == "Stored before the crash."
    assert rows[answered].judge_record_id == answered_call
    assert rows[answered].input_tokens == 310  # the tokens it cost count towards the budget
    # the new call is recorded under an id of its own, not dropped as a duplicate of the 503
    assert rows[unanswered].score == 5 and rows[unanswered].judge_record_id != failed_call
