"""The session page: a conversation's turns in order, each with its cluster in the run shown,
its thumb and the evaluators' verdicts; the record page links to it."""

from __future__ import annotations

from datetime import timedelta

from dash import dcc
from sqlalchemy import Engine, insert, update

from llmscope.dashboard.app import render_path
from llmscope.db.models import Evaluation, Record
from tests.dashboard.seed import SeededStore, seed_store
from tests.dashboard.test_app import by_id, text_of, walk


def _conversation(engine: Engine, seeded: SeededStore) -> list[str]:
    """Three seeded records (two in the problem cluster) made one session, asked in the order
    returned; the middle one gets a failed evaluator verdict."""
    problem = [r for r in seeded.record_ids if seeded.cluster_of.get(r) == seeded.problem_cluster]
    other = next(r for r in seeded.record_ids if seeded.cluster_of.get(r) not in (None, -1,
                 seeded.problem_cluster))  # fmt: skip
    turns = [other, problem[0], problem[1]]
    with engine.begin() as conn:
        start = conn.execute(Record.__table__.select().where(Record.id == turns[0])).one().timestamp
        for i, record_id in enumerate(turns):
            conn.execute(
                update(Record)
                .where(Record.id == record_id)
                .values(session_id="conv-42", timestamp=start + timedelta(minutes=i))
            )
        conn.execute(
            insert(Evaluation).values(
                record_id=turns[1],
                evaluator="grounded",
                version="1",
                status="done",
                passed=False,
                score=0.0,
                created_at=start,
            )
        )
    return turns


def test_turns_in_order_with_cluster_thumb_and_verdict(engine: Engine) -> None:
    seeded = seed_store(engine, records=200)
    turns = _conversation(engine, seeded)
    layout = render_path(engine, "/sessions/conv-42", "")
    items = by_id(layout, "session-turns").children
    assert len(items) == 3
    for item, record_id in zip(items, turns, strict=True):
        link = next(c for c in walk(item) if isinstance(c, dcc.Link) and "/records/" in c.href)
        assert link.href == f"/records/{record_id}"
        assert f"cluster {seeded.cluster_of[record_id]}" in text_of(item)
    assert "grounded@1 failed" in text_of(items[1])
    assert "grounded" not in text_of(items[0])
    assert "Turns, oldest first: 3 turns" in text_of(layout)


def test_record_page_links_to_its_session(engine: Engine) -> None:
    seeded = seed_store(engine, records=120)
    turns = _conversation(engine, seeded)
    layout = render_path(engine, f"/records/{turns[0]}", "")
    assert by_id(layout, "record-session").href == "/sessions/conv-42"


def test_unknown_session_says_so(engine: Engine) -> None:
    layout = render_path(engine, "/sessions/none-such", "")
    assert "No record carries the session id" in text_of(layout)
