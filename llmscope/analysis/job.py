"""One analysis run: read the windows' records, analyse them, store the run, return its report.

This module only wires the store to the pure pipeline (``pipeline.py``, ``stats.py``) and to
the report shape (``report.py``). Records marked ``internal`` (llmscope's own summary calls)
and records with nothing to embed are never analysed.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

import numpy as np
from sqlalchemy import insert, or_, select
from sqlalchemy.orm import Session

from llmscope.analysis.embedding import record_text
from llmscope.analysis.sampling import sample_windows
from llmscope.analysis.small_data import (
    EmptyWindows,
    drift_testable,
    mark_untested,
    require_records,
    run_warnings,
    window_records,
)
from llmscope.analysis.timings import recording, stage
from llmscope.analysis.windows import Window, default_windows
from llmscope.config import Settings
from llmscope.db import make_engine, make_sessionmaker
from llmscope.db.models import (
    EXTERNAL_VERSION,
    AnalysisRun,
    Evaluation,
    Record,
    RunAssignment,
    RunCluster,
    analysable,
)
from llmscope.db.queries import newest_thumbs
from llmscope.db.record_row import RECORD_ROW, RecordRow, record_row
from llmscope.report import RunReport, SampleInfo

if TYPE_CHECKING:
    from llmscope.analysis.pipeline import RunResult

# The pipeline, the tests and the follow-up steps (scikit-learn, SciPy, the summaries' clients)
# are imported once a run has records: a run over empty windows answers before loading them.

log = logging.getLogger("llmscope.analysis")

LOOKUP_CHUNK = 900
INSERT_CHUNK = 5000


class AnalysedRecord(RecordRow):
    """A record of the run's windows, and which of them it fell in."""

    window: Literal["baseline", "current"]


def load_records(session: Session, baseline: Window, current: Window) -> list[AnalysedRecord]:
    """The non-internal records of both windows, oldest first, each with its ``window``."""
    in_window = [
        (Record.timestamp >= w.start) & (Record.timestamp < w.end) for w in (baseline, current)
    ]
    query = (
        select(*RECORD_ROW)
        .where(analysable(), or_(*in_window))
        .order_by(Record.timestamp, Record.id)
    )
    rows = []
    for row in session.execute(query).mappings():
        record = record_row(row)
        moment = record["timestamp"]
        window: Literal["baseline", "current"] = (
            "current" if current.start <= moment < current.end else "baseline"
        )
        rows.append(AnalysedRecord(**record, window=window))
    return rows


def latest_verdicts(
    session: Session, baseline: Window, current: Window, record_ids: Sequence[str]
) -> tuple[dict[str, dict[str, bool]], dict[str, str]]:
    """Per evaluator, the verdicts (record id -> passed) of its newest version over the windows'
    records, and that version. Errors and pending claims are not verdicts. Evaluations computed
    elsewhere (version ``external``) are the evaluator ``NAME@external``."""
    in_window = [
        (Record.timestamp >= w.start) & (Record.timestamp < w.end) for w in (baseline, current)
    ]
    rows = session.execute(
        select(
            Evaluation.evaluator,
            Evaluation.version,
            Evaluation.record_id,
            Evaluation.passed,
            Evaluation.created_at,
        )
        .join(Record, Record.id == Evaluation.record_id)
        .where(
            Evaluation.status == "done",
            Evaluation.passed.is_not(None),
            analysable(),
            or_(*in_window),
        )
    ).all()
    newest: dict[str, tuple[datetime, str]] = {}
    for row in rows:
        name = _evaluator_key(row.evaluator, row.version)
        seen = newest.get(name)
        if seen is None or row.created_at > seen[0]:
            newest[name] = (row.created_at, row.version)
    wanted = set(record_ids)
    verdicts: dict[str, dict[str, bool]] = {name: {} for name in newest}
    for row in rows:
        name = _evaluator_key(row.evaluator, row.version)
        if row.version == newest[name][1] and row.record_id in wanted:
            verdicts[name][row.record_id] = bool(row.passed)
    return verdicts, {name: version for name, (_, version) in newest.items()}


