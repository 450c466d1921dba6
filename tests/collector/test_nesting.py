"""One call, one record: nested LLM spans of one call in one trace merge into the innermost.

Rows go through the insert every door shares (``store_rows``) on SQLite and PostgreSQL, in
every order and batching; the real instrumentations are in otlp/test_mlflow_tracing.py and
gateway/test_gateway_traces.py.
"""

from __future__ import annotations

import itertools
import threading
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, select

from llmscope.collector.ingest.evaluations import ExternalEvaluation, write_evaluations
from llmscope.collector.ingest.feedback import FeedbackEvent, write_feedback
from llmscope.collector.ingest.nesting import chains, store_rows
from llmscope.collector.ingest.store import find_record_id
from llmscope.db import make_sessionmaker, session_scope
from llmscope.db.models import Evaluation, Feedback, Record, analysable
from llmscope.schema import RecordIn, record_row
from tests import factories

TRACE = "a" * 32
OTHER_TRACE = "b" * 32
# span ids: the LangChain span (outer), the OpenAI span inside it, a gateway call inside that
OUTER, MIDDLE, INNER = "1" * 16, "2" * 16, "3" * 16


def _row(record_id: str, span: str, parent: str | None, trace: str = TRACE, **fields: Any) -> Any:
    record = RecordIn.model_validate(
        factories.record(id=record_id, trace_id=trace, span_id=span, **fields)
    )
    return {**record_row(record, source="otlp"), "parent_span_id": parent}


def _langchain(record_id: str = "outer", span: str = OUTER, **fields: Any) -> Any:
    """The framework's span: template, user, session and tags, no provider-level detail."""
    return _row(
        record_id,
        span,
        None,
        **{"provider": None, "input_tokens": None, "tags": {"framework": "langchain"}, **fields},
    )


def _openai(
    record_id: str = "inner", span: str = INNER, parent: str | None = OUTER, **fields: Any
) -> Any:
    """The provider-level span: no template, user or session of its own."""
    defaults: dict[str, Any] = {
        "template": None,
        "user_id": None,
        "session_id": None,
        "tags": {"llm": "openai"},
        "response": "Provider answer.",
        "input_tokens": 30,
    }
    return _row(record_id, span, parent, **{**defaults, **fields})


def _store(engine: Engine, *batches: list[Any]) -> list[list[str]]:
    """Store each batch in its own transaction; the ids each counted as new calls."""
    factory = make_sessionmaker(engine)
    counted = []
    for batch in batches:
        with session_scope(factory) as session:
            counted.append([r["id"] for r in store_rows(session, batch)])
    return counted


def _state(engine: Engine) -> dict[str, tuple[Any, ...]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                Record.id,
                Record.merged_into,
                Record.links,
                Record.template_name,
                Record.user_id,
                Record.provider,
                Record.input_tokens,
                Record.tags,
                Record.response,
            )
        )
        return {row[0]: tuple(row[1:]) for row in rows}


