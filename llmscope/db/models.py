"""The store's schema: every table llmscope has, for the collector, the analysis and the dashboard.

The collector writes ``records`` (with ``trace_spans``), ``feedback``, ``evaluations`` (and
``pending_evaluations``, external ones waiting for their record) and ``experiments`` (with
``experiment_items``); the analysis reads them and writes ``embeddings``, ``analysis_runs``,
``run_clusters``, ``run_assignments``, ``summaries`` and ``alerts``; the dashboard only reads.
Alembic migrations in ``migrations/`` create these tables; change a table here and add a
migration beside it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    and_,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql.elements import ColumnElement

from llmscope import limits
from llmscope.db.cluster_stats import ClusterStats

# JSONB on PostgreSQL, JSON (text) on SQLite: the same Python values either way.
JSONType = JSON().with_variant(JSONB(), "postgresql")
# SQLite only auto-increments an INTEGER PRIMARY KEY.
BigIntPK = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware datetimes in, timezone-aware UTC datetimes out, on every backend.

    SQLite has no time zones, so values are stored as naive UTC and re-tagged on the way out.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    pass


class Record(Base):
    """One LLM call: what was asked, what came back, and how it went."""

    __tablename__ = "records"

    id: Mapped[str] = mapped_column(String(limits.RECORD_ID), primary_key=True)
    timestamp: Mapped[datetime] = mapped_column(UTCDateTime())
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # api|gateway|otlp|sdk
    source: Mapped[str] = mapped_column(String(limits.SOURCE), default="api")
    endpoint: Mapped[str | None] = mapped_column(String(limits.NAME))
    provider: Mapped[str | None] = mapped_column(String(limits.PROVIDER))
    model: Mapped[str | None] = mapped_column(String(limits.NAME))
    prompt: Mapped[str | None] = mapped_column(Text)
    messages: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONType)
    response: Mapped[str | None] = mapped_column(Text)
    template_name: Mapped[str | None] = mapped_column(String(limits.NAME))
    template_version: Mapped[str | None] = mapped_column(String(limits.VERSION))
    template_text: Mapped[str | None] = mapped_column(Text)
    template_variables: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    input_tokens: Mapped[int | None] = mapped_column(Integer)
    output_tokens: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    ttft_ms: Mapped[float | None] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(limits.STATUS), default="ok")
    error: Mapped[str | None] = mapped_column(Text)
    user_id: Mapped[str | None] = mapped_column(String(limits.NAME))
    session_id: Mapped[str | None] = mapped_column(String(limits.NAME))
    tags: Mapped[dict[str, str] | None] = mapped_column(JSONType)
    trace_id: Mapped[str | None] = mapped_column(String(limits.TRACE_ID))
    span_id: Mapped[str | None] = mapped_column(String(limits.SPAN_ID))
    # Calls llmscope makes itself (cluster summaries): recorded, never analysed.
    internal: Mapped[bool] = mapped_column(Boolean, default=False)
    # US dollars, priced when written (collector/costs/pricing.py); None: the model has no price.
    cost_usd: Mapped[float | None] = mapped_column(Float)
    # What the model called ([{id, name, arguments}]) and which tools it was offered (names).
    tool_calls: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONType)
    tools: Mapped[list[str] | None] = mapped_column(JSONType)
    # Every choice of an n > 1 call ({index, text, tool_calls, finish_reason}); else null.
    choices: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONType)
    # The gateway route named by the caller; ``endpoint`` is the endpoint that answered.
    route: Mapped[str | None] = mapped_column(String(limits.NAME))
    # The provider's id of the answer (OpenTelemetry's gen_ai.response.id): how an evaluation
    # sent apart from the call's own span names the call it judged.
    response_id: Mapped[str | None] = mapped_column(String(limits.NAME))
    # The span this call's span was started under (OTLP, or a gateway call's ``traceparent``).
    parent_span_id: Mapped[str | None] = mapped_column(String(limits.SPAN_ID))
    # One call traced at several levels (a LangChain span around the OpenAI span, an app's span
    # around a gateway call) is one record: the innermost survives, the ids of the others are
    # its ``links``, and each of them names it in ``merged_into`` (kept, never analysed or
    # counted). ``inherited`` lists what the survivor took from them (column names, and
    # ``tags.KEY``), so a regrouping can take it back. See collector/ingest/nesting.py.
    links: Mapped[list[str] | None] = mapped_column(JSONType)
    merged_into: Mapped[str | None] = mapped_column(String(limits.RECORD_ID))
    inherited: Mapped[list[str] | None] = mapped_column(JSONType)

    __table_args__ = (
        Index("ix_records_timestamp", "timestamp"),
        Index("ix_records_endpoint_timestamp", "endpoint", "timestamp"),
        Index("ix_records_model_timestamp", "model", "timestamp"),
        Index("ix_records_template_timestamp", "template_name", "template_version", "timestamp"),
        Index("ix_records_span_id", "span_id"),
        Index("ix_records_session_id", "session_id"),
        Index("ix_records_received_at", "received_at"),
        Index("ix_records_response_id", "response_id"),
        Index("ix_records_trace_id", "trace_id"),
        Index("ix_records_merged_into", "merged_into"),
    )


def analysable() -> ColumnElement[bool]:
    """The records that are calls of the app, once each: not llmscope's own (``internal``), not
    merged into another record of the same call (``merged_into``)."""
    return and_(Record.internal.is_(False), Record.merged_into.is_(None))


class TraceSpan(Base):
    """A traced LLM call's place in its trace: which span it is and which span it ran under.

    Written with the record (OTLP spans, gateway calls with a ``traceparent``); the nesting of
    one call's spans is worked out from these rows (``collector/ingest/nesting.py``).
    """

    __tablename__ = "trace_spans"

    trace_id: Mapped[str] = mapped_column(String(limits.TRACE_ID), primary_key=True)
    span_id: Mapped[str] = mapped_column(String(limits.SPAN_ID), primary_key=True)
    parent_span_id: Mapped[str | None] = mapped_column(String(limits.SPAN_ID))
    record_id: Mapped[str] = mapped_column(
        String(limits.RECORD_ID), ForeignKey("records.id", ondelete="CASCADE")
    )

    __table_args__ = (Index("ix_trace_spans_record", "record_id"),)


class StoredSpan(Base):
    """A step of an agent's trace that is not an LLM call: a tool, a retriever, an agent or a
    chain (OTLP spans; ``collector/otlp/steps.py``). The LLM calls of the trace are records;
    together they make the trace's tree (``llmscope.db.traces``)."""

    __tablename__ = "spans"

    trace_id: Mapped[str] = mapped_column(String(limits.TRACE_ID), primary_key=True)
    span_id: Mapped[str] = mapped_column(String(limits.SPAN_ID), primary_key=True)
    parent_span_id: Mapped[str | None] = mapped_column(String(limits.SPAN_ID))
    name: Mapped[str] = mapped_column(String(limits.NAME))
    kind: Mapped[str] = mapped_column(String(16))  # tool|retriever|agent|chain|...
    start: Mapped[datetime] = mapped_column(UTCDateTime())
    duration_ms: Mapped[float | None] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(limits.STATUS))  # ok|error
    error: Mapped[str | None] = mapped_column(Text)
    attributes: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (Index("ix_spans_start", "start"),)


