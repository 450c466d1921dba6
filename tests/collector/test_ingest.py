"""The one write path: limits, content rules and redaction decided in one place for every door."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, String, select
from sqlalchemy.orm import Session

from llmscope import limits
from llmscope.app.server import create_app
from llmscope.collector.ingest import ExternalEvaluation, FeedbackEvent, RecordWriter
from llmscope.collector.ingest.evaluations import PENDING_RETENTION
from llmscope.collector.ingest.rows import TEXT_COLUMNS, finish_row
from llmscope.config import Settings
from llmscope.db.models import Evaluation, Feedback, PendingEvaluation, Record
from llmscope.schema import FeedbackIn, RecordIn
from tests.factories import feedback, record


def test_the_limits_size_every_string_column_of_records() -> None:
    sized = {
        column.name: column.type.length
        for column in Record.__table__.columns
        if isinstance(column.type, String) and column.type.length is not None
    }
    assert sized == limits.RECORD_COLUMNS
    assert Feedback.__table__.c.source.type.length == limits.FEEDBACK_SOURCE


def _max_length(schema: dict[str, Any]) -> int | None:
    found = [s.get("maxLength") for s in schema.get("anyOf", [schema])]
    return next((n for n in found if n is not None), None)


def test_the_wire_shapes_refuse_what_the_limits_do_not_allow() -> None:
    # The SDK owns the wire shapes (llmscope_sdk.records); their limits must be the store's.
    record = RecordIn.model_json_schema()
    fields = record["properties"]
    for name in ("id", "endpoint", "provider", "model", "user_id", "session_id"):
        assert _max_length(fields[name]) == limits.RECORD_COLUMNS[name], name
    assert _max_length(record["$defs"]["Template"]["properties"]["name"]) == limits.NAME
    assert _max_length(record["$defs"]["Template"]["properties"]["version"]) == limits.VERSION
    tag_values = fields["tags"]["anyOf"][0]["additionalProperties"]
    assert tag_values["maxLength"] == limits.TAG_VALUE
    given = FeedbackIn.model_json_schema()["properties"]
    assert given["tags"]["items"]["maxLength"] == limits.FEEDBACK_TAG
    assert given["tags"]["maxItems"] == limits.FEEDBACK_TAGS
    assert _max_length(given["comment"]) == limits.FEEDBACK_COMMENT
    assert given["source"]["maxLength"] == limits.FEEDBACK_SOURCE


def test_finish_cuts_strings_and_tags_to_their_limits() -> None:
    row = {
        "id": "r-1",
        "model": "m" * 300,
        "provider": "p" * 100,
        "template_version": "v" * 70,
        "prompt": "x" * 5000,  # Text: no limit
        "tags": {"k" * 300: "v" * 2000, "team": "web"},
    }
    done = finish_row(row, redact_pii=False)
    assert done["model"] == "m" * limits.NAME
    assert done["provider"] == "p" * limits.PROVIDER
    assert done["template_version"] == "v" * limits.VERSION
    assert done["prompt"] == "x" * 5000
    assert done["tags"] == {"k" * limits.NAME: "v" * limits.TAG_VALUE, "team": "web"}


def test_log_content_false_keeps_metadata_only() -> None:
    row = {column: "text" for column in TEXT_COLUMNS} | {"model": "m", "user_id": "u-1"}
    done = finish_row(row, redact_pii=False, log_content=False)
    assert all(done[column] is None for column in TEXT_COLUMNS)
    assert (done["model"], done["user_id"]) == ("m", "u-1")


def test_the_writer_decides_redaction_for_every_row() -> None:
    record_in = RecordIn(prompt="mail ann@example.com", user_id="ann@example.com", model="m")
    masked = RecordWriter(redact_pii=True).row(record_in, source="otlp")
    plain = RecordWriter(redact_pii=False).row(record_in, source="otlp")
    assert (masked["prompt"], masked["user_id"]) == ("mail [EMAIL]", "[EMAIL]")
    assert masked["model"] == "m"
    assert plain["prompt"] == "mail ann@example.com"
    assert masked["source"] == "otlp"


def test_feedback_text_is_masked_when_redaction_is_on(settings: Settings, engine: Engine) -> None:
    masked = settings.model_copy(update={"redact_pii": True})
    with TestClient(create_app(masked)) as client:
        client.post("/api/v1/records", json=record(id="fb-pii"))
        body = feedback(comment="call me on +44 20 7946 0958 or bob@example.org")
        assert client.post("/api/v1/records/fb-pii/feedback", json=body).status_code == 201
    with Session(engine) as session:
        stored = session.scalars(select(Feedback)).one()
    assert stored.comment == "call me on [PHONE] or [EMAIL]"
    assert stored.tags == ["incorrect"]


def test_feedback_with_its_own_time_is_stored_once(engine: Engine) -> None:
    writer = RecordWriter()
    at = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    timed = FeedbackEvent("r-1", "down", 0.0, ["t" * 200], "why", "evaluator", created_at=at)
    untimed = FeedbackEvent("r-1", "up", 1.0)
    with Session(engine) as session:
        writer.store(session, [writer.row(RecordIn(id="r-1"), source="api")])
        first = writer.feedback(session, [timed, untimed, FeedbackEvent("nope", "up", 1.0)])
        again = writer.feedback(session, [timed, untimed])
        session.commit()
        stored = session.scalars(select(Feedback).order_by(Feedback.id)).all()
    assert [row is not None for row in first] == [True, True, False]
    assert [row is not None for row in again] == [False, True]
    assert len(stored) == 3
    assert stored[0].tags == ["t" * limits.FEEDBACK_TAG]
    assert stored[0].created_at == at


def test_pending_evaluations_are_adopted_by_any_door_and_expire(engine: Engine) -> None:
    writer = RecordWriter()
    now = datetime.now(UTC)
    with Session(engine) as session:
        stale = PendingEvaluation(
            record_ref="never-stored", evaluator="old", passed=True, created_at=now,
            received_at=now - PENDING_RETENTION - timedelta(minutes=1),
        )  # fmt: skip
        session.add(stale)
        session.commit()
        waiting = [
            ExternalEvaluation("tone", record_ref="later", label="pass", created_at=now),
            ExternalEvaluation("grounded", span_id="00f067aa0ba902b9", score=2.0, created_at=now),
        ]
        assert writer.evaluations(session, waiting, wait=True) == [None, None]
        session.commit()
        # the stale one went when new ones came; the REST door never waits
        left = session.scalars(select(PendingEvaluation.evaluator)).all()
        assert sorted(left) == ["grounded", "tone"]
        assert writer.evaluations(session, [ExternalEvaluation("x", "nope", passed=True)]) == [None]
        # the records arrive through the REST door's path (the gateway's recorder does the same)
        rows = [
            writer.row(RecordIn.model_validate(record(id="later")), source="api"),
            writer.row(
                RecordIn.model_validate(record(id="traced", span_id="00f067aa0ba902b9")),
                source="api",
            ),
        ]
        writer.store(session, rows)
        session.commit()
        columns = (
            Evaluation.record_id,
            Evaluation.evaluator,
            Evaluation.version,
            Evaluation.passed,
        )
        got = session.execute(select(*columns).order_by(Evaluation.record_id)).all()
        assert [tuple(g) for g in got] == [
            ("later", "tone", "external", True),
            ("traced", "grounded", "external", None),
        ]
        assert session.scalars(select(PendingEvaluation)).all() == []


def test_a_batch_with_rows_journaled_before_a_column_existed_is_stored(engine: Engine) -> None:
    writer = RecordWriter()
    new = writer.row(RecordIn.model_validate(record(id="new")), source="gateway")
    old = writer.row(RecordIn.model_validate(record(id="old")), source="gateway")
    del old["response_id"]  # a journal line written before the column existed
    with Session(engine) as session:
        stored = writer.store(session, [{**new, "response_id": "chatcmpl-1"}, old])
        session.commit()
        assert [r["id"] for r in stored] == ["new", "old"]
        assert session.get(Record, "old").response_id is None  # type: ignore[union-attr]