def _evaluator_key(evaluator: str, version: str) -> str:
    # Evaluations computed elsewhere are tested apart from a configured evaluator of the same
    # name (another judge, another scale), and every one of them counts: no newer version.
    return f"{evaluator}@{EXTERNAL_VERSION}" if version == EXTERNAL_VERSION else evaluator


def write_run(
    session: Session,
    *,
    run_id: str,
    created_at: datetime,
    baseline: Window,
    current: Window,
    records: Sequence[AnalysedRecord],
    result: RunResult,
    warnings: Sequence[str] = (),
    sample: SampleInfo | None = None,
) -> RunReport:
    """Build the run's report and add the run, its clusters and its assignments to the open
    transaction (not committed). The run row's ``params`` and ``report`` are written by the
    caller once the report is complete (its ``params`` carry the timings of this very step)."""
    from llmscope.analysis.findings import build_findings
    from llmscope.analysis.report import build_report, cluster_entry, cluster_stats

    entries = [cluster_entry(c, records, result) for c in result.clusters]
    report = build_report(run_id, created_at, baseline, current, result, entries, records)
    report.sample = sample
    report.warnings = list(warnings)
    if not drift_testable(result.baseline_records, result.current_records):
        mark_untested(report)
        report.findings = build_findings(report)
    session.add(
        AnalysisRun(
            id=run_id,
            created_at=created_at,
            baseline_start=baseline.start,
            baseline_end=baseline.end,
            current_start=current.start,
            current_end=current.end,
            params={},
            report={},
        )
    )
    session.flush()
    session.add_all(
        RunCluster(
            run_id=run_id,
            cluster_id=c.id,
            size=c.baseline_count + c.current_count,
            centroid=c.centroid.astype("<f4").tobytes(),
            keywords=c.keywords,
            stats=cluster_stats(c, entry, records, result.turns, result.sessions),
        )
        for c, entry in zip(result.clusters, report.clusters, strict=True)
    )
    assignments = [
        {
            "run_id": run_id,
            "record_id": r["id"],
            "cluster_id": int(result.labels[i]),
            "window": r["window"],
            "x": float(result.layout[i, 0]),
            "y": float(result.layout[i, 1]),
        }
        for i, r in enumerate(records)
    ]
    for start in range(0, len(assignments), INSERT_CHUNK):
        session.execute(insert(RunAssignment), assignments[start : start + INSERT_CHUNK])
    session.flush()
    return report


