"""The run report built from a ``RunResult``: the typed :class:`~llmscope.report.RunReport`.

Per cluster, ``feedback`` and ``hotspot`` describe the current window (the problem now);
``latency_ms``, ``tokens`` and ``templates`` describe the whole cluster (both windows);
``regressions`` and ``mix`` (clusters of the cut) set the windows side by side.
Values that cannot be computed (a percentile of no latencies, an untested hotspot's p-value)
are ``None`` (``null`` in the JSON), never NaN: the model guarantees it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, cast

import numpy as np
from sqlalchemy.orm import Session

from llmscope.analysis import stats
from llmscope.analysis.findings import build_findings
from llmscope.analysis.hotspot_tests import KindResult
from llmscope.analysis.implicit import RephraseVerdict, Turns
from llmscope.analysis.pipeline import ClusterResult, RunResult
from llmscope.analysis.regressions import RegressionResult
from llmscope.analysis.session_outcomes import SessionEnds, session_outcomes
from llmscope.analysis.windows import Window
from llmscope.db.cluster_stats import ClusterStats
from llmscope.db.models import AnalysisRun
from llmscope.report import (
    ClusterEntry,
    CostSlice,
    Drift,
    DriftKind,
    EvaluationHotspot,
    EvaluatorEntry,
    FeedbackCounts,
    GlobalDrift,
    Hotspot,
    HotspotTest,
    Implicit,
    LatencySlice,
    MixShare,
    NovelGroup,
    Regression,
    RephraseRate,
    RouteDestinationRow,
    RunReport,
    SessionOutcomes,
    TemplateVersionRow,
    TokenSlice,
    WindowInfo,
    finite,
)


def _percentile(values: Sequence[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if len(values) else None


def _column(records: Sequence[Mapping[str, Any]], members: np.ndarray, key: str) -> list[float]:
    return [float(records[i][key]) for i in members if records[i].get(key) is not None]


def _counts(records: Sequence[Mapping[str, Any]], members: np.ndarray, key: str) -> dict[str, int]:
    return dict(Counter(str(records[i][key]) for i in members if records[i].get(key)))


def cluster_entry(
    c: ClusterResult, records: Sequence[Mapping[str, Any]], result: RunResult
) -> ClusterEntry:
    """One element of the report's ``clusters`` list."""
    assert c.drift is not None and c.hotspot is not None
    templates = Counter(
        f"{records[i]['template_name']}@{records[i].get('template_version') or ''}"
        for i in c.members
        if records[i].get("template_name")
    )
    latencies = _column(records, c.members, "latency_ms")
    return ClusterEntry(
        id=c.id,
        parent=c.parent,
        size=c.baseline_count + c.current_count,  # the records it holds
        baseline_count=c.baseline_count,
        current_count=c.current_count,
        baseline_share=c.baseline_count / result.baseline_records
        if result.baseline_records
        else 0.0,
        current_share=c.current_count / result.current_records if result.current_records else 0.0,
        keywords=c.keywords,
        examples=[str(records[i]["id"]) for i in c.examples],
        drift=_drift(c.drift),
        feedback=FeedbackCounts(
            rated=c.hotspot.rated, down=c.hotspot.down, down_rate=c.hotspot.down_rate
        ),
        hotspot=Hotspot(
            kind=cast(Any, c.hotspot.kind),
            lift=c.hotspot.lift,
            p_value=c.hotspot.p_value,
            q_value=c.hotspot.q_value,
            flagged=c.hotspot.flagged,
            level="parent" if c.hotspot.level == "parent" else None,
            persistent=_test(c.hotspot.persistent, "lift"),
            emerging=_test(c.hotspot.emerging, "rise"),
        ),
        evaluations={
            name: EvaluationHotspot(
                evaluated=spot.rated,
                failed=spot.down,
                fail_rate=spot.down_rate if spot.rated else None,
                lift=spot.lift,
                p_value=spot.p_value,
                q_value=spot.q_value,
                flagged=spot.flagged,
            )
            for name, spot in sorted(c.evaluations.items())
        },
        implicit=None if c.rephrase is None else Implicit(rephrase=_rephrase(c.rephrase)),
        sessions=_sessions(c, result),
        latency_ms=LatencySlice(p50=_percentile(latencies, 50), p95=_percentile(latencies, 95)),
        tokens=TokenSlice(
            input_p50=_percentile(_column(records, c.members, "input_tokens"), 50),
            output_p50=_percentile(_column(records, c.members, "output_tokens"), 50),
        ),
        regressions={m: _regression(r) for m, r in c.regressions.items()},
        mix=_mix(records, c.members) if c.parent is None else {},
        templates=dict(templates),
        cost=_cost(_column(records, c.members, "cost_usd")),
    )