class Feedback(Base):
    """One feedback event on a record. A record's feedback is a history; the latest counts."""

    __tablename__ = "feedback"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    record_id: Mapped[str] = mapped_column(
        String(limits.RECORD_ID), ForeignKey("records.id", ondelete="CASCADE")
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # "up" / "down" for thumbs; None when the user gave a number only.
    thumb: Mapped[str | None] = mapped_column(String(limits.THUMB))
    score: Mapped[float | None] = mapped_column(Float)
    tags: Mapped[list[str] | None] = mapped_column(JSONType)
    comment: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(limits.FEEDBACK_SOURCE), default="user")

    __table_args__ = (Index("ix_feedback_record_created", "record_id", "created_at", "id"),)


EXTERNAL_VERSION = "external"
"""The version of every evaluation computed elsewhere (REST or traces), not by a configured
evaluator; the analysis names such an evaluator ``NAME@external``."""


class Evaluation(Base):
    """One evaluator's verdict on one record, for one version of the evaluator.

    A row is first a claim (``status='pending'``, ``claimed_until`` set) so that two judges
    (the online one in ``serve``, ``llmscope evaluate``, several workers) never judge the same
    record twice; it becomes ``done`` (``score``/``passed`` set) or ``error`` (``error`` set).
    A claim whose holder died expires at ``claimed_until`` and is picked up again.
    """

    __tablename__ = "evaluations"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    record_id: Mapped[str] = mapped_column(
        String(128), ForeignKey("records.id", ondelete="CASCADE")
    )
    evaluator: Mapped[str] = mapped_column(String(64))
    version: Mapped[str] = mapped_column(String(16))  # "external": computed elsewhere
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending|done|error
    score: Mapped[float | None] = mapped_column(Float)
    passed: Mapped[bool | None] = mapped_column(Boolean)
    label: Mapped[str | None] = mapped_column(String(limits.NAME))  # an external one's label
    justification: Mapped[str | None] = mapped_column(Text)
    judge_model: Mapped[str | None] = mapped_column(String(256))
    judge_record_id: Mapped[str | None] = mapped_column(String(128))  # the internal call
    input_tokens: Mapped[int | None] = mapped_column(Integer)
    output_tokens: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        UniqueConstraint("record_id", "evaluator", "version", name="uq_evaluations_record"),
        Index("ix_evaluations_evaluator_created", "evaluator", "version", "created_at"),
        Index("ix_evaluations_created", "created_at"),
    )


