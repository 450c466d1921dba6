"""The run's findings: every flagged verdict of the report as one list, most severe first.

:func:`build_findings` reads only the report's ``flagged`` verdicts, so a finding is exactly as
trustworthy as the test behind it, and it is the one place that ranks them: the CLI story, the
alerts (and their order), the webhooks, ``/metrics`` and the dashboard read the list it writes
to ``RunReport.findings``.

**Severity** is how many of the current window's calls the finding touches times how much
worse they are, in "calls made worse":

- ``hotspot``: the cluster's current calls x the excess thumbs-down rate of the flagged test
  (its rate minus the rate it was compared with: the rest of the traffic for a persistent
  hotspot, the cluster's own baseline for an emerging one), i.e. the extra thumbs-down answers
  to expect among those calls;
- ``eval_hotspot``: the same with the evaluator's fail rate (the worst flagged evaluator);
- ``rephrase_hotspot``: the same with the rephrase rate (``clusters[].implicit.rephrase``: the
  share of answers whose user asked the same question again in other words), its excess over
  the current window's overall rate (persistent) or over its own baseline rate (emerging);
- ``regression``: the metric's current calls x the relative change, ``1 - min(r, 1/r)`` for a
  ratio ``r`` of medians or means (a doubled latency: half of each wait is extra; 1 when the
  baseline was 0), and for ``error_rate`` the current calls x the rise of the rate (the extra
  failed calls);
- ``new_cluster`` / ``drift``: the calls the cluster gained or lost against its baseline share
  (``|current - baseline share x current records|``), weighted by :data:`TRAFFIC_WEIGHT` (the
  ``novel`` group's flagged drift is a ``drift`` finding without a cluster, weighed the same);
- ``global_drift``: the current records x the share of traffic that moved between clusters
  (half the sum of the share changes), weighted by :data:`GLOBAL_WEIGHT`.

A change in what users ask is news, not harm, so traffic findings weigh a tenth of calls made
worse: a new topic of 500 calls ranks with a hotspot adding 50 thumbs-down. The global test
says that the mix changed, which the clusters' own findings say where, so it weighs a tenth of
those again and comes after them. Ties are ordered by
kind (:data:`KIND_ORDER`), cluster id and metric, so the order is the same on every machine.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmscope.report import ClusterEntry, Finding, MixShare, Regression, RunReport

__all__ = [
    "GLOBAL_WEIGHT",
    "KIND_ORDER",
    "TRAFFIC_WEIGHT",
    "Shift",
    "build_findings",
    "cluster_label",
    "largest_shift",
    "regression_sentence",
    "shift_text",
]

TRAFFIC_WEIGHT = 0.1
GLOBAL_WEIGHT = TRAFFIC_WEIGHT / 10
KIND_ORDER = (
    "hotspot",
    "eval_hotspot",
    "rephrase_hotspot",
    "regression",
    "new_cluster",
    "drift",
    "global_drift",
)
METRIC_NAMES = {
    "latency_ms": "median latency",
    "output_tokens": "median output length",
    "cost_usd": "mean cost per call",
    "error_rate": "error rate",
}


def _pct(value: float | None) -> str:
    return f"{100 * float(value):.1f}%" if isinstance(value, int | float) else "n/a"


def _q(q: float | None) -> str:
    return f"q={float(q):.2g}" if isinstance(q, int | float) else "q=n/a"


def cluster_label(cluster: ClusterEntry) -> str:
    """``cluster 6 "Refund window"``: its summary's title, else its first keywords."""
    title = cluster.summary.title if cluster.summary is not None else None
    if not title:
        title = ", ".join(str(k) for k in cluster.keywords[:3])
    return f'cluster {cluster.id} "{title}"' if title else f"cluster {cluster.id}"


def _excess(rate: float | None, effect: float | None) -> float:
    """A rate minus the rate it was compared with, given ``rate / other = effect``."""
    if not rate or not effect or effect <= 1:
        return 0.0
    return float(rate) * (1 - 1 / float(effect))


