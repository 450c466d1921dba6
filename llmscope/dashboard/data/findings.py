"""What a run found, in the order the dashboard shows it: the report's ranked ``findings``.

The analysis ranks every flagged finding by severity (report key ``findings``); the overview,
the clusters list and the cluster pages show that order and rank nothing themselves. Runs
stored before the report had ``findings`` show their alerts instead, in the order the run
raised them, and the clusters list falls back to: clusters with an alert first (in that order),
then the other flagged ones (hotspot, evaluator hotspot, drift) by their smallest q-value, then
the rest, largest first.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmscope.report import ClusterEntry, RunReport

HOTSPOT_KINDS = ("hotspot", "eval_hotspot", "rephrase_hotspot")


@dataclass(frozen=True)
class Finding:
    """One finding: ``severity`` is None for an older run's alert shown in its place."""

    kind: str
    cluster_id: int | None
    message: str
    metric: str | None = None
    severity: float | None = None


def findings(report: RunReport) -> list[Finding]:
    """The run's findings, most severe first (an older run: its alerts, as raised)."""
    if "findings" not in report.model_fields_set:  # stored before the report ranked them
        return [Finding(a.kind, a.cluster_id, a.message) for a in report.alerts]
    return [Finding(f.kind, f.cluster_id, f.message, f.metric, f.severity) for f in report.findings]


def of_cluster(report: RunReport, cluster_id: int) -> list[Finding]:
    return [f for f in findings(report) if f.cluster_id == cluster_id]


def _smallest_q(c: ClusterEntry) -> float | None:
    qs = [c.hotspot.q_value if c.hotspot.flagged else None]
    qs.append(c.drift.q_value if c.drift.flagged else None)
    qs += [e.q_value if e.flagged else None for e in c.evaluations.values()]
    found = [q for q in qs if q is not None]
    return min(found) if found else None


def by_severity(report: RunReport) -> list[ClusterEntry]:
    """The report's clusters: those with findings in the findings' order, then (older runs)
    the other flagged ones by smallest q-value, then the rest, largest first."""
    rank: dict[int, int] = {}
    for i, f in enumerate(findings(report)):
        if f.cluster_id is not None:
            rank.setdefault(int(f.cluster_id), i)

    def key(c: ClusterEntry) -> tuple[int, float, float, int]:
        if c.id in rank:
            return (0, rank[c.id], 0.0, c.id)
        q = _smallest_q(c)
        return (1, q, 0.0, c.id) if q is not None else (2, 0.0, -c.size, c.id)

    return sorted(report.clusters, key=key)


def flag_words(c: ClusterEntry) -> list[str]:
    """What flagged the cluster, in words ("thumbs-down hotspot", "new topic", ...)."""
    words = []
    if c.hotspot.flagged:
        words.append(f"{c.hotspot.kind} thumbs-down hotspot" if c.hotspot.kind else
                     "thumbs-down hotspot")  # fmt: skip
    words += [f"fails {name}" for name, e in sorted(c.evaluations.items()) if e.flagged]
    for metric, test in sorted(c.regressions.items()):
        if test.flagged:
            words.append(REGRESSION_WORDS.get(metric, metric.replace("_", " ")))
    if c.drift.flagged:
        words.append(DRIFT_WORDS.get(c.drift.kind, c.drift.kind))
    return words


DRIFT_WORDS = {
    "new": "new topic",
    "grew": "asked more",
    "shrank": "asked less",
    "vanished": "no longer asked",
}
REGRESSION_WORDS = {
    "latency_ms": "slower",
    "output_tokens": "longer answers",
    "cost_usd": "costlier",
    "error_rate": "more errors",
}
