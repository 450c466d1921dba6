"""``GET /api/v1/sessions/{id}``: a conversation's records in the order they were asked."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from llmscope.app.server import create_app
from llmscope.config import Settings
from tests.factories import feedback, record


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        yield client


def test_turns_come_oldest_first_with_their_feedback(client: TestClient) -> None:
    # sent newest first, and another session's call in between: order is the call's time
    sent = [
        record(id="t3", session_id="conv", timestamp="2026-11-20T12:02:00Z"),
        record(id="other", session_id="elsewhere", timestamp="2026-11-20T12:01:30Z"),
        record(id="t1", session_id="conv", timestamp="2026-11-20T12:00:00Z"),
        record(id="t2", session_id="conv", timestamp="2026-11-20T12:01:00Z"),
    ]
    assert client.post("/api/v1/records", json={"records": sent}).status_code == 201
    assert client.post("/api/v1/records/t2/feedback", json=feedback("down")).status_code == 201

    got = client.get("/api/v1/sessions/conv").json()
    assert got["session_id"] == "conv" and got["truncated"] is False
    assert [r["id"] for r in got["records"]] == ["t1", "t2", "t3"]
    thumbs = [(r["latest_feedback"] or {}).get("value") for r in got["records"]]
    assert thumbs == [None, "down", None]


def test_limit_truncates_and_says_so(client: TestClient) -> None:
    sent = [
        record(id=f"turn-{i}", session_id="long", timestamp=f"2026-11-20T12:0{i}:00Z")
        for i in range(5)
    ]
    client.post("/api/v1/records", json={"records": sent})
    got = client.get("/api/v1/sessions/long", params={"limit": 2}).json()
    assert [r["id"] for r in got["records"]] == ["turn-0", "turn-1"]
    assert got["truncated"] is True


def test_unknown_session_is_404_and_bad_limit_422(client: TestClient) -> None:
    missing = client.get("/api/v1/sessions/nobody")
    assert missing.status_code == 404 and "nobody" in missing.json()["detail"]
    client.post("/api/v1/records", json=record(id="x", session_id="s"))
    assert client.get("/api/v1/sessions/s", params={"limit": 0}).status_code == 422
    too_long = client.get("/api/v1/sessions/" + "s" * 300)
    assert too_long.status_code == 400 and "session_id" in too_long.text
