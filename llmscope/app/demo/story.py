"""What the demo tells the newcomer: the run report (and its records) turned into sentences.

:func:`tell` reads the stored run and returns the lines to print and the cluster to open
first. Every number comes from the report (flags, rates, q-values, the template A/B view) or
is read straight from the run's records (the users' tags and comments, per-window latency
medians and endpoints), so the story can only say what the analysis and the store hold.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from statistics import median

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from llmscope.db.models import Feedback, Record, RunAssignment
from llmscope.db.queries import newest_feedback
from llmscope.report import ClusterEntry, RunReport, TemplateVersionRow

__all__ = ["Story", "tell"]


@dataclass
class Story:
    lines: list[str] = field(default_factory=list)
    first_cluster: int | None = None  # the cluster to open first in the dashboard


def _name(cluster: ClusterEntry) -> str:
    words = " / ".join(cluster.keywords[:3])
    return f'cluster {cluster.id} ("{words}")' if words else f"cluster {cluster.id}"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.0f}%"


def _down_feedback(session: Session, run_id: str, cluster_id: int) -> list[tuple[list[str], str]]:
    """(tags, comment) of the cluster's current-window records whose feedback (the newest event
    counts) is a thumbs-down."""
    newest = newest_feedback(
        Feedback.record_id.in_(
            select(RunAssignment.record_id).where(
                RunAssignment.run_id == run_id,
                RunAssignment.cluster_id == cluster_id,
                RunAssignment.window == "current",
            )
        )
    )
    # In the order they were given: equal counts are then named in a repeatable order.
    query = (
        select(newest.c.tags, newest.c.comment)
        .where(newest.c.thumb == "down")
        .order_by(newest.c.id)
    )
    return [(list(tags or []), comment or "") for tags, comment in session.execute(query)]


def _bad_version(cluster: ClusterEntry, versions: Sequence[TemplateVersionRow], fdr: float) -> str:
    """A sentence on the template version behind the cluster's thumbs-down, if the A/B shows one."""
    for template in sorted(cluster.templates, key=cluster.templates.__getitem__, reverse=True):
        name, _, version = template.partition("@")
        for row in versions:
            q = row.down_q_value
            if (row.template, row.version) != (name, version) or q is None or q > fdr:
                continue
            if (row.down_rate or 0.0) > (row.against_down_rate or 0.0):
                return (
                    f"It started with prompt template {name}@{version}: the thumbs-down rate "
                    f"went from {_pct(row.against_down_rate)} on {name}@{row.against} to "
                    f"{_pct(row.down_rate)} on {name}@{version} (q={q:.1e})."
                )
    return ""


def _level(cluster: ClusterEntry) -> str:
    """Where the q-value comes from when the cluster had too few ratings of its own: the tree
    node above it, so the reader does not take the cluster's own few ratings for the evidence."""
    spot = cluster.hotspot
    if spot.level != "parent":
        return ""
    test = spot.emerging if spot.kind == "emerging" else spot.persistent
    rated = f" ({test.rated} rated answers)" if test is not None else ""
    return f", tested at its parent's level{rated}"


def _hotspot_lines(
    session: Session, report: RunReport, cluster: ClusterEntry, fdr: float
) -> list[str]:
    fb = cluster.feedback
    lines = [
        f"Look first at {_name(cluster)}: {fb.down} of {fb.rated} rated answers in the "
        f"current window were thumbs-down ({_pct(fb.down_rate)}, "
        f"{cluster.hotspot.lift:.1f}x the rest; q={cluster.hotspot.q_value:.1e}"
        f"{_level(cluster)})."
    ]
    version = _bad_version(cluster, report.template_versions, fdr)
    if version:
        lines.append("  " + version)
    events = _down_feedback(session, report.run_id, cluster.id)
    tags = Counter(tag for event_tags, _ in events for tag in event_tags)
    if tags:
        said = ", ".join(f"{tag} ({n})" for tag, n in tags.most_common(3))
        lines.append(f"  Users tagged those answers: {said}.")
    comments = Counter(comment for _, comment in events if comment)
    if comments:
        quoted = "; ".join(f'"{c}"' for c, _ in comments.most_common(2))
        lines.append(f"  They wrote: {quoted}")
    return lines