class PendingEvaluation(Base):
    """An evaluation computed elsewhere whose record is not stored yet.

    Traces arrive in any order: the evaluation of a call may come before the call's own span
    (an evaluator span ends first, or is exported by another process). It waits here, named by
    the record id, span id or response id it refers to, and becomes an ``evaluations`` row when
    that record is stored (``llmscope.collector.ingest.evaluations``).
    """

    __tablename__ = "pending_evaluations"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    record_ref: Mapped[str | None] = mapped_column(String(limits.RECORD_ID))
    span_id: Mapped[str | None] = mapped_column(String(limits.SPAN_ID))
    response_id: Mapped[str | None] = mapped_column(String(limits.NAME))
    evaluator: Mapped[str] = mapped_column(String(64))
    score: Mapped[float | None] = mapped_column(Float)
    passed: Mapped[bool | None] = mapped_column(Boolean)
    label: Mapped[str | None] = mapped_column(String(limits.NAME))
    justification: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (
        Index("ix_pending_evaluations_record_ref", "record_ref"),
        Index("ix_pending_evaluations_span_id", "span_id"),
        Index("ix_pending_evaluations_response_id", "response_id"),
        Index("ix_pending_evaluations_received_at", "received_at"),
    )


class Experiment(Base):
    """A candidate fix tried on a problem cluster's records: its spec and, once done, its report.

    ``spec`` holds what was asked (variants as given and resolved, evaluators, sample size) and
    ``record_ids`` the dataset in order; ``report`` is an ``ExperimentReport`` as JSON.
    """

    __tablename__ = "experiments"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    run_id: Mapped[str] = mapped_column(String(64))
    cluster_id: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="running")  # running|done|stopped
    spec: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    record_ids: Mapped[list[str]] = mapped_column(JSONType, default=list)
    report: Mapped[dict[str, Any] | None] = mapped_column(JSONType)

    __table_args__ = (Index("ix_experiments_created", "created_at"),)


class ExperimentItem(Base):
    """One answer in an experiment: a record's original answer (``variant='baseline'``) or a
    variant's replayed answer, with the evaluators' verdicts on it.

    ``variant_key`` is a hash of what the variant sends (endpoint, template text, parameters):
    a later experiment with the same key on the same record reuses the answer.
    """

    __tablename__ = "experiment_items"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    experiment_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("experiments.id", ondelete="CASCADE")
    )
    record_id: Mapped[str] = mapped_column(String(128))
    variant: Mapped[str] = mapped_column(String(64))  # baseline | the variant's index "1", "2"..
    variant_key: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="ok")  # ok|error
    answer: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    call_record_id: Mapped[str | None] = mapped_column(String(128))  # the internal call
    input_tokens: Mapped[int | None] = mapped_column(Integer)
    output_tokens: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    cost_usd: Mapped[float | None] = mapped_column(Float)
    verdicts: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (
        UniqueConstraint("experiment_id", "record_id", "variant", name="uq_experiment_items"),
        Index("ix_experiment_items_reuse", "variant_key", "record_id"),
    )


