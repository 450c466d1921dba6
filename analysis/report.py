"""The run report: the contract's JSON shape, built from a ``RunResult``, and read back.

Per cluster, ``feedback`` and ``hotspot`` describe the current window (the problem now);
``latency_ms``, ``tokens`` and ``templates`` describe the whole cluster (both windows).
Values that cannot be computed (a percentile of no latencies, an untested hotspot's p-value)
are ``null``, never NaN.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from llmscope.analysis.pipeline import ClusterResult, RunResult
from llmscope.analysis.windows import Window, iso
from llmscope.db.models import AnalysisRun


def _num(value: float | int | None) -> float | None:
    """A JSON-safe number: NaN and infinities become null."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _percentile(values: Sequence[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if len(values) else None


def _column(records: Sequence[Mapping[str, Any]], members: np.ndarray, key: str) -> list[float]:
    return [float(records[i][key]) for i in members if records[i].get(key) is not None]


def _counts(records: Sequence[Mapping[str, Any]], members: np.ndarray, key: str) -> dict[str, int]:
    return dict(Counter(str(records[i][key]) for i in members if records[i].get(key)))


def cluster_entry(
    c: ClusterResult, records: Sequence[Mapping[str, Any]], result: RunResult
) -> dict[str, Any]:
    """One element of the report's ``clusters`` list."""
    assert c.drift is not None and c.hotspot is not None
    templates = Counter(
        f"{records[i]['template_name']}@{records[i].get('template_version') or ''}"
        for i in c.members
        if records[i].get("template_name")
    )
    latencies = _column(records, c.members, "latency_ms")
    return {
        "id": c.id,
        "size": int(len(c.members)),
        "baseline_count": c.baseline_count,
        "current_count": c.current_count,
        "baseline_share": c.baseline_count / result.baseline_records
        if result.baseline_records
        else 0.0,
        "current_share": c.current_count / result.current_records
        if result.current_records
        else 0.0,
        "keywords": c.keywords,
        "examples": [str(records[i]["id"]) for i in c.examples],
        "drift": {
            "kind": c.drift.kind,
            "score": _num(c.drift.score),
            "p_value": _num(c.drift.p_value),
            "q_value": _num(c.drift.q_value),
            "flagged": c.drift.flagged,
        },
        "feedback": {
            "rated": c.hotspot.rated,
            "down": c.hotspot.down,
            "down_rate": _num(c.hotspot.down_rate),
        },
        "hotspot": {
            "lift": _num(c.hotspot.lift),
            "p_value": _num(c.hotspot.p_value),
            "q_value": _num(c.hotspot.q_value),
            "flagged": c.hotspot.flagged,
        },
        "latency_ms": {"p50": _percentile(latencies, 50), "p95": _percentile(latencies, 95)},
        "tokens": {
            "input_p50": _percentile(_column(records, c.members, "input_tokens"), 50),
            "output_p50": _percentile(_column(records, c.members, "output_tokens"), 50),
        },
        "templates": dict(templates),
        "summary": None,
    }


def cluster_stats(
    c: ClusterResult, entry: Mapping[str, Any], records: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """What ``run_clusters.stats`` keeps: the report entry's numbers plus the wider slices."""
    assert c.hotspot is not None
    keep = ("size", "baseline_count", "current_count", "baseline_share", "current_share")
    return {
        **{k: entry[k] for k in keep},
        "drift": entry["drift"],
        "feedback": entry["feedback"],
        "hotspot": {**entry["hotspot"], "shrunken_down_rate": _num(c.hotspot.shrunken_rate)},
        "latency_ms": entry["latency_ms"],
        "tokens": entry["tokens"],
        "templates": entry["templates"],
        "endpoints": _counts(records, c.members, "endpoint"),
        "models": _counts(records, c.members, "model"),
    }


def build_report(
    run_id: str,
    created_at: datetime,
    baseline: Window,
    current: Window,
    result: RunResult,
    entries: list[dict[str, Any]],
) -> dict[str, Any]:
    """The contract's run report (plus ``template_versions``, the per-template A/B view)."""
    g = result.global_drift
    return {
        "run_id": run_id,
        "created_at": iso(created_at),
        "baseline": {
            "start": iso(baseline.start),
            "end": iso(baseline.end),
            "records": result.baseline_records,
        },
        "current": {
            "start": iso(current.start),
            "end": iso(current.end),
            "records": result.current_records,
        },
        "global_drift": {
            "statistic": _num(g.statistic),
            "p_value": _num(g.p_value),
            "flagged": g.flagged,
            "method": g.method,
        },
        "clusters": entries,
        "alerts": [],
        "template_versions": [
            {k: _num(v) if isinstance(v, float) else v for k, v in row.items()}
            for row in result.versions
        ],
    }


def load_report(session: Session, run_id: str = "latest") -> dict[str, Any] | None:
    """A stored run's report; ``latest`` is the newest run. None when there is no such run."""
    query = select(AnalysisRun.report)
    if run_id == "latest":
        query = query.order_by(AnalysisRun.created_at.desc(), AnalysisRun.id.desc()).limit(1)
    else:
        query = query.where(AnalysisRun.id == run_id)
    report = session.scalars(query).first()
    return dict(report) if report is not None else None