def _drift_lines(clusters: list[ClusterEntry]) -> list[str]:
    lines = []
    for c in clusters:
        kind = c.drift.kind
        share = f"{_pct(c.baseline_share)} -> {_pct(c.current_share)} of traffic"
        if kind == "new":
            lines.append(
                f"New topic, {_name(c)}: {c.current_count} requests in the current window, "
                f"{c.baseline_count} before ({share}); examples are on its page."
            )
        else:
            lines.append(f"{_name(c)} {kind}: {share}.")
    return lines


def _latency_lines(engine: Engine, report: RunReport) -> list[str]:
    """The cluster whose latency rise cost users the most waiting, and where it was served."""
    query = (
        select(RunAssignment.cluster_id, RunAssignment.window, Record.latency_ms, Record.endpoint)
        .join(Record, Record.id == RunAssignment.record_id)
        .where(RunAssignment.run_id == report.run_id, Record.latency_ms.is_not(None))
    )
    latency: dict[tuple[int, str], list[float]] = {}
    endpoints: dict[int, Counter[str]] = {}
    with engine.connect() as conn:
        for cluster_id, window, ms, endpoint in conn.execute(query):
            latency.setdefault((cluster_id, window), []).append(float(ms or 0.0))
            if window == "current" and endpoint:
                endpoints.setdefault(cluster_id, Counter())[endpoint] += 1
    # Ranked by the extra waiting (rise of the median x current calls), so a big topic that got
    # slower comes before a handful of calls that did.
    best: tuple[float, int, float, float] | None = None
    for c in report.clusters:
        before, now = latency.get((c.id, "baseline"), []), latency.get((c.id, "current"), [])
        if len(before) < 5 or len(now) < 5 or median(now) < 1.5 * median(before):
            continue
        extra = (median(now) - median(before)) * len(now)
        if best is None or extra > best[0]:
            best = (extra, c.id, median(before), median(now))
    if best is None:
        return []
    _, cluster_id, before_ms, now_ms = best
    ratio = now_ms / max(before_ms, 1e-9)
    cluster = report.cluster(cluster_id)
    assert cluster is not None
    line = (
        f"Slower: {_name(cluster)} median latency went from {before_ms:.0f} ms to "
        f"{now_ms:.0f} ms ({ratio:.1f}x)"
    )
    served = endpoints.get(cluster_id)
    if served:
        endpoint, n = served.most_common(1)[0]
        line += f"; {n} of its {sum(served.values())} current calls went to endpoint {endpoint}"
    return [line + "."]


def tell(engine: Engine, report: RunReport, *, hotspot_fdr: float) -> Story:
    """The story of the run ``report`` (stored in the store behind ``engine``)."""
    story = Story()
    clusters = report.clusters
    # A cluster flagged on its own ratings comes before one flagged at its parent's level,
    # whose evidence is mostly its neighbours'.
    hot = sorted(
        (c for c in clusters if c.hotspot.flagged),
        key=lambda c: (c.hotspot.level == "parent", c.hotspot.q_value or 1.0, -c.feedback.down),
    )
    drifted = sorted(
        (c for c in clusters if c.drift.flagged),
        key=lambda c: (c.drift.kind != "new", -c.current_count),
    )
    with Session(engine) as session:
        if hot:
            story.first_cluster = hot[0].id
            story.lines += _hotspot_lines(session, report, hot[0], hotspot_fdr)
            for c in hot[1:3]:
                fb = c.feedback
                own = (
                    f"{fb.down} of {fb.rated} ({_pct(fb.down_rate)}{_level(c)})"
                    if fb.rated
                    else f"no rated answers of its own in the current window{_level(c)}"
                )
                story.lines.append(f"Also drawing thumbs-down: {_name(c)}, {own}.")
    story.lines += _drift_lines(drifted[:4])
    if story.first_cluster is None and drifted:
        story.first_cluster = drifted[0].id
    story.lines += _latency_lines(engine, report)
    g = report.global_drift
    if g.flagged:
        story.lines.append(
            f"Overall, what people ask changed between the windows (p={g.p_value:.3f})."
        )
    if not story.lines:
        story.lines.append("Nothing was flagged: the current window looks like the baseline.")
    return story
