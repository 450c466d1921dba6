"""Evaluations computed elsewhere: from the REST API and from traces, ``evaluations`` rows.

Teams score answers in their own pipelines; their verdicts arrive as
``POST /api/v1/records/{id}/evaluations``, as OpenTelemetry ``gen_ai.evaluation.result`` span
events and as OpenInference evaluation annotations. Each becomes an :class:`ExternalEvaluation`
and, through :func:`write_evaluations`, one ``evaluations`` row with the version
:data:`EXTERNAL_VERSION` (``external``), beside the verdicts of the configured evaluators: the
analysis tests it per cluster the same way, under the name ``NAME@external``.

- One row per (record, evaluator): a later verdict of the same evaluator on the same record
  replaces the earlier one, so a retried export or a re-scored answer stores no duplicate.
- ``passed`` is taken as given; without it, a pass/fail label (``pass``, ``correct``,
  ``fail``, ``hallucinated``...: :func:`passed_for`) decides it; a bare score stays a score
  (the analysis counts only verdicts with ``passed``).
- The record is named by its id, the span id of a traced call, or the provider's response id
  (``gen_ai.response.id``). Traces come in any order, so an evaluation from a trace whose record
  is not stored yet waits in ``pending_evaluations`` and is adopted when the record is stored
  (:func:`adopt_pending`, called by every insert); one still waiting after
  :data:`PENDING_RETENTION` is dropped. The REST API never waits: an unknown record is a 404.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from llmscope import limits
from llmscope.collector.ingest.redaction import redact_text
from llmscope.collector.ingest.store import find_record_id
from llmscope.db.models import EXTERNAL_VERSION, Evaluation, PendingEvaluation, Record, utcnow

__all__ = [
    "EXTERNAL_VERSION",
    "EVALUATOR_NAME",
    "PENDING_RETENTION",
    "ExternalEvaluation",
    "adopt_pending",
    "passed_for",
    "write_evaluations",
]

EVALUATOR_NAME = 64  # evaluations.evaluator
PENDING_RETENTION = timedelta(days=7)
JUSTIFICATION = 20_000

_PASS_LABELS = {
    "pass", "passed", "correct", "relevant", "good", "up", "thumbs_up", "yes", "true",
    "positive", "helpful", "factual", "accurate", "safe",
}  # fmt: skip
_FAIL_LABELS = {
    "fail", "failed", "incorrect", "not_relevant", "irrelevant", "bad", "down", "thumbs_down",
    "no", "false", "negative", "unhelpful", "hallucinated", "inaccurate", "unsafe", "toxic",
}  # fmt: skip


def passed_for(label: str | None) -> bool | None:
    """True for a passing label (``pass``, ``correct``...), False for a failing one, else None."""
    if label is None:
        return None
    key = label.strip().lower().replace(" ", "_").replace("-", "_")
    return True if key in _PASS_LABELS else False if key in _FAIL_LABELS else None


@dataclass(frozen=True)
class ExternalEvaluation:
    """One verdict computed elsewhere, on the record ``record_ref`` (or ``span_id``, or
    ``response_id``) names."""

    evaluator: str
    record_ref: str | None = None
    score: float | None = None
    passed: bool | None = None
    label: str | None = None
    justification: str | None = None
    created_at: datetime | None = None
    """When it was made; None: now."""
    span_id: str | None = None
    """The traced call's span id, where ``record_ref`` names no record."""
    response_id: str | None = None
    """The provider's response id of the call (``gen_ai.response.id``)."""

    def verdict(self) -> bool | None:
        return self.passed if self.passed is not None else passed_for(self.label)


def _fitted(item: ExternalEvaluation, redact_pii: bool) -> ExternalEvaluation:
    # the verdict is read from the label as given, before the label is cut or masked
    passed = item.verdict()
    justification = item.justification
    if justification is not None:
        justification = justification[:JUSTIFICATION]
        if redact_pii:
            justification = redact_text(justification)
    label = item.label[: limits.NAME] if item.label is not None else None
    if label is not None and redact_pii:
        label = redact_text(label)[: limits.NAME]
    return replace(
        item,
        evaluator=item.evaluator[:EVALUATOR_NAME],
        label=label,
        justification=justification,
        passed=passed,
        created_at=item.created_at or utcnow(),
    )