def _analysable(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return sorted(conn.scalars(select(Record.id).where(analysable())))


MERGED = {
    # the survivor: its own content and provider data, the framework's metadata filled in
    "inner": (
        None,
        ["outer"],
        "support",
        "u-1",
        "openai",
        30,
        {"llm": "openai", "framework": "langchain"},
        "Provider answer.",
    ),
    "outer": (
        "inner",
        None,
        "support",
        "u-1",
        None,
        None,
        {"framework": "langchain"},
        "Open Settings, then Security, then Reset password.",
    ),
}


def test_child_first_then_parent_in_another_batch(engine: Engine) -> None:
    counted = _store(engine, [_openai()], [_langchain()])
    assert counted == [["inner"], []]  # the parent joins a call already counted
    assert _state(engine) == MERGED
    assert _analysable(engine) == ["inner"]


def test_parent_first_then_child(engine: Engine) -> None:
    counted = _store(engine, [_langchain()], [_openai()])
    assert counted == [["outer"], []]
    assert _state(engine) == MERGED
    assert _analysable(engine) == ["inner"]


def test_both_in_one_batch_count_once(engine: Engine) -> None:
    assert _store(engine, [_langchain(), _openai()]) == [["inner"]]
    assert _state(engine) == MERGED


def test_a_retried_batch_changes_nothing(engine: Engine) -> None:
    _store(engine, [_langchain(), _openai()])
    assert _store(engine, [_openai(), _langchain()]) == [[]]
    assert _state(engine) == MERGED


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_three_levels_in_any_order_end_the_same(engine: Engine, order: tuple[int, ...]) -> None:
    rows = [
        _langchain(),
        _openai("middle", MIDDLE, OUTER, tags={"level": "middle"}, template=None),
        _openai("gateway", INNER, MIDDLE, provider="openai", input_tokens=None, tags=None),
    ]
    counted = _store(engine, *[[rows[i]] for i in order])
    state = _state(engine)
    survivor = state["gateway"]
    assert survivor[0] is None and survivor[1] == ["middle", "outer"]  # innermost first
    assert survivor[2:5] == ("support", "u-1", "openai")
    assert survivor[5] == 30  # tokens from the middle span, the nearest one that had them
    assert survivor[6] == {"level": "middle", "framework": "langchain"}
    assert state["middle"][0] == state["outer"][0] == "gateway"
    assert _analysable(engine) == ["gateway"]
    # counted once, except when the middle span, the only link, comes last
    assert sum(map(len, counted)) == (2 if order[-1] == 1 else 1)


def test_two_siblings_are_not_merged(engine: Engine) -> None:
    first = _openai("first", "4" * 16)
    second = _openai("second", "5" * 16)
    _store(engine, [_langchain()], [first])
    assert _state(engine)["first"][1] == ["outer"]  # one child so far: one call
    counted = _store(engine, [second])
    assert counted == [["second"]]  # a call of its own
    state = _state(engine)
    assert all(state[r][:2] == (None, None) for r in ("outer", "first", "second"))
    # what "first" took from "outer" while they were one call is given back
    assert state["first"][1:4] == (None, None, None)
    assert state["first"][6] == {"llm": "openai"}
    assert _analysable(engine) == ["first", "outer", "second"]


def test_different_traces_are_not_merged(engine: Engine) -> None:
    counted = _store(engine, [_langchain()], [_openai(trace=OTHER_TRACE)])
    assert counted == [["outer"], ["inner"]]
    assert _analysable(engine) == ["inner", "outer"]


def test_a_call_under_a_span_that_is_no_llm_call_stays_alone(engine: Engine) -> None:
    _store(engine, [_langchain()], [_openai(parent="9" * 16)])
    assert _analysable(engine) == ["inner", "outer"]


def test_chains_of_a_trace() -> None:
    spans = [("a", None, "A"), ("b", "a", "B"), ("c", "b", "C"), ("d", "x", "D")]
    assert [c.records for c in chains(spans)] == [["A", "B", "C"], ["D"]]
    forked = [("a", None, "A"), ("b", "a", "B"), ("c", "a", "C"), ("d", "c", "D")]
    assert [c.records for c in chains(forked)] == [["A"], ["B"], ["C", "D"]]
    cycle = [("a", "b", "A"), ("b", "a", "B")]
    assert sorted(c.records for c in chains(cycle)) == [["A"], ["B"]]


def test_feedback_and_evaluations_move_to_the_survivor(engine: Engine) -> None:
    factory = make_sessionmaker(engine)
    _store(engine, [_langchain()])
    with session_scope(factory) as session:
        write_feedback(session, [FeedbackEvent("outer", "down", None)], redact_pii=False)
        write_evaluations(
            session, [ExternalEvaluation("relevance", "outer", passed=False)], redact_pii=False
        )
    _store(engine, [_openai()])
    with session_scope(factory) as session:
        assert session.scalars(select(Feedback.record_id)).all() == ["inner"]
        assert session.scalars(select(Evaluation.record_id)).all() == ["inner"]
        # the outer record's id and span id name the survivor from now on
        assert find_record_id(session, "outer") == "inner"
        assert find_record_id(session, OUTER) == "inner"
        write_feedback(session, [FeedbackEvent(OUTER, "up", None)], redact_pii=False)
        thumbs = session.scalars(select(Feedback.thumb).where(Feedback.record_id == "inner"))
        assert sorted(thumbs) == ["down", "up"]


def test_concurrent_writers_of_one_trace_merge(engine: Engine) -> None:
    """Parent and child stored at the same moment by two writers still end as one call."""
    factory = make_sessionmaker(engine)
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def write(row: Any) -> None:
        try:
            barrier.wait(5)
            with session_scope(factory) as session:
                store_rows(session, [row])
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    for _ in range(5):
        threads = [threading.Thread(target=write, args=(r,)) for r in (_langchain(), _openai())]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors
        assert _state(engine) == MERGED
        with session_scope(factory) as session:
            session.query(Record).delete()


def test_the_analysis_and_the_judges_see_one_record_per_call(engine: Engine) -> None:
    """What a run report counts (``load_records``) and what evaluators judge hold the survivor
    only: the call is counted once in the report."""
    from llmscope.analysis.job import load_records
    from llmscope.analysis.windows import Window
    from llmscope.evaluate.evaluations.store import eligible

    _store(engine, [_langchain(), _openai(), _openai("alone", "6" * 16, trace=OTHER_TRACE)])
    day = Window(datetime(2026, 11, 20, tzinfo=UTC), datetime(2026, 11, 21, tzinfo=UTC))
    before = Window(datetime(2026, 11, 13, tzinfo=UTC), day.start)
    with make_sessionmaker(engine)() as session:
        assert sorted(r["id"] for r in load_records(session, before, day)) == ["alone", "inner"]
        judged = session.scalars(select(Record.id).where(eligible())).all()
        assert sorted(judged) == ["alone", "inner"]
