"""The ingest, feedback and evaluations API: what is stored, and that bad input changes
nothing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from llmscope.app.server import create_app
from llmscope.config import Settings
from llmscope.db.models import Evaluation, Feedback, PendingEvaluation, Record
from tests.conftest import count_rows
from tests.factories import feedback, record


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        yield client


def post(client: TestClient, body: Any) -> httpx.Response:
    return client.post("/api/v1/records", json=body)


def test_health_reports_ok_once_store_answers(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok"}


def test_single_record_round_trips_every_field(client: TestClient) -> None:
    sent = record(id="rec-1", prompt="plain prompt", status="error", error="timeout")
    answer = post(client, sent)
    assert answer.status_code == 201
    assert answer.json() == {"ids": ["rec-1"]}

    got = client.get("/api/v1/records/rec-1").json()
    for field in (
        "endpoint",
        "provider",
        "model",
        "prompt",
        "response",
        "input_tokens",
        "output_tokens",
        "latency_ms",
        "ttft_ms",
        "status",
        "error",
        "user_id",
        "session_id",
        "tags",
        "messages",
    ):
        assert got[field] == sent[field], field
    assert got["timestamp"] == "2026-11-20T12:00:00Z"
    # no analysis run has seen it: neither rephrased nor regenerated
    assert (got["rephrased"], got["regenerated"]) == (False, False)
    assert got["template"] == {
        "name": "support",
        "version": "2",
        "text": None,
        "variables": {"question": "reset"},
    }
    assert got["source"] == "api"
    assert got["feedback"] == [] and got["latest_feedback"] is None


def test_server_makes_an_id_and_default_timestamp(client: TestClient) -> None:
    body = record()
    del body["timestamp"]
    ids = post(client, body).json()["ids"]
    assert len(ids) == 1 and len(ids[0]) == 36
    assert client.get(f"/api/v1/records/{ids[0]}").json()["timestamp"].startswith("20")


def test_batch_stores_all_and_keeps_order(client: TestClient, engine: Engine) -> None:
    batch = [record(id=f"b{i}") for i in range(25)]
    answer = post(client, {"records": batch})
    assert answer.status_code == 201
    assert answer.json()["ids"] == [f"b{i}" for i in range(25)]
    assert count_rows(engine, Record) == 25


def test_retried_batch_stores_nothing_twice(client: TestClient, engine: Engine) -> None:
    batch = {"records": [record(id=f"r{i}") for i in range(10)]}
    assert post(client, batch).status_code == 201
    again = post(client, batch)
    assert again.status_code == 201
    assert again.json()["ids"] == [f"r{i}" for i in range(10)]
    assert count_rows(engine, Record) == 10


def test_retry_does_not_overwrite_the_stored_record(client: TestClient) -> None:
    post(client, record(id="same", response="first"))
    post(client, record(id="same", response="second"))
    assert client.get("/api/v1/records/same").json()["response"] == "first"


@pytest.mark.parametrize(
    ("bad", "status", "needle"),
    [
        ({"input_tokens": -1}, 422, "records[3].input_tokens"),
        ({"input_tokens": 2**63}, 422, "records[3].input_tokens"),  # past the column's range
        ({"output_tokens": "12"}, 422, "records[3].output_tokens"),
        ({"colour": "blue"}, 422, "records[3].colour: unknown field"),
        ({"timestamp": "yesterday-ish"}, 422, "records[3].timestamp"),
        ({"timestamp": 1700000000}, 422, "records[3].timestamp"),
        ({"status": "maybe"}, 422, "records[3].status"),
        ({"tags": {"a": 1}}, 422, "records[3].tags.a"),
        ({"messages": "not a list"}, 422, "records[3].messages"),
        ({"latency_ms": -5}, 422, "records[3].latency_ms"),
        ({"span_id": "XYZ"}, 422, "records[3].span_id"),
        ({"id": "a/b"}, 422, "records[3].id"),
        ({"id": "has space"}, 422, "records[3].id"),
    ],
)
def test_one_bad_record_rejects_the_whole_batch(
    client: TestClient, engine: Engine, bad: dict[str, Any], status: int, needle: str
) -> None:
    batch = [record(id=f"ok{i}") for i in range(5)]
    batch[3].update(bad)
    answer = post(client, {"records": batch})
    assert answer.status_code == status
    assert needle in answer.json()["message"]
    assert count_rows(engine, Record) == 0


def test_unknown_field_on_a_single_record_is_named(client: TestClient, engine: Engine) -> None:
    answer = post(client, record(temperature=0.2))
    assert answer.status_code == 422
    assert answer.json()["message"] == "temperature: unknown field"
    assert answer.json()["detail"][0]["loc"] == ["body", "temperature"]
    assert count_rows(engine, Record) == 0


def test_invalid_json_is_a_400(client: TestClient, engine: Engine) -> None:
    answer = client.post(
        "/api/v1/records", content=b'{"prompt": "x"', headers={"content-type": "application/json"}
    )
    assert answer.status_code == 400
    assert "not valid JSON" in answer.json()["message"]
    assert count_rows(engine, Record) == 0


def test_body_over_the_cap_is_a_413(settings: Settings, engine: Engine) -> None:
    small = settings.model_copy(update={"max_body_bytes": 2_000})
    with TestClient(create_app(small)) as client:
        answer = post(client, {"records": [record() for _ in range(20)]})
    assert answer.status_code == 413
    assert "larger than 2000 bytes" in answer.json()["message"]
    assert count_rows(engine, Record) == 0


def test_batch_over_the_record_limit_is_refused(settings: Settings, engine: Engine) -> None:
    small = settings.model_copy(update={"max_batch_records": 3})
    with TestClient(create_app(small)) as client:
        answer = post(client, {"records": [record() for _ in range(4)]})
    assert answer.status_code == 422
    assert "at most 3 records" in answer.json()["message"]
    assert count_rows(engine, Record) == 0


def test_empty_batch_is_refused(client: TestClient) -> None:
    answer = post(client, {"records": []})
    assert answer.status_code == 422
    assert answer.json()["message"].startswith("records: List should have at least 1 item")


def test_feedback_is_a_history_and_the_latest_counts(client: TestClient) -> None:
    post(client, record(id="fb"))
    first = client.post("/api/v1/records/fb/feedback", json=feedback("down"))
    assert first.status_code == 201
    second = client.post("/api/v1/records/fb/feedback", json={"value": "up", "source": "reviewer"})
    assert second.status_code == 201
    got = client.get("/api/v1/records/fb").json()
    assert [f["value"] for f in got["feedback"]] == ["down", "up"]
    assert got["feedback"][0]["tags"] == ["incorrect"]
    assert got["feedback"][0]["comment"] == "wrong steps"
    assert got["latest_feedback"]["value"] == "up"
    assert got["latest_feedback"]["source"] == "reviewer"


def test_numeric_feedback_is_kept_as_a_number(client: TestClient) -> None:
    post(client, record(id="num"))
    assert client.post("/api/v1/records/num/feedback", json={"value": 0.25}).status_code == 201
    assert client.get("/api/v1/records/num").json()["latest_feedback"]["value"] == 0.25


def test_feedback_on_unknown_record_is_404(client: TestClient, engine: Engine) -> None:
    answer = client.post("/api/v1/records/nope/feedback", json=feedback())
    assert answer.status_code == 404
    assert "nope" in answer.json()["message"]
    assert count_rows(engine, Feedback) == 0


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"value": "sideways"}, "value"),
        ({"value": True}, "value"),
        ({"value": "up", "tags": "incorrect"}, "tags"),
        ({"value": "up", "mood": "bad"}, "mood: unknown field"),
        ({}, "value"),
    ],
)
def test_bad_feedback_is_refused(
    client: TestClient, engine: Engine, body: dict[str, Any], needle: str
) -> None:
    post(client, record(id="bf"))
    answer = client.post("/api/v1/records/bf/feedback", json=body)
    assert answer.status_code == 422
    assert needle in answer.json()["message"]
    assert count_rows(engine, Feedback) == 0


def test_feedback_by_span_id(client: TestClient) -> None:
    post(client, record(id="traced", trace_id="a" * 32, span_id="00f067aa0ba902b7"))
    answer = client.post("/api/v1/records/00f067aa0ba902b7/feedback", json=feedback("up"))
    assert answer.status_code == 201
    assert answer.json()["record_id"] == "traced"


def test_an_evaluation_from_outside_is_stored_as_external(client: TestClient) -> None:
    post(client, record(id="ev", trace_id="b" * 32, span_id="00f067aa0ba902b8"))
    answer = client.post(
        "/api/v1/records/ev/evaluations",
        json={"evaluator": "faithfulness", "score": 0.2, "label": "hallucinated",
              "justification": "cites a page that does not exist"},
    )  # fmt: skip
    assert answer.status_code == 201
    made = answer.json()
    assert (made["evaluator"], made["version"], made["status"]) == (
        "faithfulness",
        "external",
        "done",
    )
    # no passed given: the label decides it
    assert (made["score"], made["passed"], made["label"]) == (0.2, False, "hallucinated")
    # by span id too; the same evaluator's newer verdict replaces the first
    answer = client.post(
        "/api/v1/records/00f067aa0ba902b8/evaluations",
        json={"evaluator": "faithfulness", "passed": True, "label": "hallucinated"},
    )
    assert answer.status_code == 201
    client.post("/api/v1/records/ev/evaluations", json={"evaluator": "tone", "score": 4})
    got = client.get("/api/v1/records/ev").json()["evaluations"]
    assert [(e["evaluator"], e["passed"], e["score"], e["justification"]) for e in got] == [
        ("faithfulness", True, None, None),
        ("tone", None, 4.0, None),
    ]


def test_an_evaluation_of_an_unknown_record_is_404(client: TestClient, engine: Engine) -> None:
    answer = client.post("/api/v1/records/nope/evaluations", json={"evaluator": "x", "score": 1})
    assert answer.status_code == 404
    assert "nope" in answer.json()["message"]
    assert count_rows(engine, Evaluation) == 0 and count_rows(engine, PendingEvaluation) == 0


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"score": 1}, "evaluator"),
        ({"evaluator": "", "score": 1}, "evaluator"),
        ({"evaluator": "a@b", "score": 1}, "evaluator"),
        ({"evaluator": "x" * 65, "score": 1}, "evaluator"),
        ({"evaluator": "tone"}, "needs a score, passed or a label"),
        ({"evaluator": "tone", "passed": "yes"}, "passed"),
        ({"evaluator": "tone", "score": "high"}, "score"),
        ({"evaluator": "tone", "score": 1, "judge": "me"}, "judge: unknown field"),
    ],
)
def test_bad_evaluations_are_refused(
    client: TestClient, engine: Engine, body: dict[str, Any], needle: str
) -> None:
    post(client, record(id="be"))
    answer = client.post("/api/v1/records/be/evaluations", json=body)
    assert answer.status_code == 422
    assert needle in answer.json()["message"]
    assert count_rows(engine, Evaluation) == 0


def test_unknown_record_is_404(client: TestClient) -> None:
    answer = client.get("/api/v1/records/missing")
    assert answer.status_code == 404
    assert "missing" in answer.json()["message"]


def test_list_is_newest_first_with_cursor_pages(client: TestClient) -> None:
    batch = [record(id=f"p{i:02d}", timestamp=f"2026-11-20T12:{i:02d}:00Z") for i in range(7)]
    # two records share a timestamp: the cursor must still neither skip nor repeat
    batch.append(record(id="p03b", timestamp="2026-11-20T12:03:00Z"))
    post(client, {"records": batch})
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/api/v1/records", params=params).json()
        seen += [r["id"] for r in page["records"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ["p06", "p05", "p04", "p03b", "p03", "p02", "p01", "p00"]


def test_list_filters(client: TestClient) -> None:
    post(
        client,
        {
            "records": [
                record(id="f1", endpoint="chat", model="m1", timestamp="2026-11-01T00:00:00Z"),
                record(
                    id="f2",
                    endpoint="chat",
                    model="m2",
                    timestamp="2026-11-02T00:00:00Z",
                    template={"name": "support", "version": "3"},
                ),
                record(
                    id="f3",
                    endpoint="search",
                    model="m1",
                    timestamp="2026-11-03T00:00:00Z",
                    template={"name": "faq", "version": "1"},
                ),
            ]
        },
    )

    def ids(**params: Any) -> list[str]:
        return [r["id"] for r in client.get("/api/v1/records", params=params).json()["records"]]

    assert ids(endpoint="chat") == ["f2", "f1"]
    assert ids(model="m1") == ["f3", "f1"]
    assert ids(template="support") == ["f2", "f1"]
    assert ids(template="support@3") == ["f2"]
    assert ids(since="2026-11-02T00:00:00Z") == ["f3", "f2"]
    assert ids(until="2026-11-02T00:00:00Z") == ["f1"]


@pytest.mark.parametrize(
    "params",
    [{"cursor": "!!garbage!!"}, {"limit": 0}, {"limit": 5000}, {"since": "not-a-date"}],
)
def test_bad_list_parameters_are_4xx(client: TestClient, params: dict[str, Any]) -> None:
    answer = client.get("/api/v1/records", params=params)
    assert 400 <= answer.status_code < 500
    assert answer.json()["message"]


def test_redaction_masks_content_before_it_is_stored(settings: Settings) -> None:
    masked = settings.model_copy(update={"redact_pii": True})
    with TestClient(create_app(masked)) as client:
        post(
            client,
            record(
                id="pii",
                prompt="mail me at jane.doe@example.com",
                response="card 4111 1111 1111 1111 noted",
            ),
        )
        got = client.get("/api/v1/records/pii").json()
    assert got["prompt"] == "mail me at [EMAIL]"
    assert got["response"] == "card [CARD] noted"


def test_redaction_masks_an_evaluation_from_outside(settings: Settings, engine: Engine) -> None:
    masked = settings.model_copy(update={"redact_pii": True})
    with TestClient(create_app(masked)) as client:
        post(client, record(id="pii-ev"))
        body = {"evaluator": "tone", "label": "fail", "justification": "asks jane.doe@example.com"}
        assert client.post("/api/v1/records/pii-ev/evaluations", json=body).status_code == 201
        [got] = client.get("/api/v1/records/pii-ev").json()["evaluations"]
    assert got["justification"] == "asks [EMAIL]" and got["passed"] is False


def test_end_to_end_through_a_real_server_process(live_server: str) -> None:
    with httpx.Client(base_url=live_server, timeout=10) as http:
        assert http.get("/health").json() == {"status": "ok"}
        ids = http.post("/api/v1/records", json={"records": [record(), record()]}).json()["ids"]
        assert http.post(f"/api/v1/records/{ids[0]}/feedback", json=feedback()).status_code == 201
        got = http.get(f"/api/v1/records/{ids[0]}").json()
        assert got["latest_feedback"]["value"] == "down"
        assert http.get("/docs").status_code == 200
        assert "/api/v1/records" in http.get("/openapi.json").json()["paths"]
