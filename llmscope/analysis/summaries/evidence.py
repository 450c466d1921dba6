"""What the store says about one cluster of a run, as the summary prompt shows it.

The run's numbers come from the typed report entry; the examples, the thumbs-down answers with
their users' tags and comments (the newest feedback event of each record counts) and a sample
of the baseline window come from the run's assignments and the records.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from llmscope.analysis.prompts import ClusterBrief, Example
from llmscope.db.models import Evaluation, Feedback, Record, RunAssignment
from llmscope.db.queries import newest_feedback
from llmscope.report import ClusterEntry
from llmscope.text import user_text

__all__ = [
    "BASELINE_SHOWN",
    "EXAMPLES_SHOWN",
    "THUMBS_DOWN_SHOWN",
    "UserFeedback",
    "baseline_ids",
    "brief",
    "cluster_member_ids",
    "failed_verdicts",
    "latest_feedback",
    "records_by_id",
    "short",
]

EXAMPLES_SHOWN = 5
THUMBS_DOWN_SHOWN = 5
BASELINE_SHOWN = 3
TEXT_CHARS = 400  # per prompt or answer shown to the LLM: enough to see the problem


def short(text: str | None) -> str:
    """``text`` on one line, at most ``TEXT_CHARS`` characters."""
    text = " ".join((text or "").split())
    return text if len(text) <= TEXT_CHARS else text[: TEXT_CHARS - 1] + "…"


def _question(record: Record) -> str:
    return user_text(record.prompt, record.messages, record.template_variables)


def _is_num(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _pct(value: Any) -> str:
    return f"{100 * float(value):.1f}%" if _is_num(value) else "n/a"


def _num(value: Any, digits: int = 0) -> str:
    return f"{float(value):.{digits}f}" if _is_num(value) else "n/a"


@dataclass
class UserFeedback:
    """A record's newest feedback event, as the prompt quotes it."""

    thumb: str | None
    tags: list[str]
    comment: str


def latest_feedback(session: Session, run_id: str) -> dict[str, tuple[int, UserFeedback]]:
    """record id -> (cluster id, newest feedback event) for the run's rated records."""
    newest = newest_feedback(
        Feedback.record_id.in_(
            select(RunAssignment.record_id).where(RunAssignment.run_id == run_id)
        )
    )
    rows = session.execute(
        select(
            RunAssignment.cluster_id,
            newest.c.record_id,
            newest.c.thumb,
            newest.c.tags,
            newest.c.comment,
        )
        .join(RunAssignment, RunAssignment.record_id == newest.c.record_id)
        .where(RunAssignment.run_id == run_id)
    ).all()
    return {
        record_id: (cluster_id, UserFeedback(thumb, list(tags or []), comment or ""))
        for cluster_id, record_id, thumb, tags, comment in rows
    }


def baseline_ids(session: Session, run_id: str, cluster_id: int) -> list[str]:
    """The cluster's own baseline records, or (for a new cluster) any baseline records."""
    query = select(RunAssignment.record_id).where(
        RunAssignment.run_id == run_id, RunAssignment.window == "baseline"
    )
    # Record ids are mostly random UUIDs, so ordering by them is a cheap repeatable sample.
    own = session.scalars(
        query.where(RunAssignment.cluster_id == cluster_id)
        .order_by(RunAssignment.record_id)
        .limit(BASELINE_SHOWN)
    ).all()
    if own:
        return list(own)
    return list(session.scalars(query.order_by(RunAssignment.record_id).limit(BASELINE_SHOWN)))


def cluster_member_ids(session: Session, run_id: str, cluster_id: int, limit: int) -> list[str]:
    """Some of the cluster's records, current window first (for a report without examples)."""
    return list(
        session.scalars(
            select(RunAssignment.record_id)
            .where(RunAssignment.run_id == run_id, RunAssignment.cluster_id == cluster_id)
            .order_by(RunAssignment.window.desc(), RunAssignment.record_id)
            .limit(limit)
        )
    )


def failed_verdicts(session: Session, run_id: str) -> dict[int, list[tuple[str, str, str]]]:
    """Per cluster of the run, the answers an evaluator failed in the current window:
    (record id, evaluator, justification), in record-id order (a repeatable prompt)."""
    rows = session.execute(
        select(
            RunAssignment.cluster_id,
            Evaluation.record_id,
            Evaluation.evaluator,
            Evaluation.justification,
        )
        .join(RunAssignment, RunAssignment.record_id == Evaluation.record_id)
        .where(
            RunAssignment.run_id == run_id,
            RunAssignment.window == "current",
            Evaluation.status == "done",
            Evaluation.passed.is_(False),
        )
        .order_by(Evaluation.record_id, Evaluation.evaluator)
    ).all()
    found: dict[int, list[tuple[str, str, str]]] = {}
    for cluster_id, record_id, evaluator, justification in rows:
        found.setdefault(int(cluster_id), []).append((record_id, evaluator, justification or ""))
    return found


def records_by_id(session: Session, ids: list[str]) -> dict[str, Record]:
    if not ids:
        return {}
    return {r.id: r for r in session.scalars(select(Record).where(Record.id.in_(set(ids))))}


def brief(
    cluster: ClusterEntry,
    examples: list[Record],
    down: list[tuple[Record, UserFeedback]],
    baseline: list[Record],
    failed: Sequence[tuple[Record, str, str]] = (),
) -> ClusterBrief:
    """The prompt's view of ``cluster``: its numbers formatted, its records cut short.

    ``failed`` holds answers an evaluator failed: (record, evaluator, justification)."""
    lift = cluster.hotspot.lift
    latency = cluster.latency_ms
    return ClusterBrief(
        cluster_id=cluster.id,
        size=cluster.size,
        current_count=cluster.current_count,
        baseline_count=cluster.baseline_count,
        keywords=[str(k) for k in cluster.keywords][:10],
        baseline_share=_pct(cluster.baseline_share),
        current_share=_pct(cluster.current_share),
        drift_kind=cluster.drift.kind,
        drift_flagged=cluster.drift.flagged,
        down_rate=_pct(cluster.feedback.down_rate),
        rated=cluster.feedback.rated,
        lift=f"{_num(lift, 2)}x" if _is_num(lift) else "n/a",
        hotspot_flagged=cluster.hotspot.flagged,
        latency_p50=_num(latency.p50),
        latency_p95=_num(latency.p95),
        templates=", ".join(f"{k} ({v})" for k, v in sorted(cluster.templates.items())) or "none",
        examples=[Example(short(_question(r)), short(r.response)) for r in examples],
        thumbs_down=[
            Example(short(_question(r)), short(r.response), tuple(f.tags), short(f.comment))
            for r, f in down
        ],
        baseline=[Example(short(_question(r))) for r in baseline],
        evaluations=[
            f"- evaluator {name}: {e.failed} of {e.evaluated} answers failed "
            f"({_pct(e.fail_rate)}, lift {_num(e.lift, 2) + 'x' if _is_num(e.lift) else 'n/a'}, "
            f"flagged as a hotspot: {'yes' if e.flagged else 'no'})"
            for name, e in sorted(cluster.evaluations.items())
        ],
        judge_failures=[
            Example(short(_question(r)), short(r.response), (name,), short(why))
            for r, name, why in failed
        ],
    )