def _sessions(c: ClusterResult, result: RunResult) -> SessionOutcomes | None:
    if result.sessions is None or not result.sessions.any:
        return None
    found = session_outcomes(result.sessions, c.members)
    return SessionOutcomes(
        sessions=found.sessions,
        ended_thumbs_down=found.ended_thumbs_down,
        ended_rephrase=found.ended_rephrase,
        ended_badly=found.ended_badly,
        share=found.share,
    )


def _rephrase(r: RephraseVerdict) -> RephraseRate:
    return RephraseRate(
        current_rate=r.current_rate,
        baseline_rate=r.baseline_rate,
        current=r.current,
        baseline=r.baseline,
        p_value=r.test.p_value,
        q_value=r.test.q_value,
        flagged=r.flagged,
        kind=cast(Any, r.test.kind),
        lift=r.test.lift if r.test.rated else None,
    )


EXAMPLE_PAIRS = 5


def rephrase_flags(
    c: ClusterResult, records: Sequence[Mapping[str, Any]], turns: Turns
) -> dict[str, Any]:
    """What ``run_clusters.stats`` keeps of a cluster's turns: per rephrased and per
    regenerated record its next turn's id (the export and the record page read them), and up
    to :data:`EXAMPLE_PAIRS` rephrased pairs ``[record id, its rephrase's id]``, the current
    window's newest first (the cluster page shows them)."""

    def next_of(flag: np.ndarray) -> dict[str, str]:
        return {
            str(records[i]["id"]): str(records[turns.next_turn[i]]["id"])
            for i in c.members
            if flag[i]
        }

    rephrased = [int(i) for i in c.members if turns.rephrased[i]]
    newest = sorted(
        rephrased, key=lambda i: (records[i].get("window") == "current", i), reverse=True
    )
    return {
        "rephrased": next_of(turns.rephrased),
        "regenerated": next_of(turns.regenerated),
        "pairs": [
            [str(records[i]["id"]), str(records[turns.next_turn[i]]["id"])]
            for i in newest[:EXAMPLE_PAIRS]
        ],
    }


def _regression(r: RegressionResult) -> Regression:
    return Regression.model_validate(r.__dict__)


MIX = ("endpoint", "model", "template")


def _mix_value(record: Mapping[str, Any], what: str) -> str | None:
    if what == "template":
        name = record.get("template_name")
        return f"{name}@{record.get('template_version') or ''}" if name else None
    value = record.get(what)
    return str(value) if value else None


def _mix(
    records: Sequence[Mapping[str, Any]], members: np.ndarray
) -> dict[str, dict[str, MixShare]]:
    """Per endpoint, model and template: the cluster's calls in each window and their share of
    the cluster's calls in that window (what moved underneath a regression)."""
    in_window = Counter(str(records[i].get("window")) for i in members)
    out: dict[str, dict[str, MixShare]] = {}
    for what in MIX:
        counts: dict[str, Counter[str]] = {}
        for i in members:
            value = _mix_value(records[i], what)
            if value is not None:
                counts.setdefault(value, Counter())[str(records[i].get("window"))] += 1
        out[what] = {
            value: MixShare(
                baseline=n["baseline"],
                current=n["current"],
                baseline_share=n["baseline"] / in_window["baseline"]
                if in_window["baseline"]
                else None,
                current_share=n["current"] / in_window["current"] if in_window["current"] else None,
            )
            for value, n in sorted(counts.items(), key=lambda kv: (-kv[1]["current"], kv[0]))
        }
    return out


def _cost(costs: list[float]) -> CostSlice:
    total = float(sum(costs))
    return CostSlice(
        total_usd=round(total, 12),
        per_call_usd=round(total / len(costs), 12) if costs else None,
        priced=len(costs),
    )


def _test(result: KindResult, effect: str) -> HotspotTest:
    return HotspotTest(
        rated=result.rated,
        down=result.down,
        p_value=result.p_value,
        q_value=result.q_value,
        flagged=result.flagged,
        **{effect: result.effect},
    )


