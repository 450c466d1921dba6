"""The one masking rule for everything the collector stores (``LLMSCOPE_REDACT_PII=true``).

:data:`CONTENT` names, per table, the columns that hold what a user, a model or a judge wrote:
the records' content, feedback comments, judges' justifications and errors, experiments'
answers, verdicts, spec and report (a candidate template's text). With masking on, each of them
is masked (``redaction.redact_value``) before it reaches the store, whoever writes it:

- the collector's sessions come from :func:`sessionmaker_for`, whose sessions mask the content
  columns of every object they flush (``session.add``, attribute changes): a new write path
  that stores objects cannot forget;
- the store helpers that write with statements rather than objects (the evaluations' verdicts)
  pass their values through :func:`masked`, which masks when the session does;
- records are masked earlier still, by ``RecordWriter`` before the journal, so no unmasked
  record touches the disk either.

In JSON documents (an experiment's spec and report, an answer's verdicts) every string is
masked except those under :data:`IDENTIFIER_KEYS` (ids, names, versions: what the code reads
back and matches on). Masking is idempotent: masked text is left as it is.
``tests/collector/test_masking.py`` holds every text and JSON column of every table to
:data:`CONTENT` (content, or named as not content), so a new column cannot be forgotten either.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Engine, event, inspect
from sqlalchemy.orm import Session, sessionmaker

from llmscope.collector.ingest.redaction import CONTENT_FIELDS, redact_text, redact_value
from llmscope.config import Settings
from llmscope.db import make_sessionmaker
from llmscope.db.models import (
    Base,
    Evaluation,
    Experiment,
    ExperimentItem,
    Feedback,
    PendingEvaluation,
    Record,
    StoredSpan,
)

__all__ = ["CONTENT", "IDENTIFIER_KEYS", "masked", "masks", "sessionmaker_for"]

CONTENT: dict[type[Base], tuple[str, ...]] = {
    Record: CONTENT_FIELDS,
    Feedback: ("comment", "tags"),
    Evaluation: ("justification", "error", "label"),
    PendingEvaluation: ("justification", "label"),
    ExperimentItem: ("answer", "error", "verdicts"),
    Experiment: ("spec", "report"),
    StoredSpan: ("error", "attributes"),
}
"""Per table, the columns holding what someone wrote: masked with masking on."""

IDENTIFIER_KEYS = frozenset(
    {"id", "run_id", "owner", "name", "version", "type", "status", "created_at", "endpoint"}
)
"""Keys of a JSON document whose values are identifiers, never masked."""

_MASKING = "llmscope.redact_pii"  # the session.info key saying this session masks


def sessionmaker_for(engine: Engine, settings: Settings) -> sessionmaker[Session]:
    """The collector's sessions on ``engine``: with ``redact_pii``, they mask what they write."""
    factory = make_sessionmaker(engine)
    if settings.redact_pii:
        factory.configure(info={_MASKING: True})
        event.listen(factory, "before_flush", _mask_flushed)
    return factory


def masks(session: Session) -> bool:
    """Whether ``session`` masks what it writes."""
    return bool(session.info.get(_MASKING))


def mask_document(value: Any) -> Any:
    """Every string in a JSON document masked, except the values of :data:`IDENTIFIER_KEYS`."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, list | tuple):
        return [mask_document(v) for v in value]
    if isinstance(value, Mapping):
        return {k: v if k in IDENTIFIER_KEYS else mask_document(v) for k, v in value.items()}
    return value


def _mask_column(table: type[Base], column: str, value: Any) -> Any:
    if value is None:
        return None
    # a record's content is masked whole, as on the ingest path; other JSON is a document
    return redact_value(value) if table is Record else mask_document(value)


def masked(session: Session, table: type[Base], values: dict[str, Any]) -> dict[str, Any]:
    """``values`` (column -> value, for a row of ``table``) as the session stores them: with
    its content masked when the session masks."""
    columns = CONTENT.get(table, ())
    if not masks(session) or not any(values.get(c) is not None for c in columns):
        return values
    out = dict(values)
    for column in columns:
        if column in out:
            out[column] = _mask_column(table, column, out[column])
    return out


def _mask_flushed(session: Session, _context: Any, _instances: Any) -> None:
    """Mask the content columns of every object about to be written (new or changed)."""
    for obj in (*session.new, *session.dirty):
        table = type(obj)
        columns = CONTENT.get(table)
        if not columns:
            continue
        state = inspect(obj)
        for column in columns:
            if state.persistent and not state.attrs[column].history.has_changes():
                continue  # unchanged: it was masked when it was written
            value = getattr(obj, column)
            if value is not None:
                setattr(obj, column, _mask_column(table, column, value))
