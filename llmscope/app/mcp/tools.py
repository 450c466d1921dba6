"""What the MCP tools read: pure functions of an engine and their arguments, returning JSON values.

Every figure comes from where the REST API and the dashboard take it: the stored run report
(``RunReport``: findings, a cluster's entry, its template and route tests), the dashboard's read
queries (a cluster's thumbs-down per template, endpoint and model, its examples thumbs-down
first, the experiments list) and the record API's own reader. Nothing is computed here that the
report does not hold, and nothing is written.

An argument that names nothing (an unknown run, cluster, record or experiment) or that cannot
be used (``since`` not before ``until``) raises :class:`ToolInputError` with a sentence naming
it; the server turns that into a tool error the agent reads.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import Engine, Text, and_, cast, or_, select
from sqlalchemy.orm import Session

from llmscope.collector.api.routes.records import read_record
from llmscope.dashboard import data
from llmscope.dashboard.data.clusters import ClusterRecord
from llmscope.dashboard.data.common import THUMB, with_feedback
from llmscope.dashboard.data.evidence import report_tests
from llmscope.dashboard.data.experiments import list_experiments
from llmscope.dashboard.data.findings import findings, flag_words, of_cluster
from llmscope.dashboard.data.records import record_clusters
from llmscope.db.models import Experiment, Record, RunAssignment
from llmscope.db.queries import LATEST
from llmscope.db.record_row import RECORD_ROW, RecordRow, record_row
from llmscope.evaluate.experiments.export import load_report
from llmscope.report import ClusterEntry, RunReport, utc_iso

__all__ = [
    "EXAMPLES_MAX",
    "SEARCH_MAX",
    "TEXT_MAX",
    "Feedback",
    "ToolInputError",
    "cluster_evidence",
    "experiment_report",
    "experiments",
    "get_record",
    "latest_findings",
    "list_clusters",
    "search_records",
]

SEARCH_MAX = 200  # records one search returns at most
EXAMPLES_MAX = 50  # examples one cluster's evidence lists at most
TEXT_MAX = 2000  # characters of a question or answer in a listing (a record's own read: all)
NOISE = -1  # the cluster id of records no cluster took

Feedback = Literal["up", "down", "none"]
# The search's feedback values in the dashboard filters' words.
_FEEDBACK_FILTER = {"up": "up", "down": "down", "none": "unrated"}


class ToolInputError(ValueError):
    """An argument the tool cannot use; the message names it."""


def _run(engine: Engine, run: str) -> tuple[data.RunInfo, RunReport]:
    found = data.run_report(engine, None if run == LATEST else run)
    if found is None:
        if run == LATEST:
            raise ToolInputError("no analysis run yet: run `llmscope analyze` first")
        raise ToolInputError(f"run: no analysis run {run!r}")
    return found


def _cluster(report: RunReport, cluster_id: int) -> ClusterEntry:
    entry = report.cluster(cluster_id)
    if entry is None:
        known = ", ".join(str(c.id) for c in report.clusters) or "none"
        raise ToolInputError(
            f"cluster_id: run {report.run_id} has no cluster {cluster_id} (its clusters: {known})"
        )
    return entry


def _title(entry: ClusterEntry | None) -> str | None:
    if entry is None:
        return None
    if entry.summary is not None:
        return entry.summary.title
    return ", ".join(entry.keywords[:4]) or None


def _clip(text: str | None, limit: int = TEXT_MAX) -> str | None:
    if text is None or len(text) <= limit:
        return text
    return text[: limit - 1] + "…"


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else utc_iso(moment)


def _run_head(report: RunReport) -> dict[str, Any]:
    return report.to_json(include={"run_id", "created_at", "baseline", "current"})


def latest_findings(engine: Engine, run: str = LATEST) -> dict[str, Any]:
    """The run's findings, most severe first, each with its cluster's title; and the run's
    windows and overall drift."""
    _, report = _run(engine, run)
    out = _run_head(report) | report.to_json(include={"global_drift"})
    out["findings"] = [
        {
            "kind": f.kind,
            "cluster_id": f.cluster_id,
            "cluster_title": None if f.cluster_id is None else _title(report.cluster(f.cluster_id)),
            "metric": f.metric,
            "severity": f.severity,
            "message": f.message,
        }
        for f in findings(report)
    ]
    return out


def list_clusters(engine: Engine, run: str = LATEST) -> dict[str, Any]:
    """Every cluster of the run, most severe first, each sub-cluster after its parent."""
    _, report = _run(engine, run)
    out = _run_head(report)
    out["clusters"] = [
        {
            "id": c.id,
            "parent": c.parent,
            "depth": depth,
            "title": _title(c),
            "size": c.size,
            "baseline_count": c.baseline_count,
            "current_count": c.current_count,
            "down_rate": c.feedback.down_rate,
            "flags": flag_words(c),
        }
        for c, depth in data.nested_clusters(report)
    ]
    return out


def _rate(down: int, rated: int) -> float | None:
    return down / rated if rated else None


def _evidence_rows(
    engine: Engine, report: RunReport, cluster: ClusterEntry, members: list[str] | None
) -> dict[str, list[dict[str, Any]]]:
    tests = report_tests(report, cluster.id)
    out: dict[str, list[dict[str, Any]]] = {}
    for dimension, groups in data.down_by(engine, report.run_id, cluster.id, members).items():
        rows = []
        for g in groups:
            row: dict[str, Any] = {
                dimension: g["group"],
                "calls": g["calls"],
                "rated": g["rated"],
                "down": g["down"],
                "down_rate": _rate(g["down"], g["rated"]),
            }
            for window in ("baseline", "current"):
                for figure in ("calls", "rated", "down"):
                    row[f"{window}_{figure}"] = g[f"{window}_{figure}"]
                row[f"{window}_down_rate"] = _rate(g[f"{window}_down"], g[f"{window}_rated"])
            test = tests[dimension].get(str(g["group"]))
            row["test"] = None if test is None else test.to_json()
            rows.append(row)
        out[dimension] = rows
    return out


def _example(r: ClusterRecord) -> dict[str, Any]:
    return {
        "id": r["id"],
        "timestamp": _iso(r["timestamp"]),
        "window": r["window"],
        "thumb": r["thumb"],
        "feedback_comment": r["comment"],
        "feedback_tags": r["feedback_tags"] or [],
        "endpoint": r["endpoint"],
        "model": r["model"],
        "template": _template(r),
        "status": r["status"],
        "latency_ms": r["latency_ms"],
        "question": _clip(r["text"]),
        "response": _clip(r["response"]),
    }


def _template(r: RecordRow) -> str | None:
    if r["template_name"] is None:
        return None
    return f"{r['template_name']}@{r['template_version'] or '-'}"


def cluster_evidence(
    engine: Engine, cluster_id: int, run: str = LATEST, examples: int = 10
) -> dict[str, Any]:
    """One cluster's evidence: its report entry (summary, keywords, drift, feedback, hotspot,
    regressions, ...), its findings, its thumbs-down per template version, endpoint and model
    (with the run's tests), the tags on its thumbs-down answers, and example records, its
    thumbs-down answers first."""
    if not 1 <= examples <= EXAMPLES_MAX:
        raise ToolInputError(f"examples: must be between 1 and {EXAMPLES_MAX}, not {examples}")
    info, report = _run(engine, run)
    cluster = _cluster(report, cluster_id)
    members = data.members_of(engine, info.id, cluster)  # None: a cluster of the cut
    chosen = data.cluster_records(
        engine,
        info.id,
        cluster_id,
        data.Filters(),
        first=cluster.examples,
        limit=examples,
        members=members,
        down_first=True,
    )
    tags = data.down_tags(engine, info.id, cluster_id, members)
    out = _run_head(report)
    out["cluster"] = cluster.to_json() | {"title": _title(cluster)}
    out["lineage"] = [{"id": c.id, "title": _title(c)} for c in report.lineage(cluster_id)]
    out["subclusters"] = [{"id": c.id, "title": _title(c)} for c in report.children(cluster_id)]
    out["findings"] = [
        {"kind": f.kind, "metric": f.metric, "severity": f.severity, "message": f.message}
        for f in of_cluster(report, cluster_id)
    ]
    out["by"] = _evidence_rows(engine, report, cluster, members)
    out["down_tags"] = {window: dict(counts.most_common()) for window, counts in tags.items()}
    out["examples"] = [_example(r) for r in chosen]
    return out


def get_record(engine: Engine, record_id: str) -> dict[str, Any]:
    """The record as ``GET /api/v1/records/{id}`` shows it (feedback history, evaluations),
    with its cluster in each of the newest runs."""
    with Session(engine) as session:
        found = read_record(session, record_id)
        if found is None:
            raise ToolInputError(f"record_id: no record with id {record_id!r}")
        out = found.model_dump(mode="json")
        out["clusters"] = [
            {
                "run_id": c["run_id"],
                "cluster_id": c["cluster_id"],
                "window": c["window"],
                "run_created_at": _iso(c["created_at"]),
            }
            for c in record_clusters(session.connection(), record_id, limit=5)
        ]
    return out


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _text_matches(text: str) -> Any:
    """Records whose question (prompt or chat messages) or answer contains ``text``, letter case
    aside. Chat messages are stored as JSON, so the text is also looked for as JSON writes it
    (quotes and non-ASCII characters escaped)."""
    needles = dict.fromkeys(
        [text, json.dumps(text)[1:-1], json.dumps(text, ensure_ascii=False)[1:-1]]
    )
    messages = cast(Record.messages, Text)
    return or_(
        Record.prompt.icontains(text, autoescape=True),
        Record.response.icontains(text, autoescape=True),
        *[messages.icontains(n, autoescape=True) for n in needles],
    )


def search_records(
    engine: Engine,
    *,
    text: str | None = None,
    cluster_id: int | None = None,
    run: str = LATEST,
    template: str | None = None,
    feedback: Feedback | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 20,
) -> dict[str, Any]:
    """Records matching every filter given, newest first, at most ``limit``; internal calls
    (the summaries' own LLM calls) are left out, as the analysis leaves them out."""
    if not 1 <= limit <= SEARCH_MAX:
        raise ToolInputError(f"limit: must be between 1 and {SEARCH_MAX}, not {limit}")
    since, until = _utc(since), _utc(until)
    if since is not None and until is not None and since >= until:
        raise ToolInputError(f"since ({utc_iso(since)}) must be before until ({utc_iso(until)})")
    if text is not None and not text.strip():
        raise ToolInputError("text: empty; leave it out to match every record")
    if feedback is not None and feedback not in _FEEDBACK_FILTER:
        raise ToolInputError(f"feedback: {feedback!r} is not one of up, down, none")
    filters = data.Filters(
        since=since,
        until=until,
        template=template or None,
        feedback=None if feedback is None else _FEEDBACK_FILTER[feedback],
    )
    columns: list[Any] = [*RECORD_ROW, THUMB.label("thumb")]
    stmt = select(*columns).select_from(Record)
    run_id = None
    if cluster_id is not None:
        info, report = _run(engine, run)
        run_id = info.id
        members = None
        if cluster_id != NOISE:
            members = data.members_of(engine, run_id, _cluster(report, cluster_id))
        stmt = stmt.join(
            RunAssignment,
            and_(RunAssignment.record_id == Record.id, RunAssignment.run_id == run_id),
        ).where(data.in_cluster(cluster_id, members))
        stmt = stmt.add_columns(RunAssignment.window.label("window"))
    stmt = with_feedback(stmt).where(*filters.conditions())
    if text is not None:
        stmt = stmt.where(_text_matches(text))
    stmt = stmt.order_by(Record.timestamp.desc(), Record.id.desc()).limit(limit + 1)
    with engine.connect() as conn:
        rows = conn.execute(stmt).mappings().all()
    records = []
    for found in rows[:limit]:
        r = record_row(found)
        item: dict[str, Any] = {
            "id": r["id"],
            "timestamp": _iso(r["timestamp"]),
            "endpoint": r["endpoint"],
            "model": r["model"],
            "template": _template(r),
            "status": r["status"],
            "latency_ms": r["latency_ms"],
            "thumb": found["thumb"],
            "question": _clip(data.record_text(r["prompt"], r["messages"]), 500),
            "response": _clip(r["response"], 500),
        }
        if run_id is not None:
            item |= {"cluster_id": cluster_id, "window": found["window"]}
        records.append(item)
    return {
        "run_id": run_id,
        "records": records,
        "returned": len(records),
        "more": len(rows) > limit,
    }


def experiments(engine: Engine, cluster_id: int | None = None) -> dict[str, Any]:
    """The newest experiments first (of one cluster, if given), each with its variants'
    verdicts."""
    listed = list_experiments(engine, cluster_id)
    return {
        "experiments": [e | {"created_at": _iso(e["created_at"])} for e in listed],
    }


def experiment_report(engine: Engine, experiment_id: str) -> dict[str, Any]:
    """The stored report of a finished experiment, as ``GET /api/v1/experiments/{id}``
    serves it."""
    with Session(engine) as session:
        report = load_report(session, experiment_id)
        if report is None:
            row = session.get(Experiment, experiment_id)
            if row is None:
                raise ToolInputError(f"experiment_id: no experiment {experiment_id!r}")
            raise ToolInputError(
                f"experiment_id: experiment {experiment_id!r} has no report yet "
                f"(status {row.status})"
            )
    return report.to_json()