def _hotspot(cluster: ClusterEntry) -> Finding:
    spot, fb = cluster.hotspot, cluster.feedback
    test = spot.emerging if spot.kind == "emerging" else spot.persistent
    if test is not None and test.rated:
        effect = test.rise if spot.kind == "emerging" else test.lift
        excess = _excess(test.down / test.rated, effect)
    else:  # a report from before the two tests
        excess = _excess(fb.down_rate, spot.lift)
    lift = spot.lift
    lift_text = f", {float(lift):.1f}x the rest" if isinstance(lift, int | float) else ""
    return Finding(
        kind="hotspot",
        cluster_id=cluster.id,
        severity=cluster.current_count * excess,
        message=f"Thumbs-down hotspot in {cluster_label(cluster)}: {fb.down} of "
        f"{fb.rated} rated answers thumbs-down ({_pct(fb.down_rate)}{lift_text}; "
        f"{_q(spot.q_value)}).",
    )


def _eval_hotspot(cluster: ClusterEntry) -> Finding | None:
    flagged = [(n, e) for n, e in sorted(cluster.evaluations.items()) if e.flagged]
    if not flagged:
        return None
    parts = [
        f"{name}: {e.failed} of {e.evaluated} answers failed ({_pct(e.fail_rate)}; {_q(e.q_value)})"
        for name, e in flagged
    ]
    excess = max(_excess(e.fail_rate, e.lift) for _, e in flagged)
    return Finding(
        kind="eval_hotspot",
        cluster_id=cluster.id,
        severity=cluster.current_count * excess,
        message=f"Evaluator hotspot in {cluster_label(cluster)}: " + "; ".join(parts) + ".",
    )


def _rephrase_hotspot(cluster: ClusterEntry) -> Finding | None:
    rephrase = cluster.implicit.rephrase if cluster.implicit is not None else None
    if rephrase is None or not rephrase.flagged:
        return None
    rate, before, lift = rephrase.current_rate, rephrase.baseline_rate, rephrase.lift
    if rephrase.kind == "emerging":
        excess = max(float(rate or 0.0) - float(before or 0.0), 0.0)
        against = f"up from {_pct(before)} in the baseline"
    else:
        excess = _excess(rate, lift)
        against = f"{float(lift):.1f}x the rest" if isinstance(lift, int | float) else "the rest"
    return Finding(
        kind="rephrase_hotspot",
        cluster_id=cluster.id,
        severity=cluster.current_count * excess,
        message=f"Rephrase hotspot in {cluster_label(cluster)}: users asked the same question "
        f"again in other words after {rephrase.current} answers in the current window "
        f"({_pct(rate)} of answers in a conversation, {against}; {_q(rephrase.q_value)}).",
    )


def _traffic(cluster: ClusterEntry, report: RunReport) -> Finding:
    drift = cluster.drift
    expected = cluster.baseline_share * report.current.records
    severity = TRAFFIC_WEIGHT * abs(cluster.current_count - expected)
    shares = f"{_pct(cluster.baseline_share)} -> {_pct(cluster.current_share)}"
    if drift.kind == "new":
        return Finding(
            kind="new_cluster",
            cluster_id=cluster.id,
            severity=severity,
            message=f"New {cluster_label(cluster)}: {cluster.current_count} requests "
            f"in the current window, share {shares} ({_q(drift.q_value)}).",
        )
    return Finding(
        kind="drift",
        cluster_id=cluster.id,
        severity=severity,
        message=f"{cluster_label(cluster).capitalize()} {drift.kind}: share "
        f"of traffic {shares} ({_q(drift.q_value)}).",
    )


@dataclass(frozen=True)
class Shift:
    """The endpoint, model or template whose share of a cluster's current calls rose most."""

    what: str  # endpoint | model | template
    value: str
    share: MixShare
    baseline_calls: int  # the cluster's calls in each window
    current_calls: int


def largest_shift(cluster: ClusterEntry, min_rise: float = 0.1) -> Shift | None:
    """What changed underneath the cluster: the value of ``mix`` whose share of the current
    calls rose most over its baseline share (at least ``min_rise``); None when nothing moved."""
    best: Shift | None = None
    best_rise = min_rise
    for what in ("endpoint", "model", "template"):
        for value, share in cluster.mix.get(what, {}).items():
            rise = (share.current_share or 0.0) - (share.baseline_share or 0.0)
            if rise >= best_rise and (best is None or rise > best_rise):
                best, best_rise = (
                    Shift(what, value, share, cluster.baseline_count, cluster.current_count),
                    rise,
                )
    return best