class Embedding(Base):
    """A cached embedding: each distinct text is embedded once per model, across runs."""

    __tablename__ = "embeddings"

    model: Mapped[str] = mapped_column(String(256), primary_key=True)
    text_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    dim: Mapped[int] = mapped_column(Integer)
    vector: Mapped[bytes] = mapped_column(LargeBinary)  # float32, little-endian
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class AnalysisRun(Base):
    """One analysis run; ``report`` is the contract's run report, as served by the API."""

    __tablename__ = "analysis_runs"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    baseline_start: Mapped[datetime] = mapped_column(UTCDateTime())
    baseline_end: Mapped[datetime] = mapped_column(UTCDateTime())
    current_start: Mapped[datetime] = mapped_column(UTCDateTime())
    current_end: Mapped[datetime] = mapped_column(UTCDateTime())
    params: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    report: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)

    __table_args__ = (Index("ix_analysis_runs_created", "created_at"),)


class RunCluster(Base):
    """A cluster of one run, with what is needed to match it to clusters of other runs."""

    __tablename__ = "run_clusters"

    run_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("analysis_runs.id", ondelete="CASCADE"), primary_key=True
    )
    cluster_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Identity that survives re-clustering: inherited from the best-matching earlier cluster.
    stable_key: Mapped[str | None] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    centroid: Mapped[bytes | None] = mapped_column(LargeBinary)  # float32 embedding centroid
    keywords: Mapped[list[str]] = mapped_column(JSONType, default=list)
    stats: Mapped[ClusterStats] = mapped_column(JSONType, default=dict)
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSONType)

    __table_args__ = (Index("ix_run_clusters_stable_key", "stable_key"),)


class RunAssignment(Base):
    """Which cluster a record fell in during a run, in which window, and where on the map."""

    __tablename__ = "run_assignments"

    run_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("analysis_runs.id", ondelete="CASCADE"), primary_key=True
    )
    record_id: Mapped[str] = mapped_column(String(limits.RECORD_ID), primary_key=True)
    cluster_id: Mapped[int] = mapped_column(Integer)  # -1 = noise / unclustered
    window: Mapped[str] = mapped_column(String(16))  # baseline|current
    x: Mapped[float] = mapped_column(Float)
    y: Mapped[float] = mapped_column(Float)

    __table_args__ = (
        Index("ix_run_assignments_run_cluster", "run_id", "cluster_id"),
        Index("ix_run_assignments_record", "record_id"),
    )


class Summary(Base):
    """A cluster summary cached by the cluster's content, so unchanged clusters cost nothing."""

    __tablename__ = "summaries"

    content_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    generated_by: Mapped[str] = mapped_column(String(256))
    summary: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Alert(Base):
    """An alert raised by a run, and how its delivery went."""

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # drift|hotspot|new_cluster|global_drift|budget|eval_hotspot
    kind: Mapped[str] = mapped_column(String(32))
    cluster_id: Mapped[int | None] = mapped_column(Integer)
    stable_key: Mapped[str | None] = mapped_column(String(64))
    message: Mapped[str] = mapped_column(Text)
    # suppressed (cooldown) | sent | failed | logged (no destination configured)
    delivery_status: Mapped[str] = mapped_column(String(16), default="logged")
    delivery: Mapped[dict[str, Any] | None] = mapped_column(JSONType)

    __table_args__ = (
        Index("ix_alerts_created", "created_at"),
        Index("ix_alerts_key_kind", "stable_key", "kind", "created_at"),
        # One budget alert per budget, period and threshold (collector/costs/budgets.py).
        Index(
            "ux_alerts_budget_key",
            "stable_key",
            unique=True,
            sqlite_where=text("kind = 'budget'"),
            postgresql_where=text("kind = 'budget'"),
        ),
    )


class ApiKey(Base):
    """An API key: only its hash is stored; the key itself is shown once, at creation."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    scope: Mapped[str] = mapped_column(String(16))  # ingest|read|admin
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