def run_analysis(
    settings: Settings,
    baseline: Window | None = None,
    current: Window | None = None,
    *,
    now: datetime | None = None,
    progress: bool = True,
) -> RunReport:
    """Run one analysis over the two windows (contract defaults) and return the stored report.

    Raises :class:`~llmscope.analysis.small_data.EmptyWindows` (nothing stored) when neither
    window holds a record to analyse.
    """
    baseline, current = default_windows(now, baseline, current)
    started = time.perf_counter()
    engine = make_engine(settings.database_url)
    try:
        with make_sessionmaker(engine)() as session, recording() as timings:
            # 1. every record of both windows; above LLMSCOPE_ANALYSIS_MAX_RECORDS, a uniform
            # sample per window is clustered and the other records are assigned to its clusters
            with stage("load_s"):
                if window_records(session, baseline, current) == 0:
                    raise EmptyWindows(baseline, current)
                records = load_records(session, baseline, current)
                texts = [record_text(r, settings.embed_field) for r in records]
                records = [r for r, t in zip(records, texts, strict=True) if t]
                texts = [t for t in texts if t]
                is_current = np.array([r["window"] == "current" for r in records], dtype=bool)
                n_current = int(is_current.sum())
                require_records(len(records) - n_current, n_current, baseline, current)
                drawn = sample_windows(
                    is_current, settings.analysis_max_records, settings.analysis_seed
                )
                clustered = None
                if drawn.sampled:
                    clustered = np.zeros(len(records), dtype=bool)
                    clustered[drawn.keep] = True
                thumbs = newest_thumbs(session, [r["id"] for r in records])
                down = [thumbs.get(r["id"]) for r in records]
                judged, versions = latest_verdicts(
                    session, baseline, current, [r["id"] for r in records]
                )
                passed = {name: [v.get(r["id"]) for r in records] for name, v in judged.items()}
            from llmscope.analysis.embedding import embed_texts
            from llmscope.analysis.encoders import encoder_for
            from llmscope.analysis.followup import finish_run
            from llmscope.analysis.pipeline import analyse
            from llmscope.analysis.stats import split_alpha

            # 2. embed each distinct text once (cached across runs); sorted, so the same records
            # give the same report whatever their ids and the order they were stored in
            with stage("embed_s"):
                distinct = sorted(set(texts))
                position = {t: i for i, t in enumerate(distinct)}
                text_index = np.array([position[t] for t in texts], dtype=np.int64)
                encoder = encoder_for(settings)
                embeddings = embed_texts(session, distinct, encoder=encoder, progress=progress)
            # 3. reduce, cluster (timed inside), describe and test (the rest: tests_s)
            analysed_at = time.perf_counter()
            result = analyse(
                records,
                distinct,
                embeddings,
                text_index,
                is_current,
                down,
                settings,
                passed,
                clustered=clustered,
            )
            timings["tests_s"] = (
                time.perf_counter() - analysed_at - timings["reduce_s"] - timings["cluster_s"]
            )
            for name, entry in result.evaluators.items():
                entry["version"] = versions[name]
            # 4. store the run: its report is built once, and what is printed, stored and
            # served is that one report, its params (timings included) with it
            run_id = uuid.uuid4().hex
            params = {
                **settings.model_dump(
                    mode="json",
                    include={
                        "embedding_model",
                        "embed_field",
                        "analysis_seed",
                        "analysis_max_records",
                        "reduce_dims",
                        "reduce_neighbors",
                        "reduce_sample",
                        "reduce_small_max",
                        "cluster_max",
                        "cluster_min_size",
                        "drift_alpha",
                        "drift_min_ratio",
                        "drift_min_share_change",
                        "hotspot_min_rated",
                        "hotspot_min_lift",
                        "novel_max_similarity",
                        "rephrase_window_seconds",
                        "rephrase_min_similarity",
                        "rephrase_cluster_ratio",
                    },
                ),
                "embedding_backend": encoder.backend,
                # The level each family was tested at (the run's alpha, split).
                "alpha_split": split_alpha(
                    settings.drift_alpha,
                    implicit=result.turns is not None and result.turns.conversational,
                ).__dict__,
            }
            warnings = run_warnings(
                baseline,
                current,
                result.baseline_records,
                result.current_records,
                distinct_texts=len(distinct) if clustered is None else len(drawn.keep),
                min_size=settings.cluster_min_size,
            )
            with stage("store_s"):
                report = write_run(
                    session,
                    run_id=run_id,
                    created_at=datetime.now(UTC),
                    baseline=baseline,
                    current=current,
                    records=records,
                    result=result,
                    warnings=warnings,
                    sample=SampleInfo(max_records=drawn.max_records, analysed=len(drawn.keep))
                    if drawn.sampled
                    else None,
                )
            params["timings"] = {name: round(s, 3) for name, s in timings.items()}
            params["seconds"] = round(time.perf_counter() - started, 3)
            report.params = params
            stored = session.get(AnalysisRun, run_id)
            assert stored is not None
            stored.params = params
            stored.report = report.to_json()
            session.commit()
            log.info(
                "analysis run=%s records=%d clusters=%d seconds=%.1f",
                run_id,
                len(records),
                len(result.clusters),
                params["seconds"],
            )
            # The run is committed: matching, summaries and alerts enrich it, never fail it.
            finish_run(session, run_id, settings, report)
            return report
    finally:
        engine.dispose()
