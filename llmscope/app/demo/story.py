"""What the demo tells the newcomer: the run's findings (and their records) turned into sentences.

:func:`tell` reads the stored run and returns the lines to print and the cluster to open
first: the report's ``findings`` in their order (the analysis ranks them), each told with its
evidence. Every number comes from the report (flags, rates, q-values, the regressions and what
moved underneath them, the template A/B view) or is read straight from the run's records (the
users' tags and comments), so the story can only say what the analysis and the store hold.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from llmscope.analysis.findings import largest_shift, regression_sentence, shift_text
from llmscope.db.models import Feedback, RunAssignment
from llmscope.db.queries import newest_feedback
from llmscope.report import ClusterEntry, Finding, RunReport, TemplateVersionRow

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
    session: Session, report: RunReport, cluster: ClusterEntry, fdr: float, lead: str
) -> list[str]:
    fb = cluster.feedback
    lines = [
        f"{lead} {_name(cluster)}: {fb.down} of {fb.rated} rated answers in the "
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


def _traffic_line(c: ClusterEntry) -> str:
    share = f"{_pct(c.baseline_share)} -> {_pct(c.current_share)} of traffic"
    if c.drift.kind == "new":
        return (
            f"New topic, {_name(c)}: {c.current_count} requests in the current window, "
            f"{c.baseline_count} before ({share}); examples are on its page."
        )
    return f"{_name(c)} {c.drift.kind}: {share}."


# How the story opens a regression of each metric (a rise; output length can also fall).
_REGRESSION_WORDS = {
    "latency_ms": "Slower",
    "output_tokens": "Longer answers",
    "cost_usd": "Costlier",
    "error_rate": "More errors",
}


def _regression_line(c: ClusterEntry, metric: str) -> str:
    """The regression as the analysis tested it, and what moved underneath it."""
    r = c.regressions[metric]
    word = _REGRESSION_WORDS[metric]
    if metric == "output_tokens" and (r.ratio or 1.0) < 1:
        word = "Shorter answers"
    line = f"{word}: {_name(c)} {regression_sentence(metric, r)}"
    shift = largest_shift(c)
    return line + (f"; {shift_text(shift)}." if shift is not None else ".")


def _finding_lines(
    session: Session, report: RunReport, finding: Finding, told_hotspots: int, fdr: float
) -> list[str]:
    c = report.cluster(finding.cluster_id) if finding.cluster_id is not None else None
    if finding.kind == "global_drift":
        g = report.global_drift
        return [f"Overall, what people ask changed between the windows (p={g.p_value:.2g})."]
    if c is None:  # the novel group's drift: no cluster to describe
        return [finding.message]
    if finding.kind == "hotspot":
        if told_hotspots == 0:
            first = finding is report.findings[0]
            lead = "Look first at" if first else "Thumbs-down hotspot,"
            return _hotspot_lines(session, report, c, fdr, lead)
        fb = c.feedback
        own = (
            f"{fb.down} of {fb.rated} ({_pct(fb.down_rate)}{_level(c)})"
            if fb.rated
            else f"no rated answers of its own in the current window{_level(c)}"
        )
        return [f"Also drawing thumbs-down: {_name(c)}, {own}."]
    if finding.kind == "regression" and finding.metric in c.regressions:
        return [_regression_line(c, finding.metric)]
    if finding.kind in ("new_cluster", "drift"):
        return [_traffic_line(c)]
    return [finding.message]


def tell(engine: Engine, report: RunReport, *, hotspot_fdr: float, most: int = 8) -> Story:
    """The story of the run ``report`` (stored in the store behind ``engine``): its ``most``
    most severe findings, in the report's order (the analysis ranks them, not the story)."""
    story = Story()
    findings = report.findings
    told = findings[:most]
    story.first_cluster = next((f.cluster_id for f in findings if f.cluster_id is not None), None)
    with Session(engine) as session:
        hotspots = 0
        for finding in told:
            lines = _finding_lines(session, report, finding, hotspots, hotspot_fdr)
            hotspots += finding.kind == "hotspot"
            if finding is told[0] and not lines[0].startswith("Look first at"):
                lines = [f"Look first at {_name_of(report, finding)}."] + lines
            story.lines += lines
    if len(findings) > most:
        story.lines.append(f"... and {len(findings) - most} more findings on the dashboard.")
    if not story.lines:
        story.lines.append("Nothing was flagged: the current window looks like the baseline.")
    return story


def _name_of(report: RunReport, finding: Finding) -> str:
    c = report.cluster(finding.cluster_id) if finding.cluster_id is not None else None
    return _name(c) if c is not None else "the traffic as a whole"