def _drift(change: stats.ShareChange) -> Drift:
    return Drift(
        kind=cast(DriftKind, change.kind),
        score=change.score,
        p_value=change.p_value,
        q_value=change.q_value,
        flagged=change.flagged,
    )


def novel_entry(result: RunResult, records: Sequence[Mapping[str, Any]]) -> NovelGroup | None:
    """The report's ``novel`` group: records far from every centroid, with its own drift."""
    g = result.novel
    if g is None:
        return None
    return NovelGroup(
        size=int(len(g.members)),
        baseline_count=g.baseline_count,
        current_count=g.current_count,
        baseline_share=g.baseline_count / result.baseline_records
        if result.baseline_records
        else 0.0,
        current_share=g.current_count / result.current_records if result.current_records else 0.0,
        max_similarity=g.threshold,
        examples=[str(records[i]["id"]) for i in g.examples],
        drift=None if g.drift is None else _drift(g.drift),
    )


def cluster_stats(
    c: ClusterResult,
    entry: ClusterEntry,
    records: Sequence[Mapping[str, Any]],
    turns: Turns | None = None,
    result_sessions: SessionEnds | None = None,
) -> ClusterStats:
    """What ``run_clusters.stats`` keeps: the report entry's numbers plus the wider slices
    (and, for a cluster of the cut in a run with ``turns``, its rephrased records; with the
    run's ``result_sessions``, a few sessions that ended badly in it)."""
    assert c.hotspot is not None
    data = entry.to_json()
    stats: ClusterStats = {
        "size": data["size"],
        "baseline_count": data["baseline_count"],
        "current_count": data["current_count"],
        "baseline_share": data["baseline_share"],
        "current_share": data["current_share"],
        "drift": data["drift"],
        "feedback": data["feedback"],
        "hotspot": {**data["hotspot"], "shrunken_down_rate": finite(c.hotspot.shrunken_rate)},
        "evaluations": {
            name: {**data["evaluations"][name], "shrunken_fail_rate": finite(spot.shrunken_rate)}
            for name, spot in c.evaluations.items()
        },
        "latency_ms": data["latency_ms"],
        "tokens": data["tokens"],
        "templates": data["templates"],
        "endpoints": _counts(records, c.members, "endpoint"),
        "models": _counts(records, c.members, "model"),
    }
    if turns is not None and c.parent is None and c.rephrase is not None:
        stats["implicit"] = {**data["implicit"], **rephrase_flags(c, records, turns)}
    if data.get("sessions") is not None and result_sessions is not None:
        # the cluster page links to a few of the sessions that ended badly
        examples = session_outcomes(result_sessions, c.members).examples
        stats["sessions"] = {**data["sessions"], "examples": examples}
    if c.parent is not None:  # a sub-cluster keeps its parent and records (exports, the map)
        stats["parent"] = c.parent
        stats["members"] = [str(records[i]["id"]) for i in c.members]
    return stats


def build_report(
    run_id: str,
    created_at: datetime,
    baseline: Window,
    current: Window,
    result: RunResult,
    entries: list[ClusterEntry],
    records: Sequence[Mapping[str, Any]] = (),
) -> RunReport:
    """The contract's run report (plus ``template_versions``, the per-template A/B view)."""
    g = result.global_drift
    report = RunReport(
        run_id=run_id,
        created_at=created_at,
        baseline=WindowInfo(
            start=baseline.start, end=baseline.end, records=result.baseline_records
        ),
        current=WindowInfo(start=current.start, end=current.end, records=result.current_records),
        global_drift=GlobalDrift(
            statistic=g.statistic, p_value=g.p_value, flagged=g.flagged, method=g.method
        ),
        clusters=entries,
        novel=novel_entry(result, records),
        template_versions=[TemplateVersionRow.model_validate(row) for row in result.versions],
        route_destinations=[RouteDestinationRow.model_validate(row) for row in result.routes],
        evaluators={
            name: EvaluatorEntry.model_validate(entry)
            for name, entry in sorted(result.evaluators.items())
        },
    )
    report.findings = build_findings(report)
    return report


def save_report(session: Session, report: RunReport) -> None:
    """Write ``report`` as its run's stored report (the caller commits)."""
    run = session.get(AnalysisRun, report.run_id)
    if run is None:
        raise LookupError(f"no analysis run {report.run_id!r}")
    run.report = report.to_json()
    session.flush()
