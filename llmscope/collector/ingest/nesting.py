"""One call, one record: the LLM spans of one call, traced at several levels, become one record.

An app traced by ``mlflow.langchain.autolog()`` and ``mlflow.openai.autolog()`` sends two LLM
spans for one ``ChatOpenAI`` call (LangChain's, and the OpenAI client's inside it); an app that
traces a call it sends through the gateway sends its span, and the gateway records the same
call with the app's ``traceparent``. Counted as they come, the call would be counted twice in
the analysis, ``/metrics`` and budgets. :func:`store_rows`, the insert of every door, resolves it:

- Every stored record with a trace and span id is remembered in ``trace_spans`` (trace, span,
  parent span, record).
- Within one trace, LLM spans form chains: a span whose only LLM child is another span (its
  child's parent span id names it) is the same call seen one level up. A chain is one call; its
  innermost record (the provider-level one: the OpenAI span, the gateway's record) survives.
  A span with two or more LLM children (an agent step that made two calls) is not merged with
  either: siblings stay apart. Only direct parents count: spans that are not LLM calls are not
  stored, so a call nested under a non-LLM span is its own record.
- The survivor keeps all it has and fills its empty metadata (template name and version,
  user, session, endpoint, model, tokens, cost...: :data:`INHERITED`) from the outer records,
  innermost first, and takes their tags it lacks; content (prompt, messages, answer) is never
  copied. What it took is listed in ``inherited``, the merged records' ids in ``links``.
- The outer records stay stored (nothing accepted is lost), with ``merged_into`` naming the
  survivor: the analysis, evaluations, listings, exports and dashboard leave them out
  (:func:`llmscope.db.models.analysable`), feedback and evaluations on them move to the survivor,
  and a lookup by their id or span id (feedback by span id) finds the survivor.
- Arrival order does not matter: each insert recomputes the groups of the traces it touched
  from all their ``trace_spans`` rows, undoing what an earlier grouping filled in. On
  PostgreSQL, the writers of one trace take turns (``pg_advisory_xact_lock(7731002, key)``);
  SQLite serialises writers anyway.

:func:`store_rows` returns the stored rows that are new calls, the ones to count: a row that
joins a call already stored is not counted again. A call counted twice because the span that
links two already-stored records arrives last (the middle of three levels) cannot be taken back
from ``/metrics``' counters; the store, and so the analysis, has it once.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Table, select, text, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import Session

from llmscope.collector.ingest.evaluations import adopt_pending
from llmscope.collector.ingest.store import insert_records
from llmscope.db.models import Evaluation, Feedback, Record, TraceSpan

__all__ = ["INHERITED", "LOCK_CLASS", "Chain", "chains", "store_rows"]

Row = dict[str, Any]

_CHUNK = 1000  # rows per statement, well under SQLite's and PostgreSQL's parameter limits

LOCK_CLASS = 7731002
"""The first key of the per-trace advisory lock on PostgreSQL (7731001 is the migrations')."""

INHERITED = (
    "endpoint",
    "provider",
    "model",
    "template_name",
    "template_version",
    "user_id",
    "session_id",
    "input_tokens",
    "output_tokens",
    "latency_ms",
    "ttft_ms",
    "cost_usd",
    "tools",
    "route",
    "response_id",
)
"""Metadata a survivor takes from the outer records when it has none; never content."""


@dataclass
class Chain:
    """One call's records, outermost first; the last one survives."""

    records: list[str] = field(default_factory=list)

    @property
    def survivor(self) -> str:
        return self.records[-1]


def chains(spans: Iterable[tuple[str, str | None, str]]) -> list[Chain]:
    """The calls of one trace from its ``(span_id, parent_span_id, record_id)`` rows.

    A span with exactly one LLM child continues into it; every chain starts at a span whose
    parent is no LLM span of the trace, or has other LLM children too. Spans in a parent cycle
    (only hand-made traces have one) stay alone.
    """
    parent: dict[str, str | None] = {}
    record: dict[str, str] = {}
    for span_id, parent_id, record_id in spans:
        parent[span_id] = parent_id
        record[span_id] = record_id
    children: dict[str, list[str]] = {}
    for span_id, parent_id in parent.items():
        if parent_id is not None and parent_id in parent and parent_id != span_id:
            children.setdefault(parent_id, []).append(span_id)
    found: list[Chain] = []
    seen: set[str] = set()
    for span_id in sorted(parent):
        parent_id = parent[span_id]
        starts = (
            parent_id is None
            or parent_id not in parent
            or parent_id == span_id
            or len(children.get(parent_id, ())) > 1
        )
        if not starts:
            continue
        chain = Chain([record[span_id]])
        seen.add(span_id)
        current = span_id
        while len(children.get(current, ())) == 1:
            current = children[current][0]
            if current in seen:
                break
            seen.add(current)
            chain.records.append(record[current])
        found.append(chain)
    found.extend(Chain([record[s]]) for s in sorted(parent) if s not in seen)
    return found


def store_rows(session: Session, rows: Sequence[Row]) -> list[Row]:
    """Insert ``rows`` (ids already stored are skipped), adopt the evaluations waiting for
    them, and merge the records of one call (see the module docstring), in the caller's
    transaction. Returns the stored rows that are new calls: the ones to count."""
    stored = insert_records(session, rows)
    adopt_pending(session, stored)
    traced = [r for r in stored if r.get("trace_id") and r.get("span_id")]
    if not traced:
        return stored
    not_new = _nest(session, traced)
    return [r for r in stored if r["id"] not in not_new]


# One statement for a batch's traces (a round trip each made 512-trace exports twice as slow),
# taken in key order so that two writers never wait on each other.
_LOCK = text(
    "SELECT pg_advisory_xact_lock(:cls, k) "
    "FROM (SELECT DISTINCT unnest(CAST(:keys AS integer[])) AS k ORDER BY k) AS keys"
)


def _lock(session: Session, trace_ids: Sequence[str]) -> None:
    """Take the traces' advisory locks on PostgreSQL; SQLite has one writer at a time."""
    if session.get_bind().dialect.name != "postgresql":
        return
    keys = sorted({zlib.crc32(t.encode()) - 2**31 for t in trace_ids})  # int4 keys
    session.execute(_LOCK, {"cls": LOCK_CLASS, "keys": keys})


# On PostgreSQL, the batch's rows as four arrays in one statement: a fifth of the time of an
# executemany (a statement each, even pipelined) or of a compiled multi-row VALUES.
_REMEMBER_PG = text(
    "INSERT INTO trace_spans (trace_id, span_id, parent_span_id, record_id) "
    "SELECT * FROM unnest(CAST(:trace AS varchar[]), CAST(:span AS varchar[]), "
    "CAST(:parent AS varchar[]), CAST(:record AS varchar[])) "
    "ON CONFLICT (trace_id, span_id) DO NOTHING"
)


def _remember(session: Session, rows: Sequence[Row]) -> None:
    """The ``trace_spans`` rows of ``rows``; a (trace, span) already held keeps its record."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            _REMEMBER_PG,
            {
                "trace": [r["trace_id"] for r in rows],
                "span": [r["span_id"] for r in rows],
                "parent": [r.get("parent_span_id") for r in rows],
                "record": [r["id"] for r in rows],
            },
        )
        return
    table = TraceSpan.__table__
    assert isinstance(table, Table)
    values = [
        {
            "trace_id": r["trace_id"],
            "span_id": r["span_id"],
            "parent_span_id": r.get("parent_span_id"),
            "record_id": r["id"],
        }
        for r in rows
    ]
    insert = sqlite.insert(table).on_conflict_do_nothing(index_elements=["trace_id", "span_id"])
    session.execute(insert, values)


_SPANS_PG = text(
    "SELECT trace_id, span_id, parent_span_id, record_id FROM trace_spans "
    "WHERE trace_id = ANY(CAST(:traces AS varchar[]))"
)  # one array parameter: a 512-trace batch's IN list of 512 parameters took twice as long


def _spans_of(session: Session, traces: list[str]) -> list[tuple[str, str, str | None, str]]:
    """Every ``trace_spans`` row of ``traces``: (trace, span, parent span, record)."""
    if session.get_bind().dialect.name == "postgresql":
        found = session.execute(_SPANS_PG, {"traces": traces})
        return [(t, s, p, r) for t, s, p, r in found]
    columns = (TraceSpan.trace_id, TraceSpan.span_id, TraceSpan.parent_span_id, TraceSpan.record_id)
    spans: list[tuple[str, str, str | None, str]] = []
    for start in range(0, len(traces), _CHUNK):
        chunk = traces[start : start + _CHUNK]
        found = session.execute(select(*columns).where(TraceSpan.trace_id.in_(chunk)))
        spans.extend((t, s, p, r) for t, s, p, r in found)
    return spans


def _nest(session: Session, rows: Sequence[Row]) -> set[str]:
    """Regroup the traces of ``rows``; returns the ids of those that joined a call already
    stored, or are outer records of a new one (not new calls)."""
    traces = sorted({r["trace_id"] for r in rows})
    _lock(session, traces)
    _remember(session, rows)
    new = {r["id"] for r in rows}
    by_trace: dict[str, list[tuple[str, str | None, str]]] = {}
    for trace_id, span_id, parent_id, record_id in _spans_of(session, traces):
        by_trace.setdefault(trace_id, []).append((span_id, parent_id, record_id))
    groups = [c for spans in by_trace.values() for c in chains(spans)]
    # A record stored before may be merged or hold links from an earlier grouping; a new one
    # holds neither, so a new call alone (the usual case) costs no further query.
    alone = [c.survivor for c in groups if len(c.records) == 1 and c.survivor not in new]
    linked: set[str] = set()
    for start in range(0, len(alone), _CHUNK):
        chunk = alone[start : start + _CHUNK]
        query = select(Record.id, Record.merged_into, Record.links).where(Record.id.in_(chunk))
        linked.update(rid for rid, merged, links in session.execute(query) if merged or links)
    not_new: set[str] = set()
    for chain in groups:
        fresh = [m for m in chain.records if m in new]
        if len(fresh) < len(chain.records):
            not_new.update(fresh)  # joined a call already stored (and counted)
        else:
            not_new.update(m for m in chain.records if m != chain.survivor)
    # one call, or one no longer (a sibling split it)
    changing = [c for c in groups if len(c.records) > 1 or c.survivor in linked]
    if changing:
        _merge(session, changing)
    return not_new


# What a grouping reads and writes of a record: never its content.
_STATE = ("id", *INHERITED, "tags", "inherited", "links", "merged_into")
_STATE_COLUMNS = tuple(getattr(Record, name) for name in _STATE)


def _undo(record: Row) -> None:
    """Take back what ``record`` inherited in an earlier grouping."""
    inherited = record["inherited"] or ()
    tags = dict(record["tags"] or {})
    for name in inherited:
        if name.startswith("tags."):
            tags.pop(name[5:], None)
        else:
            record[name] = None
    if inherited:
        record["tags"] = tags or None
    record["inherited"] = None


def _merge(session: Session, groups: Sequence[Chain]) -> None:
    """Make each chain one call: the survivor inherits, the others point at it. All the
    batch's chains at once, reading and writing only the columns a grouping touches: a few
    statements, however many calls the batch merges."""
    ids = [m for chain in groups for m in chain.records]
    loaded: dict[str, Row] = {}
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        query = select(*_STATE_COLUMNS).where(Record.id.in_(chunk))
        loaded.update((row["id"], dict(row)) for row in session.execute(query).mappings())
    before = {rid: dict(row) for rid, row in loaded.items()}
    moved: dict[str, str] = {}  # merged record -> survivor
    for chain in groups:
        records = [loaded[m] for m in chain.records if m in loaded]
        if records:
            _merge_chain(records)
            moved.update((r["id"], records[-1]["id"]) for r in records[:-1])
    changed = [row for rid, row in loaded.items() if row != before[rid]]
    if changed:
        session.execute(update(Record), changed)  # by primary key, one executemany
    if moved:
        _move_judgements(session, moved)


def _merge_chain(records: list[Row]) -> None:
    """``records`` (outermost first) become one call, the last one surviving."""
    for record in records:
        _undo(record)
    survivor, outer = records[-1], records[-2::-1]  # outer: innermost first
    inherited: list[str] = []
    for name in INHERITED:
        if survivor[name] is None:
            value = next((r[name] for r in outer if r[name] is not None), None)
            if value is not None:
                survivor[name] = value
                inherited.append(name)
    tags = dict(survivor["tags"] or {})
    for record in outer:
        for key, value in (record["tags"] or {}).items():
            if key not in tags:
                tags[key] = value
                inherited.append(f"tags.{key}")
    survivor["tags"] = tags or None
    survivor["inherited"] = inherited or None
    survivor["merged_into"] = None
    survivor["links"] = [r["id"] for r in outer] or None
    for record in outer:
        record["merged_into"] = survivor["id"]
        record["links"] = None


def _move_judgements(session: Session, moved: dict[str, str]) -> None:
    """Feedback on merged records moves to their survivor, and so do their evaluations, but
    for an evaluator that already judged the survivor (that one stays where it is). One query
    each finds what there is to move (usually nothing: spans come before their feedback)."""
    merged = list(moved)
    feedback: list[Feedback] = []
    evaluations: list[Evaluation] = []
    for start in range(0, len(merged), _CHUNK):
        chunk = merged[start : start + _CHUNK]
        feedback += session.scalars(select(Feedback).where(Feedback.record_id.in_(chunk)))
        evaluations += session.scalars(
            select(Evaluation).where(Evaluation.record_id.in_(chunk)).order_by(Evaluation.id)
        )
    for event in feedback:
        event.record_id = moved[event.record_id]
    if evaluations:
        survivors = sorted({moved[e.record_id] for e in evaluations})
        held = set(
            session.execute(
                select(Evaluation.record_id, Evaluation.evaluator, Evaluation.version).where(
                    Evaluation.record_id.in_(survivors)
                )
            ).tuples()
        )
        for evaluation in evaluations:
            key = (moved[evaluation.record_id], evaluation.evaluator, evaluation.version)
            if key not in held:
                evaluation.record_id = key[0]
                held.add(key)
    session.flush()
