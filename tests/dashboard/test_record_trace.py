"""The record page draws the record's trace as a waterfall: every call and agent step under its
parent, bars placed by start and duration, this call marked, a failed tool in red."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, insert, select, update

from llmscope.dashboard.app import render_path
from llmscope.db.models import Record, RunAssignment, StoredSpan
from tests.dashboard.seed import add_rows, plain_record, seed_store
from tests.dashboard.test_app import by_id, text_of

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def _step(span_id: str, parent: str | None, name: str, kind: str, at_ms: int, ms: float,
          status: str = "ok") -> dict[str, object]:  # fmt: skip
    return {
        "trace_id": TRACE,
        "span_id": span_id,
        "parent_span_id": parent,
        "name": name,
        "kind": kind,
        "start": T0 + timedelta(milliseconds=at_ms),
        "duration_ms": ms,
        "status": status,
        "error": "payments API answered 503" if status == "error" else None,
        "attributes": None,
        "received_at": T0,
    }


def test_the_waterfall_rows_nest_and_mark_this_call(engine: Engine) -> None:
    calls = [
        plain_record("call-1", T0 + timedelta(milliseconds=100), trace_id=TRACE,
                     span_id="b" * 16, parent_span_id="a" * 16, latency_ms=400.0),
        plain_record("call-2", T0 + timedelta(milliseconds=700), trace_id=TRACE,
                     span_id="d" * 16, parent_span_id="a" * 16, latency_ms=200.0),
    ]  # fmt: skip
    add_rows(engine, calls)
    with engine.begin() as conn:
        conn.execute(
            insert(StoredSpan),
            [
                _step("a" * 16, None, "support-agent", "agent", 0, 1000.0),
                _step("c" * 16, "a" * 16, "issue_refund", "tool", 550, 100.0, "error"),
            ],
        )
    layout = render_path(engine, "/records/call-1", "")
    waterfall = by_id(layout, "record-trace")
    rows = waterfall.children
    assert [text_of(r.children[0]).split()[0] for r in rows] == ["agent", "llm", "tool", "llm"]
    assert "waterfall-this" in rows[1].className and "waterfall-this" not in rows[3].className
    assert "waterfall-error" in rows[2].className
    assert rows[2].children[0].title == "payments API answered 503"
    # the tool starts 550 ms into a 1,000 ms trace and lasts 100 ms
    bar = rows[2].children[1].children
    assert bar.style == {"left": "55.00%", "width": "10.00%"}
    assert rows[1].children[0].style == {"paddingLeft": "14px"}
    assert "Trace: 4 spans over 1,000.0 ms" in text_of(layout)


def test_a_call_alone_in_its_trace_draws_no_waterfall(engine: Engine) -> None:
    add_rows(engine, [plain_record("solo", T0, trace_id=TRACE, span_id="e" * 16)])
    layout = render_path(engine, "/records/solo", "")
    assert "Trace:" not in text_of(layout)


def test_the_cluster_page_counts_failed_tools_after_its_answers(engine: Engine) -> None:
    seeded = seed_store(engine, records=200)
    cluster = seeded.problem_cluster
    with engine.connect() as conn:
        mine = conn.scalars(
            select(RunAssignment.record_id)
            .where(
                RunAssignment.run_id == seeded.run_id,
                RunAssignment.cluster_id == cluster,
                RunAssignment.window == "current",
            )
            .order_by(RunAssignment.record_id)
            .limit(5)
        ).all()
    assert len(mine) == 5
    steps = []
    with engine.begin() as conn:
        for i, record_id in enumerate(mine):
            trace = f"{i + 1:032x}"
            at = conn.execute(select(Record.timestamp).where(Record.id == record_id)).scalar_one()
            conn.execute(update(Record).where(Record.id == record_id).values(trace_id=trace))
            # calls 0-3 led to a tool call, 0 and 1 to a failing one; call 4's tool ran before it
            offset = -1000 if i == 4 else 500
            status = "error" if i < 2 else "ok"
            step = _step(f"{i + 1:016x}", None, "refund", "tool", 0, 50.0, status)
            steps.append({**step, "trace_id": trace, "start": at + timedelta(milliseconds=offset)})
        conn.execute(insert(StoredSpan), steps)
    layout = render_path(engine, f"/clusters/{cluster}", "")
    text = text_of(by_id(layout, "cluster-tool-failures"))
    assert "current window: 2 of 4 calls followed by a tool call saw a tool fail (50.0%)" in text
    assert "baseline window" not in text


def test_no_traced_tools_no_card(engine: Engine) -> None:
    seeded = seed_store(engine, records=120)
    layout = render_path(engine, f"/clusters/{seeded.problem_cluster}", "")
    assert "Tool calls after these answers" not in text_of(layout)
