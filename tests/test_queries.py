"""The shared reads: the newest feedback event counts; "latest" names one run, on every backend."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine, and_, insert, select
from sqlalchemy.orm import Session, aliased

from llmscope.db.models import AnalysisRun, Feedback, Record
from llmscope.db.queries import (
    feedback_history,
    load_run_report,
    newest_feedback,
    newest_feedback_id,
    newest_thumbs,
    resolve_run_id,
)
from tests.analysis.seeding import NOW
from tests.dashboard.seed import add_rows, plain_record


def _feedback_store(engine: Engine) -> None:
    """r-flip: down, then up (up counts); r-tie: up then down at the same moment (the later id,
    down, counts); r-one: down; r-none: no feedback; r-internal: down, but internal."""
    records = [
        plain_record(rid, NOW, **({"internal": True} if rid == "r-internal" else {}))
        for rid in ("r-flip", "r-tie", "r-one", "r-none", "r-internal")
    ]
    add_rows(
        engine,
        records,
        [
            ("r-flip", "down", NOW + timedelta(minutes=1)),
            ("r-tie", "up", NOW + timedelta(minutes=5)),
            ("r-tie", "down", NOW + timedelta(minutes=5)),
            ("r-one", "down", NOW + timedelta(minutes=2)),
            ("r-internal", "down", NOW + timedelta(minutes=2)),
            # Written last but older: order of writing does not decide, time does.
            ("r-flip", "up", NOW + timedelta(minutes=3)),
        ],
    )
    with engine.begin() as conn:  # a numeric rating without a thumb, newest for r-one
        conn.execute(
            insert(Feedback).values(
                record_id="r-one", created_at=NOW + timedelta(minutes=9), thumb=None, score=4.0
            )
        )


def test_the_newest_feedback_event_counts_in_every_reader(engine: Engine) -> None:
    _feedback_store(engine)
    everyone = ["r-flip", "r-tie", "r-one", "r-none", "r-internal"]
    with Session(engine) as session:
        assert newest_thumbs(session, everyone) == {"r-flip": False, "r-tie": True, "r-one": None}
        history = feedback_history(session, everyone)
        assert [e.thumb for e in history["r-flip"]] == ["down", "up"]
        assert [e.thumb for e in history["r-tie"]] == ["up", "down"]
        assert "r-none" not in history and feedback_history(session, []) == {}
        newest = newest_feedback(Feedback.record_id.in_(["r-flip", "r-tie"]))
        rows = dict(session.execute(select(newest.c.record_id, newest.c.thumb)).all())
        assert rows == {"r-flip": "up", "r-tie": "down"}
        # The join the dashboard uses: each record to the one event that counts.
        event = aliased(Feedback)
        joined = dict(
            session.execute(
                select(Record.id, event.thumb)
                .outerjoin(
                    event,
                    and_(
                        event.record_id == Record.id,
                        event.id == newest_feedback_id(event.record_id, event),
                    ),
                )
                .where(Record.id.in_(["r-flip", "r-tie", "r-none"]))
            ).all()
        )
        assert joined == {"r-flip": "up", "r-tie": "down", "r-none": None}


def _run(session: Session, run_id: str, hours: float) -> None:
    created = NOW + timedelta(hours=hours)
    session.add(
        AnalysisRun(
            id=run_id,
            created_at=created,
            baseline_start=created - timedelta(days=8),
            baseline_end=created - timedelta(days=1),
            current_start=created - timedelta(days=1),
            current_end=created,
            report={
                "run_id": run_id,
                "created_at": created.isoformat(),
                "baseline": {
                    "start": "2026-11-01T00:00:00Z",
                    "end": "2026-11-02T00:00:00Z",
                    "records": 0,
                },
                "current": {
                    "start": "2026-11-02T00:00:00Z",
                    "end": "2026-11-03T00:00:00Z",
                    "records": 0,
                },
                "global_drift": {
                    "statistic": None,
                    "p_value": None,
                    "flagged": False,
                    "method": "m",
                },
                "clusters": [],
                "alerts": [],
            },
        )
    )


def test_the_latest_run_is_the_newest_and_ties_go_to_the_larger_id(engine: Engine) -> None:
    with Session(engine) as session:
        assert resolve_run_id(session) is None and load_run_report(session) is None
        _run(session, "run-b", 1)
        _run(session, "run-a", 2)
        _run(session, "run-c", 2)  # same moment as run-a: the id decides
        _run(session, "run-d", 0)
        session.commit()
        assert resolve_run_id(session) == "run-c"
        assert resolve_run_id(session, "latest") == "run-c"
        assert resolve_run_id(session, "run-d") == "run-d"
        assert resolve_run_id(session, "nope") is None
        report = load_run_report(session, "latest")
        assert report is not None and report.run_id == "run-c"
        assert report.template_versions == []  # a key older runs lack
