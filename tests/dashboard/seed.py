"""Seeded stores for the dashboard: records, feedback, analysis runs, clusters and alerts.

Rows are written straight through SQLAlchemy in the shapes the collector and the analysis job
write (the run report is a typed ``RunReport``, as the analysis builds it), so the dashboard can
be tested and benchmarked without running either. Everything is deterministic for a given ``seed``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, insert

from llmscope.db.models import (
    Alert,
    AnalysisRun,
    Feedback,
    Record,
    RunAssignment,
    RunCluster,
)
from llmscope.report import RunReport
from tests.dashboard.seed_report import seeded_report
from tests.dashboard.topics import NOW, TOPICS, XSS_PROMPT, XSS_RECORD_ID, Topic

__all__ = [
    "NOW",
    "XSS_PROMPT",
    "XSS_RECORD_ID",
    "SeededStore",
    "add_rows",
    "plain_record",
    "seed_store",
]


@dataclass
class SeededStore:
    """What a seeded store holds, for tests to look up without re-querying."""

    run_id: str
    old_run_id: str | None
    record_ids: list[str]
    cluster_of: dict[str, int]
    report: RunReport
    problem_cluster: int
    feedback_count: int = 0
    clusters: dict[int, list[str]] = field(default_factory=dict)
    # Sub-cluster id -> its record ids: the refund cluster's first question (a thumbs-down
    # hotspot below the cut) and, below that, those of its records in the current window.
    subclusters: dict[int, list[str]] = field(default_factory=dict)


def _record_row(
    rng: random.Random, i: int, topic: Topic, when: datetime, *, chat: bool
) -> dict[str, Any]:
    question = rng.choice(topic.questions)
    name, version = topic.template
    text = f"{question} (order {1000 + i})"
    latency = max(40.0, rng.gauss(topic.latency_ms, topic.latency_ms * 0.25))
    return {
        "id": f"rec-{i:06d}",
        "timestamp": when,
        "received_at": when,
        "source": "gateway" if chat else "api",
        "endpoint": topic.endpoint,
        "provider": "openai",
        "model": topic.model,
        "prompt": None if chat else text,
        "messages": (
            [
                {"role": "system", "content": "You are a helpful support assistant."},
                {"role": "user", "content": text},
            ]
            if chat
            else None
        ),
        "response": topic.answer,
        "template_name": name,
        "template_version": version,
        "template_text": "Answer the customer's question politely: {{question}}",
        "template_variables": {"question": text},
        "input_tokens": 20 + len(text) // 4 + rng.randint(0, 8),
        "output_tokens": 15 + rng.randint(0, 40),
        "latency_ms": round(latency, 1),
        "ttft_ms": round(latency * 0.2, 1),
        "status": "error" if rng.random() < 0.01 else "ok",
        "error": None,
        "user_id": f"user-{rng.randint(1, 400)}",
        "session_id": f"session-{rng.randint(1, 2000)}",
        "tags": {"team": topic.key},
        "trace_id": None,
        "span_id": None,
        "internal": False,
    }


def _pick(rng: random.Random, weights: list[float]) -> int:
    return rng.choices(range(len(weights)), weights=weights)[0]


def seed_store(
    engine: Engine,
    *,
    records: int = 400,
    seed: int = 7,
    now: datetime = NOW,
    with_run: bool = True,
    old_run: bool = True,
    summarised_by_llm: bool = True,
) -> SeededStore:
    """Fill an empty, migrated store with ``records`` calls and (optionally) analysis runs.

    Baseline is the 7 days before the last day, current the last day; the ``export`` topic only
    appears in the current window and draws most thumbs-down (the problem cluster). About 10%
    of records are noise (cluster -1).
    """
    rng = random.Random(seed)
    baseline = (now - timedelta(days=8), now - timedelta(days=1))
    current = (now - timedelta(days=1), now)
    rows: list[dict[str, Any]] = []
    assignments: list[dict[str, Any]] = []
    feedback: list[dict[str, Any]] = []
    cluster_of: dict[str, int] = {}
    window_of: dict[str, str] = {}
    run_id = f"run-{now:%Y%m%d}-b"
    for i in range(records):
        window = "current" if rng.random() < 0.35 else "baseline"
        start, end = baseline if window == "baseline" else current
        when = start + (end - start) * rng.random()
        weights = [t.baseline_weight if window == "baseline" else t.current_weight for t in TOPICS]
        cluster = _pick(rng, weights)
        topic = TOPICS[cluster]
        row = _record_row(rng, i, topic, when, chat=i % 3 == 0)
        rows.append(row)
        noise = rng.random() < 0.1
        cluster_id = -1 if noise else cluster
        cluster_of[row["id"]] = cluster_id
        window_of[row["id"]] = window
        cx, cy = (0.0, 0.0) if noise else topic.center
        spread = 3.0 if noise else 0.8
        assignments.append(
            {
                "run_id": run_id,
                "record_id": row["id"],
                "cluster_id": cluster_id,
                "window": window,
                "x": round(rng.gauss(cx, spread), 4),
                "y": round(rng.gauss(cy, spread), 4),
            }
        )
        if rng.random() < 0.3:
            thumb = "down" if rng.random() < topic.down_prob else "up"
            at = when + timedelta(minutes=2)
            if rng.random() < 0.1:  # changed their mind: the latest event counts
                other = "up" if thumb == "down" else "down"
                feedback.append(_feedback_row(row["id"], other, at - timedelta(minutes=1)))
            feedback.append(_feedback_row(row["id"], thumb, at))

    # The record every escaping test looks at: a script in the prompt, in the problem cluster.
    problem = next(i for i, t in enumerate(TOPICS) if t.key == "export")
    if records:
        xss = _record_row(rng, records, TOPICS[problem], now - timedelta(hours=2), chat=False)
        xss.update(id=XSS_RECORD_ID, prompt=XSS_PROMPT, response="<b>bold?</b> Try again later.")
        rows.append(xss)
        cluster_of[XSS_RECORD_ID] = problem
        window_of[XSS_RECORD_ID] = "current"
        assignments.append(
            {
                "run_id": run_id,
                "record_id": XSS_RECORD_ID,
                "cluster_id": problem,
                "window": "current",
                "x": TOPICS[problem].center[0],
                "y": TOPICS[problem].center[1],
            }
        )
        feedback.append(_feedback_row(XSS_RECORD_ID, "up", now - timedelta(hours=2, minutes=-1)))
        down = _feedback_row(XSS_RECORD_ID, "down", now - timedelta(hours=1))
        down.update(tags=["incorrect"], comment="<i>still</i> broken")
        feedback.append(down)

    subclusters = _subclusters(rows, cluster_of, window_of)
    report = seeded_report(
        run_id,
        now,
        baseline,
        current,
        rows,
        cluster_of,
        window_of,
        feedback,
        summarised_by_llm,
        subclusters,
    )
    with engine.begin() as conn:
        for chunk in range(0, len(rows), 5000):
            conn.execute(insert(Record), rows[chunk : chunk + 5000])
        if feedback:
            conn.execute(insert(Feedback), feedback)
    old_run_id = None
    if with_run:
        old_run_id = _write_runs(
            engine,
            run_id,
            now,
            baseline,
            current,
            report,
            assignments,
            old_run=old_run,
            members={sub: m for sub, (_, m, _) in subclusters.items()},
        )
    clusters: dict[int, list[str]] = {}
    for rid, cid in cluster_of.items():
        clusters.setdefault(cid, []).append(rid)
    return SeededStore(
        run_id=run_id,
        old_run_id=old_run_id,
        record_ids=[r["id"] for r in rows],
        cluster_of=cluster_of,
        report=report,
        problem_cluster=problem,
        feedback_count=len(feedback),
        clusters=clusters,
        subclusters={sub: members for sub, (_, members, _) in subclusters.items()},
    )


def _subclusters(
    rows: list[dict[str, Any]], cluster_of: dict[str, int], window_of: dict[str, str]
) -> dict[int, tuple[int, list[str], str]]:
    """Two nested sub-clusters of the refund cluster: sub-cluster id -> (parent, members, title)."""
    refund = next(i for i, t in enumerate(TOPICS) if t.key == "refund")
    question = TOPICS[refund].questions[0]
    slow = [
        r["id"]
        for r in rows
        if cluster_of[r["id"]] == refund
        and r["template_variables"]["question"].startswith(question)
    ]
    today = [rid for rid in slow if window_of[rid] == "current"]
    out: dict[int, tuple[int, list[str], str]] = {}
    if slow:
        out[len(TOPICS)] = (refund, slow, "Refunds slow to reach the card")
    if slow and today:
        out[len(TOPICS) + 1] = (len(TOPICS), today, "Refund delays asked today")
    return out


def _feedback_row(record_id: str, thumb: str, at: datetime) -> dict[str, Any]:
    return {
        "record_id": record_id,
        "created_at": at,
        "thumb": thumb,
        "score": 1.0 if thumb == "up" else 0.0,
        "tags": ["incorrect"] if thumb == "down" else [],
        "comment": None,
        "source": "user",
    }


def _write_runs(
    engine: Engine,
    run_id: str,
    now: datetime,
    baseline: tuple[datetime, datetime],
    current: tuple[datetime, datetime],
    report: RunReport,
    assignments: list[dict[str, Any]],
    *,
    old_run: bool,
    members: dict[int, list[str]],
) -> str | None:
    old_id = f"run-{now:%Y%m%d}-a" if old_run else None
    with engine.begin() as conn:
        if old_id:
            # An earlier, smaller run over the same windows: enough for the run selector.
            old_report = report.model_copy(
                update={"run_id": old_id, "clusters": report.clusters[:2], "alerts": []}
            )
            _insert_run(conn, old_id, now - timedelta(hours=6), baseline, current, old_report)
            old_rows = [
                {**a, "run_id": old_id}
                for a in assignments[: max(1, len(assignments) // 10)]
                if a["cluster_id"] in (-1, 0, 1)
            ]
            if old_rows:
                conn.execute(insert(RunAssignment), old_rows)
        _insert_run(conn, run_id, now, baseline, current, report, members)
        for chunk in range(0, len(assignments), 5000):
            conn.execute(insert(RunAssignment), assignments[chunk : chunk + 5000])
        for i, alert in enumerate(report.alerts):
            conn.execute(
                insert(Alert).values(
                    run_id=run_id,
                    created_at=now + timedelta(seconds=i),
                    kind=alert.kind,
                    cluster_id=alert.cluster_id,
                    stable_key=f"key-{alert.cluster_id}",
                    message=alert.message,
                    delivery_status="sent" if i == 0 else "logged",
                    delivery=None,
                )
            )
    return old_id


def _insert_run(
    conn: Any,
    run_id: str,
    created: datetime,
    baseline: tuple[datetime, datetime],
    current: tuple[datetime, datetime],
    report: RunReport,
    members: dict[int, list[str]] | None = None,
) -> None:
    """The run, and its clusters as the analysis stores them (a sub-cluster with its parent
    and its record ids in ``stats``)."""
    conn.execute(
        insert(AnalysisRun).values(
            id=run_id,
            created_at=created,
            baseline_start=baseline[0],
            baseline_end=baseline[1],
            current_start=current[0],
            current_end=current[1],
            params={"min_cluster_size": 10},
            report=report.to_json(),
        )
    )
    for cluster in report.clusters:
        conn.execute(
            insert(RunCluster).values(
                run_id=run_id,
                cluster_id=cluster.id,
                stable_key=f"key-{cluster.id}",
                size=cluster.size,
                centroid=None,
                keywords=cluster.keywords,
                stats={
                    **cluster.to_json(include={"drift", "hotspot", "feedback"}),
                    **(
                        {"parent": cluster.parent, "members": (members or {})[cluster.id]}
                        if cluster.parent is not None
                        else {}
                    ),
                },
                summary=cluster.summary.to_json() if cluster.summary else None,
            )
        )


def plain_record(record_id: str, when: datetime, **values: Any) -> dict[str, Any]:
    """A ``records`` row with plain defaults, for small hand-made stores with known answers."""
    row: dict[str, Any] = {
        "id": record_id,
        "timestamp": when,
        "received_at": when,
        "source": "api",
        "endpoint": "chat",
        "provider": "openai",
        "model": "gpt-4o-mini",
        "prompt": f"question {record_id}",
        "messages": None,
        "response": "answer",
        "template_name": None,
        "template_version": None,
        "template_text": None,
        "template_variables": None,
        "input_tokens": 10,
        "output_tokens": 5,
        "latency_ms": 100.0,
        "ttft_ms": None,
        "status": "ok",
        "error": None,
        "user_id": None,
        "session_id": None,
        "tags": None,
        "trace_id": None,
        "span_id": None,
        "internal": False,
    }
    row.update(values)
    return row


def add_rows(
    engine: Engine, records: list[dict[str, Any]], feedback: list[tuple[str, str, datetime]] = ()
) -> None:
    """Insert ``records`` and ``(record_id, thumb, at)`` feedback events, in that order."""
    with engine.begin() as conn:
        conn.execute(insert(Record), records)
        for record_id, thumb, at in feedback:
            conn.execute(insert(Feedback), [_feedback_row(record_id, thumb, at)])