def _record_of(session: Session, item: ExternalEvaluation) -> str | None:
    for ref in (item.record_ref, item.span_id):
        if ref:
            found = find_record_id(session, ref)
            if found is not None:
                return found
    if item.response_id:
        return session.scalar(
            select(Record.id)
            .where(Record.response_id == item.response_id[: limits.NAME])
            .order_by(Record.timestamp.desc())
            .limit(1)
        )
    return None


def _store(session: Session, record_id: str, item: ExternalEvaluation) -> Evaluation:
    row = session.scalar(
        select(Evaluation).where(
            Evaluation.record_id == record_id,
            Evaluation.evaluator == item.evaluator,
            Evaluation.version == EXTERNAL_VERSION,
        )
    )
    if row is None:
        row = Evaluation(record_id=record_id, evaluator=item.evaluator, version=EXTERNAL_VERSION)
        session.add(row)
    elif item.created_at is not None and row.created_at > item.created_at:
        return row  # an older verdict arriving late does not replace the newer one
    row.status = "done"
    row.score = item.score
    row.passed = item.passed
    row.label = item.label
    row.justification = item.justification
    row.created_at = item.created_at or utcnow()
    row.claimed_until = None
    session.flush()
    return row


def write_evaluations(
    session: Session,
    items: Sequence[ExternalEvaluation],
    *,
    redact_pii: bool,
    wait: bool = False,
) -> list[Evaluation | None]:
    """Store ``items``; for each, its row, or None when its record is not stored (with
    ``wait``, it then waits in ``pending_evaluations``). Runs in the caller's transaction."""
    written: list[Evaluation | None] = []
    waiting = False
    for raw in items:
        item = _fitted(raw, redact_pii)
        record_id = _record_of(session, item)
        if record_id is not None:
            written.append(_store(session, record_id, item))
            continue
        written.append(None)
        if wait and (item.record_ref or item.span_id or item.response_id):
            waiting = True
            session.add(
                PendingEvaluation(
                    record_ref=item.record_ref[: limits.RECORD_ID] if item.record_ref else None,
                    span_id=item.span_id[: limits.SPAN_ID] if item.span_id else None,
                    response_id=item.response_id[: limits.NAME] if item.response_id else None,
                    evaluator=item.evaluator,
                    score=item.score,
                    passed=item.passed,
                    label=item.label,
                    justification=item.justification,
                    created_at=item.created_at,
                )
            )
    if waiting:
        session.execute(
            delete(PendingEvaluation).where(
                PendingEvaluation.received_at < utcnow() - PENDING_RETENTION
            )
        )
        session.flush()
    return written


def adopt_pending(session: Session, rows: Sequence[dict[str, Any]]) -> int:
    """Turn the pending evaluations of the just stored ``rows`` into evaluations; how many."""
    if not rows:
        return 0
    ids = {r["id"] for r in rows}
    spans = {r["span_id"] for r in rows if r.get("span_id")}
    responses = {r["response_id"] for r in rows if r.get("response_id")}
    conditions = [PendingEvaluation.record_ref.in_(ids)]
    if spans:
        conditions.append(PendingEvaluation.span_id.in_(spans))
    if responses:
        conditions.append(PendingEvaluation.response_id.in_(responses))
    waiting = session.scalars(
        select(PendingEvaluation).where(or_(*conditions)).order_by(PendingEvaluation.id)
    ).all()
    adopted = 0
    for pending in waiting:
        item = ExternalEvaluation(
            evaluator=pending.evaluator,
            record_ref=pending.record_ref,
            score=pending.score,
            passed=pending.passed,
            label=pending.label,
            justification=pending.justification,
            created_at=pending.created_at,
            span_id=pending.span_id,
            response_id=pending.response_id,
        )
        record_id = _record_of(session, item)
        if record_id is None:
            continue
        _store(session, record_id, item)
        session.delete(pending)
        adopted += 1
    if waiting:
        session.flush()
    return adopted
