"""The collector's one write path: every record and feedback event reaches the store through here.

Whatever door a record came in by, it takes the same steps::

    REST POST /api/v1/records ─┐ validated as RecordIn (422 names records[i].field)
    OTLP POST /v1/traces ──────┤ spans mapped, validated as RecordIn (a bad span: rejected alone)
    gateway call ──────────────┘ a row built from the call (its inputs checked: 400)
                │
                ▼
    RecordWriter.finish   cut to the column limits, log_content: false, PII masking (rows.py),
                          priced (cost_usd, with the collector's Accounting)
                │
                ├─▶ RecordWriter.store   in the caller's transaction: all or nothing, ids
                │                        already stored skipped (REST 201, OTLP 200: committed)
                └─▶ RecordWriter.submit  journaled, batched off the request path, spooled
                                         while the store is down (recorder.py; the gateway)

Once stored (committed, or for the gateway answered), :meth:`RecordWriter.accepted` counts the
rows (metrics, budgets). Feedback (REST and traces alike) goes through
:meth:`RecordWriter.feedback` (feedback.py), evaluations computed elsewhere through
:meth:`RecordWriter.evaluations` (evaluations.py; those waiting for their record are adopted
by every insert).

Modules: ``writer`` the entry point, ``rows`` the finishing rules, ``redaction`` the PII masks,
``store`` the idempotent insert, ``recorder`` the background writer, ``feedback`` the feedback
writer, ``evaluations`` the writer of evaluations computed elsewhere. Redaction is decided once,
from the settings the writer is made with.
"""

from llmscope.collector.ingest.evaluations import ExternalEvaluation
from llmscope.collector.ingest.feedback import FeedbackEvent
from llmscope.collector.ingest.recorder import Recorder
from llmscope.collector.ingest.writer import RecordWriter

__all__ = ["ExternalEvaluation", "FeedbackEvent", "Recorder", "RecordWriter"]
