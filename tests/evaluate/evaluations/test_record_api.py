"""``GET /api/v1/records/{id}`` lists the record's evaluations."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi.testclient import TestClient

from llmscope.app.server import create_app
from llmscope.config import Settings
from llmscope.db import make_engine, make_sessionmaker, session_scope
from llmscope.evaluate.evaluations import store
from tests.evaluate.evaluations.support import seed, support_records

NOW = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)


def test_a_record_shows_every_evaluation(settings: Settings) -> None:
    [rid, other] = seed(settings.database_url, support_records(2))
    engine = make_engine(settings.database_url)
    factory = make_sessionmaker(engine)
    with session_scope(factory) as session:
        store.store_verdicts(
            session,
            [
                {
                    "record_id": rid,
                    "evaluator": "short",
                    "version": "abc",
                    "status": "done",
                    "score": 0.0,
                    "passed": False,
                    "justification": "12 words, more than 9",
                    "created_at": NOW,
                },
            ],
        )
        row_id = store.claim(session, rid, "correctness", "v1", NOW)
        assert row_id is not None
        store.finish(
            session,
            row_id,
            NOW,
            status="done",
            score=2.0,
            passed=False,
            justification="Outdated policy.",
            judge_model="judge-model",
            input_tokens=300,
            output_tokens=80,
            latency_ms=312.0,
        )
    engine.dispose()
    with TestClient(create_app(settings)) as client:
        got = client.get(f"/api/v1/records/{rid}").json()
        assert [e["evaluator"] for e in got["evaluations"]] == ["short", "correctness"]
        judged = got["evaluations"][1]
        assert judged["status"] == "done" and judged["passed"] is False
        assert judged["score"] == 2.0 and judged["justification"] == "Outdated policy."
        assert judged["judge_model"] == "judge-model" and judged["input_tokens"] == 300
        assert judged["version"] == "v1" and judged["error"] is None
        assert client.get(f"/api/v1/records/{other}").json()["evaluations"] == []


def test_a_claim_is_taken_once_and_an_expired_one_is_taken_over(settings: Settings) -> None:
    [rid] = seed(settings.database_url, support_records(1))
    engine = make_engine(settings.database_url)
    factory = make_sessionmaker(engine)
    with session_scope(factory) as session:
        first = store.claim(session, rid, "correctness", "v1", NOW)
    with session_scope(factory) as session:
        assert store.claim(session, rid, "correctness", "v1", NOW) is None  # live claim
        assert store.settled(session, "correctness", "v1", [rid], NOW) == {rid}
    later = NOW + store.LEASE * 2  # the holder died: its lease ran out
    with session_scope(factory) as session:
        assert store.settled(session, "correctness", "v1", [rid], later) == set()
        assert store.claim(session, rid, "correctness", "v1", later) == first
    with session_scope(factory) as session:
        store.release(session, first)
    with session_scope(factory) as session:
        assert store.claim(session, rid, "correctness", "v1", later) is not None
    engine.dispose()
