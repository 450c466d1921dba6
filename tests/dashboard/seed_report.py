"""The run report of the dashboard's seeded store: a ``RunReport`` with the figures the analysis
would store for the seeded records (counts, shares, thumbs, latencies), and fixed verdicts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from llmscope.report import (
    AlertEntry,
    ClusterEntry,
    ClusterSummary,
    Drift,
    FeedbackCounts,
    Finding,
    GlobalDrift,
    Hotspot,
    LatencySlice,
    RunReport,
    TokenSlice,
    WindowInfo,
)
from tests.dashboard.topics import TOPICS, XSS_RECORD_ID


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def seeded_report(
    run_id: str,
    now: datetime,
    baseline: tuple[datetime, datetime],
    current: tuple[datetime, datetime],
    rows: list[dict[str, Any]],
    cluster_of: dict[str, int],
    window_of: dict[str, str],
    feedback: list[dict[str, Any]],
    summarised_by_llm: bool,
    subclusters: dict[int, tuple[int, list[str], str]],
) -> RunReport:
    """The contract's run report for the seeded data (the figures the analysis would store).

    ``subclusters``: sub-cluster id -> (parent id, member record ids, title), listed after the
    clusters of the cut as the analysis lists flagged tree nodes."""
    latest: dict[str, str] = {}
    for event in sorted(feedback, key=lambda f: f["created_at"]):
        latest[event["record_id"]] = event["thumb"]
    by_id = {r["id"]: r for r in rows}
    n_base = sum(1 for w in window_of.values() if w == "baseline")
    n_cur = len(window_of) - n_base

    def figures(members: list[str]) -> dict[str, Any]:
        """The count-based fields of an entry holding ``members``."""
        base = [rid for rid in members if window_of[rid] == "baseline"]
        cur = [rid for rid in members if window_of[rid] == "current"]
        rated = [rid for rid in members if rid in latest]
        down = [rid for rid in rated if latest[rid] == "down"]
        lat = [by_id[rid]["latency_ms"] for rid in members]
        templates: dict[str, int] = {}
        for rid in members:
            key = f"{by_id[rid]['template_name']}@{by_id[rid]['template_version']}"
            templates[key] = templates.get(key, 0) + 1
        return {
            "size": len(members),
            "baseline_count": len(base),
            "current_count": len(cur),
            "baseline_share": round(len(base) / n_base, 4) if n_base else 0.0,
            "current_share": round(len(cur) / n_cur, 4) if n_cur else 0.0,
            "feedback": FeedbackCounts(
                rated=len(rated),
                down=len(down),
                down_rate=round(len(down) / len(rated), 4) if rated else None,
            ),
            "latency_ms": LatencySlice(p50=_percentile(lat, 0.5), p95=_percentile(lat, 0.95)),
            "tokens": TokenSlice(
                input_p50=_percentile([by_id[r]["input_tokens"] for r in members], 0.5),
                output_p50=_percentile([by_id[r]["output_tokens"] for r in members], 0.5),
            ),
            "templates": templates,
        }

    clusters = []
    for cid, topic in enumerate(TOPICS):
        members = [rid for rid, c in cluster_of.items() if c == cid]
        is_problem = topic.key == "export"
        generated_by = "llm:gpt-4o-mini" if summarised_by_llm and cid % 2 else "extractive"
        clusters.append(
            ClusterEntry(
                id=cid,
                **figures(members),
                keywords=list(topic.keywords),
                examples=([XSS_RECORD_ID] if is_problem else []) + members[:4],
                drift=Drift(
                    kind=topic.drift_kind,
                    score={"stable": 0.4, "grew": 3.1, "shrank": 4.2, "new": 9.7}[topic.drift_kind],
                    p_value=0.41 if topic.drift_kind == "stable" else 0.0004,
                    q_value=0.52 if topic.drift_kind == "stable" else 0.0011,
                    flagged=topic.drift_kind != "stable",
                ),
                hotspot=Hotspot(
                    lift=4.6 if is_problem else round(0.6 + 0.2 * cid, 2),
                    p_value=0.0002 if is_problem else 0.35,
                    q_value=0.0008 if is_problem else 0.47,
                    flagged=is_problem,
                ),
                summary=ClusterSummary(
                    title=topic.title,
                    text=f"Users ask about {', '.join(topic.keywords[:3])}.",
                    root_cause=(
                        "Template support@3 points users at a Reports menu that no longer exists."
                        if is_problem
                        else ""
                    ),
                    suggested_fix=(
                        "Roll back to support@2 or document the new export page."
                        if is_problem
                        else ""
                    ),
                    generated_by=generated_by,
                ),
            )
        )
    for sub_id, (parent, members, title) in subclusters.items():
        hot = parent < len(TOPICS)  # the first level: a thumbs-down hotspot; below it: new
        clusters.append(
            ClusterEntry(
                id=sub_id,
                parent=parent,
                **figures(members),
                keywords=["refund", "card", "long"] if hot else ["refund", "card", "today"],
                examples=members[:3],
                drift=Drift(
                    kind="stable" if hot else "new",
                    score=0.2 if hot else 6.1,
                    p_value=0.6 if hot else 0.0007,
                    q_value=0.7 if hot else 0.004,
                    flagged=not hot,
                ),
                hotspot=Hotspot(
                    kind="persistent" if hot else None,
                    lift=3.2 if hot else 1.1,
                    p_value=0.0009 if hot else 0.4,
                    q_value=0.004 if hot else 0.5,
                    flagged=hot,
                ),
                summary=ClusterSummary(
                    title=title,
                    text="Users ask how long a refund takes to reach their card.",
                    generated_by="extractive",
                ),
            )
        )
    problem = next(c for c in clusters if TOPICS[c.id].key == "export")
    assert problem.summary is not None
    findings = _findings(clusters, problem)
    return RunReport(
        run_id=run_id,
        created_at=now,
        baseline=WindowInfo(start=baseline[0], end=baseline[1], records=n_base),
        current=WindowInfo(start=current[0], end=current[1], records=n_cur),
        global_drift=GlobalDrift(
            statistic=0.31,
            p_value=0.0001,
            flagged=True,
            method="energy distance permutation test",
        ),
        clusters=clusters,
        findings=findings,
        alerts=[
            AlertEntry(
                kind="new_cluster",
                cluster_id=problem.id,
                message=f"New cluster: {problem.summary.title}",
            ),
            AlertEntry(
                kind="hotspot",
                cluster_id=problem.id,
                message=f"Thumbs-down hotspot: {problem.summary.title} "
                f"({problem.feedback.down}/{problem.feedback.rated} down)",
            ),
        ],
    )


def _findings(clusters: list[ClusterEntry], problem: ClusterEntry) -> list[Finding]:
    """The ranked findings the analysis would list: the problem cluster's hotspot and its
    being new first, then the hot sub-cluster, the drifting clusters, the overall drift."""
    out = [
        Finding(
            kind="hotspot",
            cluster_id=problem.id,
            severity=40.0,
            message=f"Thumbs-down hotspot in cluster {problem.id}: {problem.feedback.down} of "
            f"{problem.feedback.rated} rated answers thumbs-down",
        ),
        Finding(
            kind="new_cluster",
            cluster_id=problem.id,
            severity=30.0,
            message=f"New topic, cluster {problem.id}: {problem.current_count} requests in the "
            "current window, none before",
        ),
    ]
    severity = 20.0
    for c in clusters:
        if c.id == problem.id:
            continue
        if c.hotspot.flagged:
            out.append(
                Finding(
                    kind="hotspot",
                    cluster_id=c.id,
                    severity=severity,
                    message=f"Thumbs-down hotspot in sub-cluster {c.id}",
                )
            )
            severity -= 1
        if c.drift.flagged:
            out.append(
                Finding(
                    kind="drift",
                    cluster_id=c.id,
                    severity=severity,
                    message=f"Cluster {c.id} {c.drift.kind} between the windows",
                )
            )
            severity -= 1
    out.append(
        Finding(
            kind="global_drift",
            severity=1.0,
            message="Overall, what people ask changed between the windows (p=0.0001).",
        )
    )
    return out
