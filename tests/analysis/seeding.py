"""Stored analysis runs built by hand: records, feedback, a run, its clusters and assignments.

The summaries, alerts and matching steps only read what a run stored, so their tests seed runs
directly as a typed ``RunReport`` instead of running the whole analysis.
"""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from llmscope.db.models import AnalysisRun, Feedback, Record, RunAssignment, RunCluster
from llmscope.report import (
    ClusterEntry,
    Drift,
    FeedbackCounts,
    GlobalDrift,
    Hotspot,
    LatencySlice,
    Regression,
    RunReport,
    TokenSlice,
    WindowInfo,
)

_ids = itertools.count()
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@dataclass
class Down:
    """A thumbs-down on one of a cluster's current-window records (by index)."""

    index: int
    tags: list[str]
    comment: str


@dataclass
class ClusterSeed:
    id: int
    centroid: list[float]
    current: list[tuple[str, str]]  # (question, answer) in the current window
    baseline: list[tuple[str, str]] = field(default_factory=list)
    keywords: list[str] = field(default_factory=list)
    drift_kind: str = "stable"
    drift_flagged: bool = False
    hotspot_flagged: bool = False
    downs: list[Down] = field(default_factory=list)
    regressions: dict[str, Regression] = field(default_factory=dict)


def unit(*values: float, dim: int = 8) -> list[float]:
    """A unit vector of ``dim`` numbers starting with ``values`` (the rest zero)."""
    vector = np.zeros(dim, dtype=np.float64)
    vector[: len(values)] = values
    return list(vector / np.linalg.norm(vector))


def seed_run(
    engine: Engine,
    clusters: list[ClusterSeed],
    *,
    run_id: str | None = None,
    created_at: datetime = NOW,
    global_flagged: bool = False,
) -> str:
    """Store a run of ``clusters``; returns its id. Numbers follow from the seeds' counts."""
    run_id = run_id or f"run-{uuid.uuid4().hex[:10]}"
    n_current = sum(len(c.current) for c in clusters) or 1
    n_baseline = sum(len(c.baseline) for c in clusters) or 1
    report_clusters: list[ClusterEntry] = []
    with Session(engine) as session:
        run = AnalysisRun(
            id=run_id,
            created_at=created_at,
            baseline_start=created_at - timedelta(days=8),
            baseline_end=created_at - timedelta(days=1),
            current_start=created_at - timedelta(days=1),
            current_end=created_at,
        )
        session.add(run)
        session.flush()
        for seed in clusters:
            ids: dict[str, list[str]] = {"current": [], "baseline": []}
            for window, pairs in (("current", seed.current), ("baseline", seed.baseline)):
                for question, answer in pairs:
                    record_id = f"{run_id}-c{seed.id}-{window}-{next(_ids)}"
                    ids[window].append(record_id)
                    stamp = created_at - timedelta(hours=2 if window == "current" else 72)
                    session.add(
                        Record(
                            id=record_id,
                            timestamp=stamp,
                            endpoint="chat",
                            model="gpt-4o-mini",
                            messages=[{"role": "user", "content": question}],
                            response=answer,
                            latency_ms=400.0,
                            template_name="support",
                            template_version="2",
                        )
                    )
                    session.add(
                        RunAssignment(
                            run_id=run_id,
                            record_id=record_id,
                            cluster_id=seed.id,
                            window=window,
                            x=float(seed.id),
                            y=0.0,
                        )
                    )
            session.flush()
            for down in seed.downs:
                session.add(
                    Feedback(
                        record_id=ids["current"][down.index],
                        thumb="down",
                        score=0.0,
                        tags=down.tags,
                        comment=down.comment,
                    )
                )
            rated = len(seed.downs)
            report_cluster = ClusterEntry(
                id=seed.id,
                size=len(seed.current) + len(seed.baseline),
                baseline_count=len(seed.baseline),
                current_count=len(seed.current),
                baseline_share=len(seed.baseline) / n_baseline,
                current_share=len(seed.current) / n_current,
                keywords=seed.keywords,
                examples=ids["current"][:3],
                drift=Drift(
                    kind=seed.drift_kind,
                    score=1.0,
                    p_value=0.001 if seed.drift_flagged else 0.6,
                    q_value=0.004 if seed.drift_flagged else 0.8,
                    flagged=seed.drift_flagged,
                ),
                feedback=FeedbackCounts(rated=rated, down=rated, down_rate=1.0 if rated else 0.0),
                hotspot=Hotspot(
                    lift=4.0 if seed.hotspot_flagged else 1.0,
                    p_value=0.001 if seed.hotspot_flagged else 0.7,
                    q_value=0.003 if seed.hotspot_flagged else 0.9,
                    flagged=seed.hotspot_flagged,
                ),
                latency_ms=LatencySlice(p50=400.0, p95=950.0),
                tokens=TokenSlice(input_p50=20.0, output_p50=40.0),
                regressions=seed.regressions,
                templates={"support@2": len(seed.current) + len(seed.baseline)},
            )
            report_clusters.append(report_cluster)
            session.add(
                RunCluster(
                    run_id=run_id,
                    cluster_id=seed.id,
                    size=report_cluster.size,
                    centroid=np.asarray(seed.centroid, dtype="<f4").tobytes(),
                    keywords=seed.keywords,
                    stats={},
                )
            )
        run.report = RunReport(
            run_id=run_id,
            created_at=created_at,
            baseline=WindowInfo(start=run.baseline_start, end=run.baseline_end, records=n_baseline),
            current=WindowInfo(start=run.current_start, end=run.current_end, records=n_current),
            global_drift=GlobalDrift(
                statistic=3.0,
                p_value=0.001 if global_flagged else 0.5,
                flagged=global_flagged,
                method="classifier two-sample test",
            ),
            clusters=report_clusters,
        ).to_json()
        session.commit()
    return run_id
