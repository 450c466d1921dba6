"""The record write path every door shares: :class:`RecordWriter`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session

from llmscope.collector.costs.accounting import Accounting
from llmscope.collector.ingest.evaluations import ExternalEvaluation, write_evaluations
from llmscope.collector.ingest.feedback import FeedbackEvent, write_feedback
from llmscope.collector.ingest.nesting import store_rows
from llmscope.collector.ingest.recorder import Recorder
from llmscope.collector.ingest.rows import finish_row
from llmscope.collector.ingest.store import insert_steps
from llmscope.config import Settings
from llmscope.db.models import Evaluation, Feedback
from llmscope.schema import RecordIn, record_row

__all__ = ["RecordWriter"]

Row = dict[str, Any]


class RecordWriter:
    """Turns accepted records into stored rows, one way for REST, OTLP and the gateway.

    Made once per collector from its settings (``redact_pii``), so no door decides redaction
    itself; with an :class:`~llmscope.collector.costs.accounting.Accounting`, every row is priced
    (``cost_usd``) as it is finished and counted (metrics, budgets) once it counts::

        writer = RecordWriter.from_settings(settings, recorder, accounting)
        rows = [writer.row(record, source="api") for record in records]   # validated RecordIn
        stored = writer.store(session, rows)     # in the caller's transaction: all or nothing
        session.commit()
        writer.accepted(stored)                  # what this call stored: a retry counts nothing
        writer.submit(call.row(), log_content=False)   # off the request path (the gateway)
        writer.feedback(session, [FeedbackEvent.from_input(record_id, body)])
        writer.evaluations(session, [ExternalEvaluation("relevance", record_id, passed=True)])
    """

    def __init__(
        self,
        *,
        redact_pii: bool = False,
        recorder: Recorder | None = None,
        accounting: Accounting | None = None,
    ) -> None:
        self.redact_pii = redact_pii
        self.recorder = recorder
        self.accounting = accounting
        if recorder is not None and accounting is not None:
            recorder.on_stored = self._traced_stored

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        recorder: Recorder | None = None,
        accounting: Accounting | None = None,
    ) -> RecordWriter:
        return cls(redact_pii=settings.redact_pii, recorder=recorder, accounting=accounting)

    def finish(self, row: Row, *, log_content: bool = True) -> Row:
        """``row`` ready to store: cut to the limits, content rules applied, masked, priced."""
        row = finish_row(row, redact_pii=self.redact_pii, log_content=log_content)
        if self.accounting is not None:
            self.accounting.price((row,))
        return row

    def row(self, record: RecordIn, *, source: str, internal: bool = False) -> Row:
        """The finished row of a validated record."""
        return self.finish(record_row(record, source=source, internal=internal))

    def store(self, session: Session, rows: Sequence[Row]) -> list[Row]:
        """Insert finished ``rows`` in the caller's transaction; ids already stored are skipped.

        Returns the rows it stored that are new calls, the ones to pass to :meth:`accepted` once
        committed (a span of a call already stored is merged with it, not counted again:
        ``nesting.py``). Evaluations that were waiting for these records are adopted in the
        same transaction.
        """
        return store_rows(session, rows)

    def accepted(self, rows: Sequence[Row]) -> None:
        """``rows`` count now (committed, or for the gateway answered): metrics and budgets."""
        if self.accounting is not None:
            self.accounting.counted(rows)

    def submit(self, row: Row, *, log_content: bool = True) -> None:
        """Finish ``row`` and hand it to the recorder: journaled now, stored in the background.

        The call it records is answered, so it counts at once; but a call in a trace (the
        caller sent ``traceparent``) may be one the app's own spans recorded already, so it
        counts once stored, if it is a new call (:meth:`_traced_stored`).
        """
        if self.recorder is None:
            raise RuntimeError("this writer has no recorder to submit to")
        row = self.finish(row, log_content=log_content)
        self.recorder.submit(row)
        if not row.get("trace_id"):
            self.accepted((row,))

    def _traced_stored(self, rows: Sequence[Row]) -> None:
        """The recorder stored ``rows`` (new calls only): count those in a trace."""
        traced = [row for row in rows if row.get("trace_id")]
        if traced:
            self.accepted(traced)

    def feedback(self, session: Session, events: Sequence[FeedbackEvent]) -> list[Feedback | None]:
        """Append feedback events in the caller's transaction (see :func:`write_feedback`)."""
        return write_feedback(session, events, redact_pii=self.redact_pii)

    def steps(self, session: Session, rows: Sequence[Row]) -> None:
        """Store agents' steps (``spans`` rows) in the caller's transaction."""
        insert_steps(session, rows, redact_pii=self.redact_pii)

    def evaluations(
        self, session: Session, items: Sequence[ExternalEvaluation], *, wait: bool = False
    ) -> list[Evaluation | None]:
        """Store evaluations computed elsewhere in the caller's transaction (see
        :func:`~llmscope.collector.ingest.evaluations.write_evaluations`)."""
        return write_evaluations(session, items, redact_pii=self.redact_pii, wait=wait)