def shift_text(shift: Shift) -> str:
    """``40 of its 40 current calls went to endpoint big (2 of 180 in the baseline)``."""
    return (
        f"{shift.share.current} of its {shift.current_calls} current calls went to "
        f"{shift.what} {shift.value} ({shift.share.baseline} of {shift.baseline_calls} "
        f"in the baseline)"
    )


def _figure(metric: str, value: float | None) -> str:
    if value is None:
        return "n/a"
    if metric == "latency_ms":
        return f"{value:,.0f} ms"
    if metric == "output_tokens":
        return f"{value:,.0f} tokens"
    if metric == "cost_usd":
        return f"${value:.4g}"
    return _pct(value)


def regression_sentence(metric: str, r: Regression) -> str:
    """``median latency went from 150 ms to 1,100 ms (7.3x; q=1e-20)``."""
    ratio = f"{r.ratio:.1f}x; " if r.ratio is not None else ""
    return (
        f"{METRIC_NAMES[metric]} went from {_figure(metric, r.baseline)} to "
        f"{_figure(metric, r.current)} ({ratio}{_q(r.q_value)})"
    )


def _regression(cluster: ClusterEntry, metric: str, r: Regression) -> Finding:
    if metric == "error_rate":
        effect = max((r.current or 0.0) - (r.baseline or 0.0), 0.0)
    elif r.ratio is None or r.ratio <= 0:
        effect = 1.0
    else:
        effect = 1 - min(r.ratio, 1 / r.ratio)
    shift = largest_shift(cluster)
    underneath = f"; {shift_text(shift)}" if shift is not None else ""
    return Finding(
        kind="regression",
        cluster_id=cluster.id,
        metric=metric,
        severity=r.current_calls * effect,
        message=f"Regression in {cluster_label(cluster)}: {regression_sentence(metric, r)} "
        f"over {r.current_calls} current calls{underneath}.",
    )


def _global(report: RunReport) -> Finding:
    g = report.global_drift
    cut = [c for c in report.clusters if c.parent is None and c.id >= 0]
    moved = sum(abs(c.current_share - c.baseline_share) for c in cut) / 2
    p_text = f"p={float(g.p_value):.2g}" if isinstance(g.p_value, int | float) else "p=n/a"
    return Finding(
        kind="global_drift",
        cluster_id=None,
        severity=GLOBAL_WEIGHT * report.current.records * moved,
        message=f"Traffic in the current window differs from the baseline ({g.method}, {p_text}).",
    )


def _novel(report: RunReport) -> list[Finding]:
    """The novel group's flagged drift (records far from every cluster): a ``drift`` finding
    about no cluster, weighed like a cluster's."""
    g = report.novel
    if g is None or g.drift is None or not g.drift.flagged:
        return []
    expected = g.baseline_share * report.current.records
    return [
        Finding(
            kind="drift",
            cluster_id=None,
            severity=TRAFFIC_WEIGHT * abs(g.current_count - expected),
            message=f"Questions far from every cluster ({g.drift.kind}): {g.current_count} in the "
            f"current window, share {_pct(g.baseline_share)} -> {_pct(g.current_share)} "
            f"({_q(g.drift.q_value)}).",
        )
    ]


def _of_cluster(cluster: ClusterEntry, report: RunReport) -> list[Finding]:
    found: list[Finding] = []
    if cluster.drift.flagged:
        found.append(_traffic(cluster, report))
    if cluster.hotspot.flagged:
        found.append(_hotspot(cluster))
    evaluated = _eval_hotspot(cluster)
    if evaluated is not None:
        found.append(evaluated)
    rephrased = _rephrase_hotspot(cluster)
    if rephrased is not None:
        found.append(rephrased)
    found += [_regression(cluster, m, r) for m, r in cluster.regressions.items() if r.flagged]
    return found


def _order(finding: Finding) -> tuple[float, int, int, str]:
    kind = KIND_ORDER.index(finding.kind) if finding.kind in KIND_ORDER else len(KIND_ORDER)
    cid = -1 if finding.cluster_id is None else finding.cluster_id
    return (-finding.severity, kind, cid, finding.metric or "")


def build_findings(report: RunReport) -> list[Finding]:
    """Every flagged verdict of ``report`` as a finding, most severe first (module docstring)."""
    found: list[Finding] = [_global(report)] if report.global_drift.flagged else []
    found += _novel(report)
    for cluster in report.clusters:
        if cluster.id >= 0:
            found += _of_cluster(cluster, report)
    return sorted(found, key=_order)
